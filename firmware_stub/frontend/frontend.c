/* Streaming feature front end; see frontend.h.  C99, no heap. */
#define FRONTEND_TABLES_IMPLEMENTATION
#include "frontend.h"
#include "frontend_tables.h"

#include <math.h>
#include <string.h>

#define HALF_FFT (FRONTEND_FFT_LENGTH / 2)

#if !defined(FRONTEND_USE_CMSIS_DSP)

/* In-place radix-2 decimation-in-time FFT of HALF_FFT complex values (re, im interleaved).
 * frontend_twiddle holds cos, sin of 2*pi*k/N for k < N/2, so a stage of butterflies
 * `len` apart uses every (N / len)-th entry. */
static void complex_fft_half(float *z) {
  uint32_t i, j = 0, len;
  for (i = 1; i < HALF_FFT; i++) {
    uint32_t bit = HALF_FFT >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      float tr = z[2 * i], ti = z[2 * i + 1];
      z[2 * i] = z[2 * j];
      z[2 * i + 1] = z[2 * j + 1];
      z[2 * j] = tr;
      z[2 * j + 1] = ti;
    }
  }
  for (len = 2; len <= HALF_FFT; len <<= 1) {
    const uint32_t half = len / 2, stride = FRONTEND_FFT_LENGTH / len;
    uint32_t k, start;
    for (k = 0; k < half; k++) {
      const float wr = frontend_twiddle[2 * k * stride];
      const float wi = -frontend_twiddle[2 * k * stride + 1]; /* forward: exp(-i theta) */
      for (start = k; start < HALF_FFT; start += len) {
        float *a = z + 2 * start, *b = z + 2 * (start + half);
        const float tr = b[0] * wr - b[1] * wi, ti = b[0] * wi + b[1] * wr;
        b[0] = a[0] - tr;
        b[1] = a[1] - ti;
        a[0] += tr;
        a[1] += ti;
      }
    }
  }
}

/* Real FFT of N samples in buf[0..N) -> bins X[0..N/2] as (re, im) pairs in buf[0..N+2).
 * The N reals are read as N/2 complex values z[n] = x[2n] + i x[2n+1]; with Z = FFT(z),
 * X[k] = E + W^k O where E = (Z[k] + conj Z[M-k]) / 2 and O = (Z[k] - conj Z[M-k]) / 2i,
 * and X[M-k] = conj(E - W^k O), so each pair (k, M-k) is finished in place. */
static void real_fft(float *buf) {
  uint32_t k;
  float z0r, z0i;
  complex_fft_half(buf);
  z0r = buf[0];
  z0i = buf[1];
  for (k = 1; k <= HALF_FFT / 2; k++) {
    float *a = buf + 2 * k, *b = buf + 2 * (HALF_FFT - k);
    const float er = 0.5f * (a[0] + b[0]), ei = 0.5f * (a[1] - b[1]);
    const float or_ = 0.5f * (a[1] + b[1]), oi = -0.5f * (a[0] - b[0]);
    const float c = frontend_twiddle[2 * k], s = frontend_twiddle[2 * k + 1];
    const float tr = c * or_ + s * oi, ti = c * oi - s * or_;
    a[0] = er + tr;
    a[1] = ei + ti;
    b[0] = er - tr;
    b[1] = ti - ei;
  }
  buf[0] = z0r + z0i;
  buf[1] = 0.0f;
  buf[FRONTEND_FFT_LENGTH] = z0r - z0i;
  buf[FRONTEND_FFT_LENGTH + 1] = 0.0f;
}

static int fft_init(frontend_state_t *state) {
  (void)state;
  return 0;
}

static void magnitude_spectrum(frontend_state_t *state, const float *frame) {
  uint32_t k;
  for (k = 0; k < FRONTEND_FFT_LENGTH; k++) state->fft[k] = frame[k] * frontend_window[k];
  real_fft(state->fft);
  for (k = 0; k < FRONTEND_NUM_FFT_BINS; k++) {
    const float re = state->fft[2 * k], im = state->fft[2 * k + 1];
    state->mag[k] = sqrtf(re * re + im * im);
  }
}

