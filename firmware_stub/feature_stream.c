/* Front end -> feature buffer; see feature_stream.h.  C99, no heap. */
#include "feature_stream.h"

#include <string.h>

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

#if FEATURE_STREAM_COMPACT_RING

/* A mel relative to its frame's largest, r in [0, 1], in 16 bits: the float's exponent, offset so that
 * 2^-31 .. 1 take 5 bits, and its mantissa rounded to 11 bits (within 2^-12 of r).  Code 0 is 0, and
 * takes r below 2^-31 (1 + 2^-12): a frame's largest mel is at most a few hundred times its peak, so
 * after any window's gain such a mel is under 1e-6, negligible next to the log offset (0.3 by default). */
#define MEL_EXPONENT_BASE (96u << 23) /* the float bits of 2^-31 */
#define MEL_DROPPED_BITS 12u          /* 23 - 11 mantissa bits */

static uint16_t pack_mel(float r) {
  uint32_t b;
  if (!(r > 0.0f)) return 0; /* also NaN */
  memcpy(&b, &r, sizeof b);
  if (b < MEL_EXPONENT_BASE) return 0;
  return (uint16_t)((b - MEL_EXPONENT_BASE + (1u << (MEL_DROPPED_BITS - 1))) >> MEL_DROPPED_BITS);
}

static float unpack_mel(uint16_t u) {
  const uint32_t b = ((uint32_t)u << MEL_DROPPED_BITS) + MEL_EXPONENT_BASE;
  float r;
  memcpy(&r, &b, sizeof r);
  return u ? r : 0.0f;
}

/* Where the front end writes a new frame's mels: scratch, packed into the ring by store_mels. */
static float *mels_to_fill(feature_stream_t *stream, uint32_t slot, float *scratch) {
  (void)stream;
  (void)slot;
  return scratch;
}

static void store_mels(feature_stream_t *stream, uint32_t slot, const float *mel) {
  float largest = 0.0f;
  uint32_t j;
  for (j = 0; j < FRONTEND_NUM_MEL_BINS; j++) {
    if (mel[j] > largest) largest = mel[j];
  }
  stream->mel_max[slot] = largest;
  for (j = 0; j < FRONTEND_NUM_MEL_BINS; j++) stream->mel[slot][j] = largest > 0.0f ? pack_mel(mel[j] / largest) : 0;
}

/* A slot's mels, unpacked into scratch. */
static const float *stored_mels(const feature_stream_t *stream, uint32_t slot, float *scratch) {
  uint32_t j;
  for (j = 0; j < FRONTEND_NUM_MEL_BINS; j++) scratch[j] = unpack_mel(stream->mel[slot][j]) * stream->mel_max[slot];
  return scratch;
}

#else /* the float ring: the front end writes straight into it, and settle reads it in place */

static float *mels_to_fill(feature_stream_t *stream, uint32_t slot, float *scratch) {
  (void)scratch;
  return stream->mel[slot];
}

static void store_mels(feature_stream_t *stream, uint32_t slot, const float *mel) {
  (void)stream;
  (void)slot;
  (void)mel;
}

static const float *stored_mels(const feature_stream_t *stream, uint32_t slot, float *scratch) {
  (void)scratch;
  return stream->mel[slot];
}

#endif /* FEATURE_STREAM_COMPACT_RING */

int feature_stream_push(feature_stream_t *stream, const int16_t *samples, uint32_t n) {
  const uint32_t slot = stream->next;
  float scratch[FRONTEND_NUM_MEL_BINS];
  float *mel = mels_to_fill(stream, slot, scratch);
  const int got = frontend_push_samples_mel(&stream->frontend, samples, n, mel, &stream->peak[slot]);
  if (got != 1) return got;
  store_mels(stream, slot, mel);
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
  float peak = FRONTEND_PEAK_FLOOR, column[kNumCoefficients], mel[FRONTEND_NUM_MEL_BINS];
  uint32_t i;
  for (i = 0; i < stream->held; i++) {
    if (stream->peak[i] > peak) peak = stream->peak[i];
  }
  feature_buffer_init(&stream->window);
  for (i = 0; i < stream->held; i++) {
    const uint32_t slot = (first + i) % kNumFrames;
    frontend_features_from_mel(&stream->frontend, stored_mels(stream, slot, mel), 1.0f / peak, column);
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
