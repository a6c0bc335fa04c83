// device_check: the firmware on real clips, to compare with Python and to measure its cost.
//
//   device_check CLIPS SCORES [INPUTS]
//   device_check -s RECORDING DECISIONS
//
// Runs setup_and_test() (model, arena, golden-clip self-test: the lines the firmware prints at
// start-up), then every clip of CLIPS (raw little-endian int16, kClipSamples per clip) through
// the firmware's own path: hop by hop through feature_stream_push, then each of the
// FIRMWARE_VIEWS views of the window (feature_buffer_copy_view) through model_runner_invoke.
// SCORES gets the int8 output of every view, kCategoryCount bytes each, clip after clip; INPUTS,
// when given, the int8 input tensor of every view (kFeatureElementCount bytes each).
// Printed at the end, one "check <name> <value>..." line each: clips, views, board clock ticks
// per hop and per invoke, the clock's calibration (Arm) and the peak stack (Arm).
// With -s, RECORDING (raw little-endian int16 of any length) is the microphone: the firmware's own
// loop() runs until it is used up, and DECISIONS gets one line per inference,
// "<frames heard> <top class> <top score> <detected>", as loop() decides.
// Exit status: 0 when the self-test passed and every clip ran, 1 otherwise, 2 on bad usage.
#include <stdio.h>
#include <string.h>

#include "board_clock.h"
#include "feature_stream.h"
#include "firmware_app.h"
#include "inference_schedule.h"
#include "model_runner.h"
#include "model_settings.h"

namespace {

constexpr uint32_t kCalibrationInstructions = 2000000;

feature_stream_t stream;

struct TickStats {
  uint64_t total = 0;
  uint32_t count = 0;
  uint32_t max = 0;
  void Add(uint32_t ticks) {
    total += ticks;
    count++;
    if (ticks > max) max = ticks;
  }
  void Print(const char* name) const {
    printf("check %s total %llu count %lu max %lu\n", name, static_cast<unsigned long long>(total),
           static_cast<unsigned long>(count), static_cast<unsigned long>(max));
  }
};

TickStats hop_ticks, window_ticks, invoke_ticks;
FILE* recording = nullptr;  // the microphone in -s mode
FILE* decisions = nullptr;
bool recording_done = false;

#if defined(__arm__)
// Peak stack: paint the stack below this frame, then find the deepest byte overwritten.
constexpr uint32_t kStackPaintBytes = 24 * 1024;
constexpr uint8_t kPaint = 0xA5;
uint8_t* stack_paint_low = nullptr;
uint8_t* stack_paint_high = nullptr;

__attribute__((noinline)) void PaintStack() {
  uint8_t* here = static_cast<uint8_t*>(__builtin_frame_address(0));
  stack_paint_high = here - 256;  // below this function's own frame
  stack_paint_low = stack_paint_high - kStackPaintBytes;
  for (volatile uint8_t* p = stack_paint_low; p < stack_paint_high; p++) *p = kPaint;
}

uint32_t StackUsedBelowMain() {
  const uint8_t* p = stack_paint_low;
  while (p < stack_paint_high && *p == kPaint) p++;
  return static_cast<uint32_t>(stack_paint_high - p) + 256;
}
#endif

// Up to kHopLength little-endian int16 from the file, whatever the host's byte order.
uint32_t ReadHop(FILE* in, int16_t* hop, uint32_t want) {
  uint8_t bytes[2 * kHopLength];
  const uint32_t got = static_cast<uint32_t>(fread(bytes, 2, want, in));
  for (uint32_t i = 0; i < got; i++) {
    hop[i] = static_cast<int16_t>(static_cast<uint16_t>(bytes[2 * i] | bytes[2 * i + 1] << 8));
  }
  return got;
}

// One clip from `in` through the front end and every view through the model. 0: done,
// 1: no clip left, -1: failed.
int RunClip(FILE* in, FILE* out, FILE* inputs) {
  int16_t hop[kHopLength];
  if (feature_stream_init(&stream) != 0) return -1;
  for (uint32_t at = 0; at < kClipSamples; at += kHopLength) {
    const uint32_t n = kClipSamples - at < kHopLength ? kClipSamples - at : kHopLength;
    const uint32_t got = ReadHop(in, hop, n);
    if (got != n) return at == 0 && got == 0 ? 1 : -1;
    const uint32_t start = board_clock_now();
    feature_stream_push(&stream, hop, n);
    hop_ticks.Add(board_clock_elapsed(start));
  }
  if (!feature_stream_full(&stream)) {
    printf("a clip of %d samples gave %lu frames, the model needs %d\n", kClipSamples,
           static_cast<unsigned long>(stream.frames), kNumFrames);
    return -1;
  }
  const uint32_t window_start = board_clock_now();
  const feature_buffer_t *window = feature_stream_window(&stream);  // level normalisation, once per inference
  window_ticks.Add(board_clock_elapsed(window_start));
  for (uint32_t view = 0; view < FIRMWARE_VIEWS; view++) {
    feature_buffer_copy_view(window, view, FIRMWARE_TIME_ROLLS, FIRMWARE_MEL_SHIFTS, model_runner_input());
    if (inputs != nullptr && fwrite(model_runner_input(), 1, kFeatureElementCount, inputs) != kFeatureElementCount) {
      return -1;
    }
    const uint32_t start = board_clock_now();
    const bool ok = model_runner_invoke() == MODEL_RUNNER_OK;
    invoke_ticks.Add(board_clock_elapsed(start));
    if (!ok || fwrite(model_runner_output(), 1, kCategoryCount, out) != kCategoryCount) return -1;
  }
  return 0;
}

// -s: the recording through the firmware's loop(), as a board's microphone would deliver it.
int RunRecording(const char* recording_path, const char* decisions_path) {
  recording = fopen(recording_path, "rb");
  decisions = fopen(decisions_path, "w");
  if (recording == nullptr || decisions == nullptr) {
    printf("cannot open %s or %s\n", recording_path, decisions_path);
    return 1;
  }
  const bool passed = setup_and_test();
  if (!firmware_ready()) {
    printf("firmware set-up failed: see the lines above\n");
    return 1;
  }
  while (!recording_done) loop();
  fclose(recording);
  return fclose(decisions) == 0 && passed ? 0 : 1;
}

}  // namespace