#else /* FRONTEND_USE_CMSIS_DSP */

/* arm_rfft_fast_init_<N>_f32 links only this length's twiddles; arm_rfft_fast_init_f32
 * links every length's (about 75 KB more on a Cortex-M4).  Define
 * FRONTEND_CMSIS_GENERIC_RFFT_INIT for CMSIS-DSP releases without the per-length inits. */
#define FRONTEND_PASTE3(a, b, c) a##b##c
#define FRONTEND_RFFT_INIT(n) FRONTEND_PASTE3(arm_rfft_fast_init_, n, _f32)

static int fft_init(frontend_state_t *state) {
#if defined(FRONTEND_CMSIS_GENERIC_RFFT_INIT)
  return arm_rfft_fast_init_f32(&state->rfft, FRONTEND_FFT_LENGTH) == ARM_MATH_SUCCESS ? 0 : -1;
#else
  return FRONTEND_RFFT_INIT(FRONTEND_FFT_LENGTH)(&state->rfft) == ARM_MATH_SUCCESS ? 0 : -1;
#endif
}

static void magnitude_spectrum(frontend_state_t *state, const float *frame) {
  uint32_t k;
  for (k = 0; k < FRONTEND_FFT_LENGTH; k++) state->windowed[k] = frame[k] * frontend_window[k];
  arm_rfft_fast_f32(&state->rfft, state->windowed, state->fft, 0);
  /* arm_rfft_fast_f32 packs the real Nyquist bin into out[1]: unpack to N/2 + 1 bins. */
  state->fft[FRONTEND_FFT_LENGTH] = state->fft[1];
  state->fft[FRONTEND_FFT_LENGTH + 1] = 0.0f;
  state->fft[1] = 0.0f;
  arm_cmplx_mag_f32(state->fft, state->mag, FRONTEND_NUM_FFT_BINS);
}

#endif /* FRONTEND_USE_CMSIS_DSP */

/* Linear mel magnitudes of the spectrum in state->mag. */
static void mel_sums(const frontend_state_t *state, float *out_mel) {
  const float *coef = frontend_mel_coefs;
  uint32_t j, i;
  for (j = 0; j < FRONTEND_NUM_MEL_BINS; j++) {
    const float *bins = state->mag + frontend_mel_pos[j];
    float sum = 0.0f;
    for (i = 0; i < frontend_mel_len[j]; i++) sum += bins[i] * coef[i];
    coef += frontend_mel_len[j];
    out_mel[j] = sum;
  }
}

void frontend_features_from_mel(const frontend_state_t *state, const float *mel, float gain, float *out) {
  float log_mel[FRONTEND_NUM_MEL_BINS];
  uint32_t i;
  for (i = 0; i < FRONTEND_NUM_MEL_BINS; i++) log_mel[i] = logf(gain * mel[i] + FRONTEND_LOG_OFFSET);
#if FRONTEND_FEATURES_KIND_MFCC
  {
    uint32_t j;
    for (i = 0; i < FRONTEND_NUM_COEFFS; i++) {
      const float *row = frontend_dct + i * FRONTEND_NUM_MEL_BINS;
      float sum = 0.0f;
      for (j = 0; j < FRONTEND_NUM_MEL_BINS; j++) sum += row[j] * log_mel[j];
      out[i] = sum;
    }
  }
#else
  memcpy(out, log_mel, sizeof(float) * FRONTEND_NUM_COEFFS);
#endif
  if (state->normalize) {
    for (i = 0; i < FRONTEND_NUM_COEFFS; i++) out[i] = (out[i] - frontend_mean[i]) / frontend_std[i];
  }
}

void frontend_mel_frame(frontend_state_t *state, const float *frame, float *out_mel, float *out_peak) {
  float peak = 0.0f;
  uint32_t k;
  for (k = 0; k < FRONTEND_FRAME_LENGTH; k++) {
    const float a = fabsf(frame[k]);
    if (a > peak) peak = a;
  }
  *out_peak = peak;
  magnitude_spectrum(state, frame);
  mel_sums(state, out_mel);
}

