/* Audio sources; see audio_provider.h.  C99, no heap. */
#include "audio_provider.h"

#include "golden_clip.h"
#include "model_settings.h"

#if !defined(AUDIO_PROVIDER_BOARD_MICROPHONE)
/* Stub for builds without a board port (host, CI): the microphone stays silent.  Weak
 * with GCC/Clang, so a board file that defines board_microphone_read() replaces it
 * without build flags (what an Arduino sketch needs); other compilers: build the board
 * port with -DAUDIO_PROVIDER_BOARD_MICROPHONE. */
#if defined(__GNUC__)
__attribute__((weak))
#endif
uint32_t board_microphone_read(int16_t *dst, uint32_t max_samples) {
  (void)dst;
  (void)max_samples;
  return 0;
}
#endif

static audio_source_t current_source = AUDIO_SOURCE_GOLDEN;
static uint32_t samples_read = 0;

void audio_provider_init(audio_source_t source) {
  current_source = source;
  samples_read = 0;
}

static uint32_t read_golden(int16_t *dst, uint32_t max_samples) {
  uint32_t n = 0;
  while (n < max_samples && samples_read + n < kClipSamples) {
    dst[n] = g_golden_clip[(samples_read + n) % kGoldenClipSamples];
    n++;
  }
  return n;
}

uint32_t audio_provider_read(int16_t *dst, uint32_t max_samples) {
  const uint32_t n = current_source == AUDIO_SOURCE_GOLDEN ? read_golden(dst, max_samples)
                                                           : board_microphone_read(dst, max_samples);
  samples_read += n;
  return n;
}

uint32_t audio_provider_samples_read(void) { return samples_read; }