extern "C" uint32_t board_microphone_read(int16_t* dst, uint32_t max_samples) {
  if (recording == nullptr) return 0;
  const uint32_t n = ReadHop(recording, dst, max_samples < kHopLength ? max_samples : kHopLength);
  recording_done = n == 0;
  return n;
}

void firmware_decision(uint32_t frames, const postprocess_result_t& result) {
  if (decisions != nullptr) {
    fprintf(decisions, "%lu %d %.6f %d\n", static_cast<unsigned long>(frames), result.top_class,
            static_cast<double>(result.top_score), result.detected);
  }
}

int main(int argc, char** argv) {
#if defined(__arm__)
  PaintStack();
#endif
  board_clock_init();
  if (argc == 4 && strcmp(argv[1], "-s") == 0) return RunRecording(argv[2], argv[3]);
  if (argc != 3 && argc != 4) {
    printf("usage: device_check CLIPS SCORES [INPUTS] | device_check -s RECORDING DECISIONS\n");
    return 2;
  }
  const bool passed = setup_and_test();
  if (!firmware_ready()) {
    printf("firmware set-up failed: see the lines above\n");
    return 1;
  }
  FILE* in = fopen(argv[1], "rb");
  FILE* out = fopen(argv[2], "wb");
  FILE* inputs = argc == 4 ? fopen(argv[3], "wb") : nullptr;
  if (in == nullptr || out == nullptr || (argc == 4 && inputs == nullptr)) {
    printf("cannot open %s or %s\n", argv[1], argv[2]);
    return 1;
  }
  uint32_t clips = 0;
  int status;
  while ((status = RunClip(in, out, inputs)) == 0) clips++;
  bool ok = status == 1;
  fclose(in);
  if (inputs != nullptr) ok = fclose(inputs) == 0 && ok;
  ok = fclose(out) == 0 && ok;
  printf("check clips %lu views %d classes %d\n", static_cast<unsigned long>(clips), FIRMWARE_VIEWS, kCategoryCount);
  printf("check clock %s\n", board_clock_unit());
  hop_ticks.Print("hop_ticks");
  window_ticks.Print("window_ticks");
  invoke_ticks.Print("invoke_ticks");
  printf("check calibration_ticks %lu instructions %lu\n",
         static_cast<unsigned long>(board_clock_calibrate(kCalibrationInstructions)),
         static_cast<unsigned long>(kCalibrationInstructions));
#if defined(__arm__)
  printf("check stack_peak_bytes %lu\n", static_cast<unsigned long>(StackUsedBelowMain()));
#endif
  return passed && ok ? 0 : 1;
}
