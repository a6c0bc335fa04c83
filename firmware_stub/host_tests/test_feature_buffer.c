/* Unit checks of feature_buffer: quantisation, column layout, sliding-window order.
 * Built against any export's model_settings.h; prints "feature_buffer: N checks passed". */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "feature_buffer.h"

static feature_buffer_t buffer;
static int8_t window[kFeatureElementCount];
static int checks, failures;

static void check(int ok, const char *what, int a, int b) {
  checks++;
  if (!ok && failures++ < 10) fprintf(stderr, "FAIL %s (%d, %d)\n", what, a, b);
}

/* A distinct int8 value for every (frame, coefficient), never the zero point. */
static int8_t value(int frame, int coeff) {
  int v = (frame * 7 + coeff * 31) % 251 - 125;
  if (v == kInputZeroPoint) v = v < 0 ? v + 1 : v - 1;
  return (int8_t)v;
}

/* Features that quantise exactly to value(frame, c). */
static void push_frame(int frame) {
  float features[kNumCoefficients];
  int c;
  for (c = 0; c < kNumCoefficients; c++) features[c] = (float)(value(frame, c) - kInputZeroPoint) * kInputScale;
  feature_buffer_push(&buffer, features);
}

/* After `pushed` frames the window holds frames pushed-kNumFrames .. pushed-1, oldest first;
 * rotated by `shift`, position j holds window frame (j - shift) mod kNumFrames (np.roll). */
static void check_rolled(int pushed, int shift) {
  int c, j;
  if (shift == 0) feature_buffer_copy(&buffer, window);
  else feature_buffer_copy_rolled(&buffer, (uint32_t)shift, window);
  for (c = 0; c < kNumCoefficients; c++) {
    for (j = 0; j < kNumFrames; j++) {
      const int frame = pushed - kNumFrames + (j - shift + kNumFrames) % kNumFrames;
      const int expected = frame < 0 ? kInputZeroPoint : value(frame, c);
      check(window[c * kNumFrames + j] == expected, "window element", c * kNumFrames + j, pushed * 1000 + shift);
    }
  }
}

/* View `view` of R = 3 rotations at mel shifts -2 .. +2 (feature_buffer_copy_view): rotation view % 3,
 * output row c reads row clamp(c - s) with s = view / 3 - 2, as pipeline.model_inputs orders them. */
static void check_view(int pushed, int view) {
  const int roll = view % 3, mel_shift = view / 3 - 2;
  int c, j;
  feature_buffer_copy_view(&buffer, (uint32_t)view, 3, 2, window);
  for (c = 0; c < kNumCoefficients; c++) {
    const int moved = c - mel_shift;
    const int source = moved < 0 ? 0 : (moved >= kNumCoefficients ? kNumCoefficients - 1 : moved);
    for (j = 0; j < kNumFrames; j++) {
      const int frame = pushed - kNumFrames + (j - roll + kNumFrames) % kNumFrames;
      const int expected = frame < 0 ? kInputZeroPoint : value(frame, source);
      check(window[c * kNumFrames + j] == expected, "view element", c * kNumFrames + j, pushed * 1000 + view);
    }
  }
}

static void check_window(int pushed) {
  int view;
  check_rolled(pushed, 0);
  check_rolled(pushed, 1);
  check_rolled(pushed, 3);
  check_rolled(pushed, kNumFrames - 1);
  for (view = 0; view < 3 * 5; view++) check_view(pushed, view);
  feature_buffer_copy_view(&buffer, 0u, 0u, 0u, window); /* no rotation asked for: the window as it is */
  for (view = 0; view < kFeatureElementCount; view++) {
    const int frame = pushed - kNumFrames + view % kNumFrames;
    const int expected = frame < 0 ? kInputZeroPoint : value(frame, view / kNumFrames);
    check(window[view] == expected, "view of 0 rotations", view, pushed);
  }
}

int main(void) {
  int f;
  float extremes[kNumCoefficients];
  feature_buffer_init(&buffer);
  check(!feature_buffer_full(&buffer), "empty buffer is not full", 0, 0);
  check_window(0);
  for (f = 0; f < 2 * kNumFrames + 3; f++) {
    push_frame(f);
    check(feature_buffer_full(&buffer) == (f + 1 >= kNumFrames), "full after kNumFrames frames", f, 0);
    if (f < 3 || f % 5 == 0 || f + 1 == kNumFrames || f + 2 >= 2 * kNumFrames) check_window(f + 1);
  }
  /* Saturation and NaN as TFLite: clamp to [-128, 127], NaN -> -128. */
  for (f = 0; f < kNumCoefficients; f++) extremes[f] = f % 3 == 0 ? 1e9f : (f % 3 == 1 ? -1e9f : (float)NAN);
  feature_buffer_push(&buffer, extremes);
  feature_buffer_copy(&buffer, window);
  for (f = 0; f < kNumCoefficients; f++)
    check(window[f * kNumFrames + kNumFrames - 1] == (f % 3 == 0 ? 127 : -128), "clamp", f,
          window[f * kNumFrames + kNumFrames - 1]);
  feature_buffer_init(&buffer);
  check(!feature_buffer_full(&buffer), "init empties the buffer", 0, 0);
  check_window(0);
  if (failures) {
    fprintf(stderr, "feature_buffer: %d of %d checks failed\n", failures, checks);
    return 1;
  }
  printf("feature_buffer: %d checks passed\n", checks);
  return 0;
}
