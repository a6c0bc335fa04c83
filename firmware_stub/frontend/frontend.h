/* Streaming feature front end: the device twin of esc_tf/audio/features.py.
 *
 * Per frame of FRONTEND_FRAME_LENGTH samples (one every FRONTEND_HOP_LENGTH samples, the
 * first one being samples [0, FRONTEND_FRAME_LENGTH), no padding, as tf.signal.stft):
 * periodic Hann window -> real FFT -> magnitude -> mel filters -> log(x + offset)
 * -> DCT (MFCC only) -> (x - mean) / std.  All constants come from the generated
 * frontend_tables.h (esc-tf deploy), found on the include path.
 *
 * No heap, no VLAs: all memory is the caller's frontend_state_t (about
 * 4 * (FRAME + HOP + 1.5 * FFT + MELS) bytes with the portable FFT, 6.3 KB by default;
 * the CMSIS build adds FFT floats).  One state per stream; states are independent.
 *
 * Build with -DFRONTEND_USE_CMSIS_DSP to use CMSIS-DSP's arm_rfft_fast_f32 and
 * arm_cmplx_mag_f32 instead of the portable radix-2 FFT.
 *
 * The push functions give features at the samples' own level.  With FRONTEND_PEAK_NORMALIZE 1 (the
 * default export) the model expects each window divided by its peak first: use feature_stream.h,
 * which does that, rather than feeding these features to the model.  Not reentrant: one thread
 * per state, and not from an interrupt (a hop costs about 0.1 M instructions on a Cortex-M4).
 */
#ifndef ESC_TF_FRONTEND_H_
#define ESC_TF_FRONTEND_H_

#include <stdint.h>

#include "frontend_tables.h"

#if defined(FRONTEND_USE_CMSIS_DSP)
#include "arm_math.h"
#endif

#ifdef __cplusplus
extern "C" {
#endif

#if (FRONTEND_FFT_LENGTH & (FRONTEND_FFT_LENGTH - 1)) != 0 || FRONTEND_FFT_LENGTH < 4
#error "FRONTEND_FFT_LENGTH must be a power of two >= 4"
#endif
#if FRONTEND_FRAME_LENGTH != FRONTEND_FFT_LENGTH
#error "FRONTEND_FRAME_LENGTH must equal FRONTEND_FFT_LENGTH"
#endif

/* Samples kept between calls: a frame can complete up to one hop before the latest sample. */
#define FRONTEND_BUFFER_LENGTH (FRONTEND_FRAME_LENGTH + FRONTEND_HOP_LENGTH)

typedef struct {
  float samples[FRONTEND_BUFFER_LENGTH]; /* samples[0] is the first sample of the next frame */
  uint32_t count;                        /* samples buffered from samples[0] on */
  uint32_t skip;                         /* input samples to drop first (only if hop > frame) */
  int normalize;                         /* 1: (x - mean) / std (default); 0: raw features */
  float fft[FRONTEND_FFT_LENGTH + 2];    /* spectrum X[0..N/2] as (re, im) pairs */
  float mag[FRONTEND_NUM_FFT_BINS];
  float mel[FRONTEND_NUM_MEL_BINS];
#if defined(FRONTEND_USE_CMSIS_DSP)
  float windowed[FRONTEND_FFT_LENGTH];   /* arm_rfft_fast_f32 cannot work in place */
  arm_rfft_fast_instance_f32 rfft;
#endif
} frontend_state_t;

/* Reset the stream and set up the FFT.  Returns 0 on success, -1 if the FFT cannot be set up. */
int frontend_init(frontend_state_t *state);

/* 1: outputs are normalised (the default after init); 0: raw log-mel / MFCC. */
void frontend_set_normalize(frontend_state_t *state, int on);

/* Consume one hop of FRONTEND_HOP_LENGTH samples.  Returns 1 when a new frame of
 * FRONTEND_NUM_COEFFS features was written to out_features, 0 otherwise (first frame still
 * filling).  int16 PCM is scaled by 1/32768 like the Python pipeline; float samples are
 * expected in [-1, 1). */
int frontend_push_hop(frontend_state_t *state, const int16_t *hop_samples, float *out_features);
int frontend_push_hop_f32(frontend_state_t *state, const float *hop_samples, float *out_features);

/* Same with any count n <= FRONTEND_HOP_LENGTH (at most one frame can complete per call),
 * e.g. for DMA blocks that are not a hop long or the tail of a clip.  Returns 1/0 as above,
 * -1 if n > FRONTEND_HOP_LENGTH. */
int frontend_push_samples(frontend_state_t *state, const int16_t *samples, uint32_t n, float *out_features);
int frontend_push_samples_f32(frontend_state_t *state, const float *samples, uint32_t n, float *out_features);

/* Features of one whole frame (FRONTEND_FRAME_LENGTH samples), ignoring the stream, at the level
 * the samples have (no level normalisation: see frontend_mel_frame).
 * Uses the state's scratch buffers only, so it can run on a state that is streaming. */
void frontend_process_frame(frontend_state_t *state, const float *frame, float *out_features);

#ifndef FRONTEND_PEAK_NORMALIZE /* a frontend_tables.h exported before level normalisation */
#define FRONTEND_PEAK_NORMALIZE 0
#endif
/* The least peak a window is divided by: one step of 16-bit PCM, so digital silence stays
 * silence (esc_tf.audio.features.PEAK_FLOOR). */
#define FRONTEND_PEAK_FLOOR (1.0f / 32768.0f)

/* frontend_process_frame in two halves, for level normalisation (FRONTEND_PEAK_NORMALIZE):
 * a window's features are those of its samples divided by their peak absolute value, which is
 * known only once the window's last frame is in.  Dividing the samples scales every mel
 * magnitude alike, so the stream keeps each frame's linear mel magnitudes and peak and
 * finishes the window's frames later with gain = 1 / max(largest peak, FRONTEND_PEAK_FLOOR).
 *
 * frontend_mel_frame: FRONTEND_NUM_MEL_BINS linear mel magnitudes of one whole frame, and the
 * frame's largest absolute sample. */
void frontend_mel_frame(frontend_state_t *state, const float *frame, float *out_mel, float *out_peak);

/* log(gain * mel + offset) -> DCT (MFCC only) -> (x - mean) / std when normalising. */
void frontend_features_from_mel(const frontend_state_t *state, const float *mel, float gain, float *out_features);

/* frontend_push_samples, emitting the frame's frontend_mel_frame output instead of its features. */
int frontend_push_samples_mel(frontend_state_t *state, const int16_t *samples, uint32_t n, float *out_mel,
                              float *out_peak);

/* TFLite affine quantisation: round(x / scale) half away from zero, + zero_point, clamped
 * to [-128, 127] (NaN gives -128). */
void frontend_quantize(const float *features, int n, float scale, int zero_point, int8_t *out);

/* The FRONTEND_FINGERPRINT the library was built with (compare with the model's). */
const char *frontend_fingerprint(void);

#ifdef __cplusplus
}
#endif

#endif /* ESC_TF_FRONTEND_H_ */