void frontend_process_frame(frontend_state_t *state, const float *frame, float *out_features) {
  magnitude_spectrum(state, frame);  /* no peak: the features stay at the samples' level */
  mel_sums(state, state->mel);
  frontend_features_from_mel(state, state->mel, 1.0f, out_features);
}

int frontend_init(frontend_state_t *state) {
  memset(state, 0, sizeof(*state));
  state->normalize = 1;
  return fft_init(state);
}

void frontend_set_normalize(frontend_state_t *state, int on) { state->normalize = on != 0; }

/* The frame at samples[0] is complete: drop one hop. */
static void advance(frontend_state_t *state) {
  if (state->count > FRONTEND_HOP_LENGTH) {
    state->count -= FRONTEND_HOP_LENGTH;
    memmove(state->samples, state->samples + FRONTEND_HOP_LENGTH, sizeof(float) * state->count);
  } else { /* hop > frame: the next frame starts after samples not received yet */
    state->skip = FRONTEND_HOP_LENGTH - state->count;
    state->count = 0;
  }
}

static uint32_t take_skip(frontend_state_t *state, uint32_t n) {
  const uint32_t dropped = state->skip < n ? state->skip : n;
  state->skip -= dropped;
  return dropped;
}

/* Buffer n <= FRONTEND_HOP_LENGTH samples; 1 when a frame is complete, 0 when not, -1 if n is too large. */
static int append_f32(frontend_state_t *state, const float *samples, uint32_t n) {
  uint32_t i;
  if (n > FRONTEND_HOP_LENGTH) return -1;
  for (i = take_skip(state, n); i < n; i++) state->samples[state->count++] = samples[i];
  return state->count >= FRONTEND_FRAME_LENGTH;
}

static int append_s16(frontend_state_t *state, const int16_t *samples, uint32_t n) {
  uint32_t i;
  if (n > FRONTEND_HOP_LENGTH) return -1;
  for (i = take_skip(state, n); i < n; i++) state->samples[state->count++] = (float)samples[i] * (1.0f / 32768.0f);
  return state->count >= FRONTEND_FRAME_LENGTH;
}

static int emit_features(frontend_state_t *state, int ready, float *out_features) {
  if (ready != 1) return ready;
  frontend_process_frame(state, state->samples, out_features);
  advance(state);
  return 1;
}

int frontend_push_samples_f32(frontend_state_t *state, const float *samples, uint32_t n, float *out_features) {
  return emit_features(state, append_f32(state, samples, n), out_features);
}

int frontend_push_samples(frontend_state_t *state, const int16_t *samples, uint32_t n, float *out_features) {
  return emit_features(state, append_s16(state, samples, n), out_features);
}

int frontend_push_samples_mel(frontend_state_t *state, const int16_t *samples, uint32_t n, float *out_mel,
                              float *out_peak) {
  const int ready = append_s16(state, samples, n);
  if (ready != 1) return ready;
  frontend_mel_frame(state, state->samples, out_mel, out_peak);
  advance(state);
  return 1;
}

int frontend_push_hop(frontend_state_t *state, const int16_t *hop_samples, float *out_features) {
  return frontend_push_samples(state, hop_samples, FRONTEND_HOP_LENGTH, out_features);
}

int frontend_push_hop_f32(frontend_state_t *state, const float *hop_samples, float *out_features) {
  return frontend_push_samples_f32(state, hop_samples, FRONTEND_HOP_LENGTH, out_features);
}

void frontend_quantize(const float *features, int n, float scale, int zero_point, int8_t *out) {
  int i;
  for (i = 0; i < n; i++) {
    /* TFLite: (int32)round(x / scale) + zero_point; adding in float is exact below 2^24. */
    float q = roundf(features[i] / scale) + (float)zero_point;
    if (!(q >= -128.0f)) q = -128.0f;
    if (q > 127.0f) q = 127.0f;
    out[i] = (int8_t)q;
  }
}

const char *frontend_fingerprint(void) { return FRONTEND_FINGERPRINT; }
