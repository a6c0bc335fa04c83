/* Sliding window of quantised feature frames; see feature_buffer.h.  C99, no heap. */
#include "feature_buffer.h"

#include <string.h>

#include "frontend.h"

/* Both headers come from one export; a mismatch means they were copied from different ones. */
#if kNumCoefficients != FRONTEND_NUM_COEFFS || kSampleRate != FRONTEND_SAMPLE_RATE || \
    kFrameLength != FRONTEND_FRAME_LENGTH || kHopLength != FRONTEND_HOP_LENGTH ||     \
    kFeatureIsMfcc != FRONTEND_FEATURES_KIND_MFCC
#error "model_settings.h and frontend_tables.h describe different front ends"
#endif
#if kFeatureElementCount != kNumCoefficients * kNumFrames
#error "kFeatureElementCount must be kNumCoefficients * kNumFrames"
#endif
#if kNumFrames != 1 + (kClipSamples - kFrameLength) / kHopLength
#error "kNumFrames must be the frames of a clip: 1 + (kClipSamples - kFrameLength) / kHopLength"
#endif

void feature_buffer_init(feature_buffer_t *buffer) {
  memset(buffer->ring, kInputZeroPoint, sizeof(buffer->ring));
  buffer->oldest = 0;
  buffer->frames = 0;
}

void feature_buffer_push(feature_buffer_t *buffer, const float *features) {
  int8_t column[kNumCoefficients];
  uint32_t c;
  /* The slot of the oldest frame is the one the newest frame overwrites. */
  const uint32_t slot = buffer->oldest;
  frontend_quantize(features, kNumCoefficients, kInputScale, kInputZeroPoint, column);
  for (c = 0; c < kNumCoefficients; c++) buffer->ring[c * kNumFrames + slot] = column[c];
  buffer->oldest = slot + 1 == kNumFrames ? 0 : slot + 1;
  if (buffer->frames < kNumFrames) buffer->frames++;
}

int feature_buffer_full(const feature_buffer_t *buffer) { return buffer->frames >= kNumFrames; }

void feature_buffer_copy(const feature_buffer_t *buffer, int8_t *input) { feature_buffer_copy_rolled(buffer, 0, input); }

/* The window rotated by `shift` frames, output row c read from row clamp(c - mel_shift). */
static void copy_moved(const feature_buffer_t *buffer, uint32_t shift, int32_t mel_shift, int8_t *input) {
  /* Output frame 0 is the window's frame kNumFrames - shift: ring slot oldest - shift (mod kNumFrames). */
  const uint32_t head = (buffer->oldest + kNumFrames - shift % kNumFrames) % kNumFrames, tail = kNumFrames - head;
  int32_t c;
  for (c = 0; c < kNumCoefficients; c++) {
    int32_t source = c - mel_shift;
    if (source < 0) source = 0;
    if (source >= kNumCoefficients) source = kNumCoefficients - 1;
    const int8_t *row = buffer->ring + source * kNumFrames;
    int8_t *out = input + c * kNumFrames;
    memcpy(out, row + head, tail);
    memcpy(out + tail, row, head);
  }
}

void feature_buffer_copy_rolled(const feature_buffer_t *buffer, uint32_t shift, int8_t *input) {
  copy_moved(buffer, shift, 0, input);
}

void feature_buffer_copy_view(const feature_buffer_t *buffer, uint32_t view, uint32_t rolls, uint32_t mel_shifts,
                              int8_t *input) {
  if (rolls == 0u) rolls = 1u; /* no rotation asked for: the window as it is */
  copy_moved(buffer, view % rolls, (int32_t)(view / rolls) - (int32_t)mel_shifts, input);
}
