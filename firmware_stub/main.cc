// ESC-50 sound classifier on TensorFlow Lite Micro, in the style of TFLM's micro_speech.
//
// setup(): load the model, run the golden-clip self-test, switch to the microphone.
// loop():  one hop of audio -> front end -> window; once the window is full, run the model
//          every kInferenceStrideFrames new frames and post-process.  The board's
//          microphone driver must buffer the audio that arrives while Invoke() runs.
// Arduino calls setup()/loop() itself; elsewhere main() below does (unless FIRMWARE_NO_MAIN:
// device_check_main.cc runs setup_and_test() and then real clips instead of the microphone).
#if defined(ARDUINO)
#include <TensorFlowLite.h>  // puts the Arduino TFLM library on the include path
#endif

#include "audio_provider.h"
#include "firmware_app.h"
#include "feature_stream.h"
#include "frontend.h"
#include "inference_schedule.h"
#include "model_data.h"
#include "model_runner.h"
#include "model_settings.h"
#include "postprocess.h"
#include "self_test.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/system_setup.h"

namespace {

constexpr uint32_t kInferenceStrideFrames =
    FIRMWARE_INFERENCE_STRIDE_FRAMES > 0 ? FIRMWARE_INFERENCE_STRIDE_FRAMES : 1;

feature_stream_t stream;
postprocess_t postprocess;
int16_t hop[kHopLength];
uint32_t frames_since_inference = 0;
bool ready = false;

bool RunSelfTest() {
  self_test_report_t report;
  self_test_begin(&report, frontend_fingerprint(), g_model_data_len);
  if (self_test_play_golden(&stream, model_runner_input()) == 0) {
    self_test_check_input(&report, model_runner_input());
    if (model_runner_invoke() == MODEL_RUNNER_OK) self_test_check_scores(&report, model_runner_output());
  }
  const bool passed = self_test_passed(&report) != 0;
  MicroPrintf("self-test %s: setup %d, input %d/%d differ (max %d), class %d expected %d, score diff %d",
              passed ? "PASSED" : "FAILED", report.setup_ok, static_cast<int>(report.input_mismatches),
              kFeatureElementCount, report.input_max_diff, report.top_class, report.expected_class,
              report.score_max_diff);
  return passed;
}

}  // namespace

void setup() { setup_and_test(); }

bool firmware_ready() { return ready; }

bool setup_and_test() {
  tflite::InitializeTarget();
  MicroPrintf("front end %s, model %d bytes, arena %d bytes", frontend_fingerprint(),
              static_cast<int>(g_model_data_len), kTensorArenaSize);
  const model_runner_status_t status = model_runner_init();
  if (status != MODEL_RUNNER_OK) {
    MicroPrintf("model_runner_init failed (%d)", static_cast<int>(status));
    return false;
  }
  MicroPrintf("arena used %d bytes", static_cast<int>(model_runner_arena_used()));
  const bool passed = RunSelfTest();  // reported, not fatal: a failing board still shows what it hears
  if (postprocess_init(&postprocess, FIRMWARE_AVERAGE_WINDOW, FIRMWARE_VIEWS, FIRMWARE_SCORE_THRESHOLD) != 0 ||
      feature_stream_init(&stream) != 0) {
    MicroPrintf("post-processing or front end set-up failed");
    return false;
  }
  audio_provider_init(AUDIO_SOURCE_MICROPHONE);
  ready = true;
  return passed;
}

void loop() {
  if (!ready) return;
  const uint32_t n = audio_provider_read(hop, kHopLength);
  if (n == 0 || feature_stream_push(&stream, hop, n) != 1) return;
  if (!feature_stream_full(&stream)) return;
  const bool due = frames_since_inference == 0;  // the first full window, then every stride
  frames_since_inference = (frames_since_inference + 1) % kInferenceStrideFrames;
  if (!due) return;

  // The window is copied in every time: Invoke() may overwrite the input tensor's bytes.
  // One inference is FIRMWARE_VIEWS invokes: the window's rotations at each mel shift.
  postprocess_result_t result;
  bool decided = false;
  const feature_buffer_t *window = feature_stream_window(&stream);
  for (uint32_t view = 0; view < FIRMWARE_VIEWS; view++) {
    feature_buffer_copy_view(window, view, FIRMWARE_TIME_ROLLS, FIRMWARE_MEL_SHIFTS, model_runner_input());
    if (model_runner_invoke() != MODEL_RUNNER_OK) {
      MicroPrintf("Invoke failed");
      postprocess.views_in = 0;  // drop this inference's views: the next one starts afresh
      return;
    }
    decided = postprocess_update(&postprocess, model_runner_output(), &result) != 0;
  }
  if (!decided) return;
  firmware_decision(stream.frames, result);
  if (result.detected) {
    MicroPrintf("heard %s (%d%%)", kCategoryLabels[result.top_class],
                static_cast<int>(result.top_score * 100.0f + 0.5f));
  }
}

#if defined(__GNUC__)
__attribute__((weak))
#endif
void firmware_decision(uint32_t frames, const postprocess_result_t& result) {
  (void)frames;
  (void)result;
}

#if !defined(ARDUINO) && !defined(FIRMWARE_NO_MAIN)
int main() {
  setup();
  for (;;) loop();
}
#endif
