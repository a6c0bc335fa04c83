/* Golden-clip self-test; see self_test.h.  C99, no heap. */
#include "self_test.h"

#include <string.h>

#include "audio_provider.h"
#include "golden_clip.h"
#include "model_settings.h"

#if kGoldenInputCount != kFeatureElementCount || kGoldenScoreCount != kCategoryCount
#error "golden_clip.h was made for another model: run make_golden again"
#endif

static int argmax(const int8_t *x, int n) {
  int best = 0, i;
  for (i = 1; i < n; i++)
    if (x[i] > x[best]) best = i;
  return best;
}

int self_test_play_golden(feature_stream_t *stream, int8_t *input) {
  int16_t hop[kHopLength];
  uint32_t n;
  audio_provider_init(AUDIO_SOURCE_GOLDEN);
  if (feature_stream_init(stream)) return -1;
  while ((n = audio_provider_read(hop, kHopLength)) > 0) feature_stream_push(stream, hop, n);
  if (!feature_stream_full(stream)) return -1;
  feature_buffer_copy(feature_stream_window(stream), input);
  return 0;
}

void self_test_begin(self_test_report_t *report, const char *frontend_fingerprint, uint32_t model_bytes) {
  memset(report, 0, sizeof(*report));
  /* the front end built in, the model's settings and the golden clip must all come from one export */
  report->setup_ok = strcmp(frontend_fingerprint, kGoldenFrontendFingerprint) == 0 &&
                     strcmp(frontend_fingerprint, kFrontendFingerprint) == 0 && model_bytes == kGoldenModelBytes;
  report->expected_class = kGoldenExpectedClass;
}

void self_test_check_input(self_test_report_t *report, const int8_t *input) {
  uint32_t i;
  for (i = 0; i < kGoldenInputCount; i++) {
    const int diff = input[i] > g_golden_input[i] ? input[i] - g_golden_input[i] : g_golden_input[i] - input[i];
    if (diff) report->input_mismatches++;
    if (diff > report->input_max_diff) report->input_max_diff = diff;
  }
  report->checked |= 1;
}

void self_test_check_scores(self_test_report_t *report, const int8_t *scores) {
  int i;
  for (i = 0; i < kGoldenScoreCount; i++) {
    const int diff = scores[i] > g_golden_scores[i] ? scores[i] - g_golden_scores[i] : g_golden_scores[i] - scores[i];
    if (diff > report->score_max_diff) report->score_max_diff = diff;
  }
  report->top_class = argmax(scores, kGoldenScoreCount);
  report->checked |= 2;
}

int self_test_input_passed(const self_test_report_t *report) {
  return (report->checked & 1) && report->setup_ok && report->input_max_diff <= SELF_TEST_MAX_INPUT_DIFF &&
         report->input_mismatches * 1000u <= (uint32_t)SELF_TEST_MAX_MISMATCH_PERMILLE * kGoldenInputCount;
}

int self_test_passed(const self_test_report_t *report) {
  return self_test_input_passed(report) && (report->checked & 2) && report->top_class == report->expected_class &&
         report->score_max_diff <= SELF_TEST_MAX_SCORE_DIFF;
}
