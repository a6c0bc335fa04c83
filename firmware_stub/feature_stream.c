/* Front end -> feature buffer; see feature_stream.h.  C99, no heap. */
#include "feature_stream.h"

int feature_stream_init(feature_stream_t *stream) {
  feature_buffer_init(&stream->window);
  stream->frames = 0;
  return frontend_init(&stream->frontend);
}

int feature_stream_push(feature_stream_t *stream, const int16_t *samples, uint32_t n) {
  float frame[kNumCoefficients];
  const int got = frontend_push_samples(&stream->frontend, samples, n, frame);
  if (got != 1) return got;
  feature_buffer_push(&stream->window, frame);
  stream->frames++;
  return 1;
}
