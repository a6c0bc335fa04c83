/* Start-up self-test: the golden clip through the whole device path, checked against the
 * values Python computed for it (golden_clip.h / golden_clip.c, made by make_golden).
 *
 * Pass criteria (the device front end is float32 like training, but its FFT and logf are
 * not bit-identical to TensorFlow's, so an int8 input element right at a rounding
 * boundary may land one step away):
 *   - the front end tables and the model are the ones the golden clip was made with;
 *   - every input element within SELF_TEST_MAX_INPUT_DIFF of the expected one, and at most
 *     SELF_TEST_MAX_MISMATCH_PERMILLE per mille of them different at all;
 *   - the same top class, every int8 score within SELF_TEST_MAX_SCORE_DIFF.
 * C99, no heap.
 */
#ifndef ESC_TF_SELF_TEST_H_
#define ESC_TF_SELF_TEST_H_

#include <stdint.h>

#include "feature_stream.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SELF_TEST_MAX_INPUT_DIFF 1
#define SELF_TEST_MAX_MISMATCH_PERMILLE 10
#define SELF_TEST_MAX_SCORE_DIFF 4

typedef struct {
  int setup_ok;              /* fingerprint and model size match the golden clip's and model_settings.h's */
  uint32_t input_mismatches; /* input elements that differ from the golden input */
  int input_max_diff;        /* largest |difference| among them */
  int top_class;             /* argmax of the device's scores */
  int expected_class;        /* argmax of the golden scores */
  int score_max_diff;        /* largest |int8 score difference| */
  int checked;               /* bit 0: input checked, bit 1: scores checked */
} self_test_report_t;

/* Play the golden clip (audio_provider, AUDIO_SOURCE_GOLDEN) through a freshly reset
 * stream and copy the window to input (kFeatureElementCount int8).  Returns 0, or -1 if
 * the clip did not fill the window.  Leaves the audio source on the golden clip. */
int self_test_play_golden(feature_stream_t *stream, int8_t *input);

/* Start a report: checks the front end fingerprint and the model size. */
void self_test_begin(self_test_report_t *report, const char *frontend_fingerprint, uint32_t model_bytes);

/* Compare the model input tensor (kGoldenInputCount int8) with the golden one. */
void self_test_check_input(self_test_report_t *report, const int8_t *input);

/* Compare the model output (kGoldenScoreCount int8) with the golden scores. */
void self_test_check_scores(self_test_report_t *report, const int8_t *scores);

/* 1 when setup and the input check passed (what a host without TFLM can check). */
int self_test_input_passed(const self_test_report_t *report);

/* 1 when every check ran and passed. */
int self_test_passed(const self_test_report_t *report);

#ifdef __cplusplus
}
#endif

#endif /* ESC_TF_SELF_TEST_H_ */
