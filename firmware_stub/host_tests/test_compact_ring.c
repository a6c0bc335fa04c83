/* Unit checks of the compact level ring (feature_stream.c built with FEATURE_STREAM_COMPACT_RING):
 * the 16-bit code of a mel relative to its frame's largest, at its exact values, its rounding and
 * carry, its range, its error bound over a sweep, and a frame stored and read back.
 * Built against an export with level normalisation; prints "compact_ring: N checks passed". */
#define FEATURE_STREAM_COMPACT_RING 1
#include "feature_stream.c" /* the static pack_mel / unpack_mel / store_mels / stored_mels under test */

#include <math.h>
#include <stdio.h>

static int checks, failures;

static void check(int ok, const char *what, double a, double b) {
  checks++;
  if (!ok && failures++ < 10) fprintf(stderr, "FAIL %s (%.9g, %.9g)\n", what, a, b);
}

#if FRONTEND_PEAK_NORMALIZE

static const double kBound = 1.0 / 4096.0; /* 2^-12: half a unit of an 11-bit mantissa */

static float round_trip(float r) { return unpack_mel(pack_mel(r)); }

static void check_codes(void) {
  const float half_way = 0.5f * (1.0f + 3.0f / 4096.0f); /* between two codes: rounds away from zero */
  check(pack_mel(1.0f) == 0xF800u && round_trip(1.0f) == 1.0f, "1 is the largest code", pack_mel(1.0f), 0);
  check(pack_mel(0.0f) == 0 && unpack_mel(0) == 0.0f, "0 is code 0", pack_mel(0.0f), 0);
  check(pack_mel(ldexpf(1.0f, -32)) == 0, "under 2^-31 is 0", pack_mel(ldexpf(1.0f, -32)), 0);
  check(pack_mel(-1.0f) == 0 && pack_mel(NAN) == 0, "negative or NaN is 0", pack_mel(-1.0f), pack_mel(NAN));
  check(round_trip(ldexpf(1.0f, -30)) == ldexpf(1.0f, -30), "a power of two is exact", round_trip(ldexpf(1.0f, -30)),
        0);
  check(round_trip(nextafterf(0.5f, 0.0f)) == 0.5f, "rounding carries into the exponent",
        round_trip(nextafterf(0.5f, 0.0f)), 0.5);
  check(round_trip(half_way) == 0.5f * (1.0f + 4.0f / 4096.0f), "a tie rounds up", round_trip(half_way), half_way);
}

/* Every 97th float from 2^-30 to 1: within 2^-12 of itself, codes in the order of the values. */
static void check_sweep(void) {
  float r = ldexpf(1.0f, -30);
  uint16_t last = 0;
  int ordered = 1;
  double worst = 0.0;
  while (r <= 1.0f) {
    const uint16_t code = pack_mel(r);
    const double error = fabs((double)unpack_mel(code) - r) / r;
    if (error > worst) worst = error;
    if (code < last) ordered = 0;
    last = code;
    {
      uint32_t bits;
      memcpy(&bits, &r, sizeof bits);
      bits += 97;
      memcpy(&r, &bits, sizeof r);
    }
  }
  check(ordered, "codes follow the values", last, 0);
  check(worst <= kBound, "relative error within 2^-12", worst, kBound);
  check(worst > kBound / 2, "the sweep reaches the bound's order", worst, kBound);
}

/* A frame of mels over 9 decades, stored in slot 3 and read back. */
static void check_frame(void) {
  static feature_stream_t stream;
  float mel[FRONTEND_NUM_MEL_BINS], scratch[FRONTEND_NUM_MEL_BINS];
  const float *back;
  int j;
  for (j = 0; j < FRONTEND_NUM_MEL_BINS; j++) mel[j] = 300.0f * powf(10.0f, -9.0f * (float)j / FRONTEND_NUM_MEL_BINS);
  mel[5] = 0.0f;
  store_mels(&stream, 3, mel);
  back = stored_mels(&stream, 3, scratch);
  check(stream.mel_max[3] == 300.0f, "the frame's largest", stream.mel_max[3], 300.0);
  for (j = 0; j < FRONTEND_NUM_MEL_BINS; j++) {
    const double error = mel[j] > 0.0f ? fabs((double)back[j] - mel[j]) / mel[j] : fabs((double)back[j]);
    check(error <= kBound * (1.0 + 1e-6), "a stored mel within 2^-12", back[j], mel[j]);
  }
  for (j = 0; j < FRONTEND_NUM_MEL_BINS; j++) mel[j] = 0.0f;
  store_mels(&stream, 4, mel);
  back = stored_mels(&stream, 4, scratch);
  for (j = 0; j < FRONTEND_NUM_MEL_BINS; j++) check(back[j] == 0.0f, "a silent frame stays silent", back[j], 0);
}

int main(void) {
  check_codes();
  check_sweep();
  check_frame();
  if (failures) {
    fprintf(stderr, "compact_ring: %d of %d checks failed\n", failures, checks);
    return 1;
  }
  printf("compact_ring: %d checks passed\n", checks);
  return 0;
}

#else /* an export without level normalisation has no ring */

int main(void) {
  check(1, "", 0, 0);
  printf("compact_ring: nothing to check, this export has no level ring (FRONTEND_PEAK_NORMALIZE 0)\n");
  return 0;
}

#endif
