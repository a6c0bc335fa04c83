/* PCM in, model window out: the front end feeding the feature buffer.
 *
 * The one place where samples become window columns, used by main.cc, the self-test and
 * the host programs alike, so the tests exercise the device's own glue.
 * C99, no heap: RAM is sizeof(feature_stream_t) (front end state + window).
 */
#ifndef ESC_TF_FEATURE_STREAM_H_
#define ESC_TF_FEATURE_STREAM_H_

#include <stdint.h>

#include "feature_buffer.h"
#include "frontend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  frontend_state_t frontend;
  feature_buffer_t window;
  uint32_t frames; /* frames pushed since init (wraps after 2^32) */
} feature_stream_t;

/* Empty stream and window.  Returns 0, or -1 if the front end's FFT cannot be set up. */
int feature_stream_init(feature_stream_t *stream);

/* Push n <= kHopLength samples.  Returns 1 when a new frame entered the window, 0 when
 * not, -1 if n > kHopLength. */
int feature_stream_push(feature_stream_t *stream, const int16_t *samples, uint32_t n);

#ifdef __cplusplus
}
#endif

#endif /* ESC_TF_FEATURE_STREAM_H_ */
