/* Front end -> feature buffer; see feature_stream.h.  C99, no heap. */
#include "feature_stream.h"

int feature_stream_init(feature_stream_t *stream) {
  feature_buffer_init(&stream->window);
  stream->frames = 0;
#if FRONTEND_PEAK_NORMALIZE
  stream->next = 0;
  stream->held = 0;
  stream->settled = 1;
#endif
  return frontend_init(&stream->frontend);
}

#if FRONTEND_PEAK_NORMALIZE

int feature_stream_push(feature_stream_t *stream, const int16_t *samples, uint32_t n) {
  const uint32_t slot = stream->next;
  const int got = frontend_push_samples_mel(&stream->frontend, samples, n, stream->mel[slot], &stream->peak[slot]);
  if (got != 1) return got;
  stream->next = slot + 1 == kNumFrames ? 0 : slot + 1;
  if (stream->held < kNumFrames) stream->held++;
  stream->settled = 0;
  stream->frames++;
  return 1;
}

int feature_stream_full(const feature_stream_t *stream) { return stream->held >= kNumFrames; }

/* Rebuild the window from the ring, oldest frame first, every mel scaled by 1 / the frames' largest peak. */
static void settle(feature_stream_t *stream) {
  const uint32_t first = stream->held < kNumFrames ? 0 : stream->next;
  float peak = FRONTEND_PEAK_FLOOR, column[kNumCoefficients];
  uint32_t i;
  for (i = 0; i < stream->held; i++) {
    if (stream->peak[i] > peak) peak = stream->peak[i];
  }
  feature_buffer_init(&stream->window);
  for (i = 0; i < stream->held; i++) {
    const uint32_t slot = (first + i) % kNumFrames;
    frontend_features_from_mel(&stream->frontend, stream->mel[slot], 1.0f / peak, column);
    feature_buffer_push(&stream->window, column);
  }
  stream->settled = 1;
}

const feature_buffer_t *feature_stream_window(feature_stream_t *stream) {
  if (!stream->settled) settle(stream);
  return &stream->window;
}

#else /* the window's columns are final as each frame comes in */

int feature_stream_push(feature_stream_t *stream, const int16_t *samples, uint32_t n) {
  float frame[kNumCoefficients];
  const int got = frontend_push_samples(&stream->frontend, samples, n, frame);
  if (got != 1) return got;
  feature_buffer_push(&stream->window, frame);
  stream->frames++;
  return 1;
}

int feature_stream_full(const feature_stream_t *stream) { return feature_buffer_full(&stream->window); }

const feature_buffer_t *feature_stream_window(feature_stream_t *stream) { return &stream->window; }

#endif
