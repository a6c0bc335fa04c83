/* Host run of the firmware self-test without TFLM.
 *
 *   host_self_test [-o INPUT_OUT] [-s SCORES_IN]
 *
 * Plays the golden clip through audio_provider -> feature_stream exactly as setup() in
 * main.cc does and checks the window against the golden input.  -o writes the window
 * (kFeatureElementCount int8); -s reads kCategoryCount int8 scores (e.g. the TFLM output
 * for that window, computed elsewhere) and checks them too.  Prints the report; exit
 * status 0 when the checks passed (with -s: all of them; without: the input checks).
 */
#include <stdio.h>
#include <string.h>

#include "frontend.h"
#include "golden_clip.h"
#include "model_settings.h"
#include "self_test.h"

static feature_stream_t stream;
static int8_t input[kFeatureElementCount];

int main(int argc, char **argv) {
  const char *out_path = NULL, *scores_path = NULL;
  self_test_report_t report;
  int i, passed;
  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-o") && i + 1 < argc) {
      out_path = argv[++i];
    } else if (!strcmp(argv[i], "-s") && i + 1 < argc) {
      scores_path = argv[++i];
    } else {
      fprintf(stderr, "usage: host_self_test [-o INPUT_OUT] [-s SCORES_IN]\n");
      return 2;
    }
  }
  self_test_begin(&report, frontend_fingerprint(), kGoldenModelBytes);
  if (self_test_play_golden(&stream, input)) {
    fprintf(stderr, "host_self_test: the golden clip did not fill the window\n");
    return 1;
  }
  self_test_check_input(&report, input);
  if (out_path) {
    FILE *out = fopen(out_path, "wb");
    if (!out || fwrite(input, 1, sizeof(input), out) != sizeof(input) || fclose(out)) {
      perror(out_path);
      return 1;
    }
  }
  if (scores_path) {
    int8_t scores[kCategoryCount];
    FILE *in = fopen(scores_path, "rb");
    if (!in || fread(scores, 1, sizeof(scores), in) != sizeof(scores)) {
      perror(scores_path);
      return 1;
    }
    fclose(in);
    self_test_check_scores(&report, scores);
  }
  printf("setup_ok %d\ninput_mismatches %lu\ninput_max_diff %d\n", report.setup_ok,
         (unsigned long)report.input_mismatches, report.input_max_diff);
  if (scores_path)
    printf("top_class %d\nexpected_class %d\nscore_max_diff %d\n", report.top_class, report.expected_class,
           report.score_max_diff);
  passed = scores_path ? self_test_passed(&report) : self_test_input_passed(&report);
  printf("passed %d\n", passed);
  return passed ? 0 : 1;
}
