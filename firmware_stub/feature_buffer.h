/* The model's input window: the last kNumFrames feature frames, quantised to int8.
 *
 * The model reads [1, kNumCoefficients, kNumFrames, 1] coefficient-major (element
 * coeff * kNumFrames + frame, oldest frame first), so each new frame is a column.  The
 * window is a ring of columns: a push writes kNumCoefficients bytes, and
 * feature_buffer_copy() lays the window out oldest-first into the input tensor.
 *
 * The copy is needed anyway: TFLM may reuse the input tensor's arena bytes for later
 * tensors during Invoke(), so the window must live outside the arena.
 *
 * C99, no heap: RAM is sizeof(feature_buffer_t), kFeatureElementCount + 8 bytes (+ padding).
 */
#ifndef ESC_TF_FEATURE_BUFFER_H_
#define ESC_TF_FEATURE_BUFFER_H_

#include <stdint.h>

#include "model_settings.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int8_t ring[kFeatureElementCount]; /* ring[coeff * kNumFrames + slot] */
  uint32_t oldest;                   /* slot of the oldest frame once the window is full */
  uint32_t frames;                   /* frames pushed since init, saturating at kNumFrames */
} feature_buffer_t;

/* Empty window; every element holds kInputZeroPoint (a normalised feature of 0). */
void feature_buffer_init(feature_buffer_t *buffer);

/* Quantise one frame of kNumCoefficients normalised features (frontend output) with
 * kInputScale / kInputZeroPoint and append it, dropping the oldest frame when full. */
void feature_buffer_push(feature_buffer_t *buffer, const float *features);

/* 1 once kNumFrames frames have been pushed since init. */
int feature_buffer_full(const feature_buffer_t *buffer);

/* The window as the model input: kFeatureElementCount int8, coefficient-major, oldest
 * frame first.  Before the window is full the frames not pushed yet come first and hold
 * kInputZeroPoint. */
void feature_buffer_copy(const feature_buffer_t *buffer, int8_t *input);

/* The window rotated in time by `shift` frames (0 <= shift < kNumFrames), as np.roll(window, shift,
 * axis=frames): its last `shift` frames come first.  A clip scored with model.time_rolls = R is the
 * mean softmax of the model on the rotations 0 .. R-1 (kTimeRolls); shift 0 is feature_buffer_copy. */
void feature_buffer_copy_rolled(const feature_buffer_t *buffer, uint32_t shift, int8_t *input);

/* View `view` (0 <= view < rolls * (2 * mel_shifts + 1)) of the window, in the order of
 * pipeline.model_inputs: mel shift s = view / rolls - mel_shifts (outer), rotation r = view % rolls
 * (inner; rolls 0 counts as 1).  The window rotated by r frames (as feature_buffer_copy_rolled) with its coefficient rows
 * moved up by s (down when negative; mel_shifts < kNumCoefficients), the edge row repeated: output row
 * c is row clamp(c - s, 0, kNumCoefficients - 1), as pipeline.shift_mels.  An inference with
 * model.time_rolls = R and model.mel_shifts = K is the mean softmax over views 0 .. R * (2K + 1) - 1. */
void feature_buffer_copy_view(const feature_buffer_t *buffer, uint32_t view, uint32_t rolls, uint32_t mel_shifts,
                              int8_t *input);

#ifdef __cplusplus
}
#endif

#endif /* ESC_TF_FEATURE_BUFFER_H_ */
