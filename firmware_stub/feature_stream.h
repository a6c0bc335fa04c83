/* PCM in, model window out: the front end feeding the feature buffer.
 *
 * The one place where samples become window columns, used by main.cc, the self-test and
 * the host programs alike, so the tests exercise the device's own glue.
 *
 * With FRONTEND_PEAK_NORMALIZE (frontend_tables.h) the window is level-normalised as in
 * training (esc_tf.audio.features.level_normalized): its features are those of its samples
 * divided by their peak absolute value.  The stream keeps every frame's linear mel magnitudes
 * and peak, and feature_stream_window() recomputes the window's int8 columns at the window's
 * level whenever a frame came in since the last call (kNumFrames frames of logs, once per
 * inference: a small fraction of one invoke).
 *
 * Compiled with -DFEATURE_STREAM_COMPACT_RING=1, the ring keeps each mel in 16 bits relative to
 * its frame's largest (an 11-bit mantissa: within 2^-12 of the float), for about half the ring's RAM;
 * a few input elements in a thousand then land one int8 step from the float ring's
 * (firmware_stub/README.md).
 *
 * C99, no heap: RAM is sizeof(feature_stream_t): front end state + window + a counter, and with
 * FRONTEND_PEAK_NORMALIZE kNumFrames * (4 * FRONTEND_NUM_MEL_BINS + 4) + 12 bytes more, or with
 * the compact ring kNumFrames * (2 * FRONTEND_NUM_MEL_BINS + 8) + 12.
 */
#ifndef ESC_TF_FEATURE_STREAM_H_
#define ESC_TF_FEATURE_STREAM_H_

#include <stdint.h>

#include "feature_buffer.h"
#include "frontend.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef FEATURE_STREAM_COMPACT_RING
#define FEATURE_STREAM_COMPACT_RING 0
#endif

typedef struct {
  frontend_state_t frontend;
  feature_buffer_t window;
  uint32_t frames; /* frames pushed since init (wraps after 2^32) */
#if FRONTEND_PEAK_NORMALIZE
#if FEATURE_STREAM_COMPACT_RING
  uint16_t mel[kNumFrames][FRONTEND_NUM_MEL_BINS]; /* the frames' linear mel magnitudes, a ring, each in
                                                      16 bits relative to its frame's mel_max */
  float mel_max[kNumFrames];                       /* each frame's largest linear mel magnitude */
#else
  float mel[kNumFrames][FRONTEND_NUM_MEL_BINS]; /* linear mel magnitudes of the window's frames, a ring */
#endif
  float peak[kNumFrames];                       /* each frame's largest absolute sample */
  uint32_t next;                                /* ring slot the next frame goes to */
  uint32_t held;                                /* frames in the ring, saturating at kNumFrames */
  int settled;                                  /* window holds the ring's frames at the ring's level */
#endif
} feature_stream_t;

/* Empty stream and window.  Returns 0, or -1 if the front end's FFT cannot be set up. */
int feature_stream_init(feature_stream_t *stream);

/* Push n <= kHopLength samples.  Returns 1 when a new frame entered the window, 0 when
 * not, -1 if n > kHopLength. */
int feature_stream_push(feature_stream_t *stream, const int16_t *samples, uint32_t n);

/* 1 once kNumFrames frames have been pushed since init. */
int feature_stream_full(const feature_stream_t *stream);

/* The model's window of the last kNumFrames frames (fewer before it is full), ready for
 * feature_buffer_copy / feature_buffer_copy_view.  Valid until the next push. */
const feature_buffer_t *feature_stream_window(feature_stream_t *stream);

#ifdef __cplusplus
}
#endif

#endif /* ESC_TF_FEATURE_STREAM_H_ */
