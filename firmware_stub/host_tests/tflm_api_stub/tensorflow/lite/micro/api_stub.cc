// TFLM API stub (see ../../../README.md): dummy bodies so that a build against this tree
// links.  Nothing runs a model: AllocateTensors() always fails.
#include <cstdarg>
#include <cstdio>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/system_setup.h"

void MicroPrintf(const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::vprintf(format, args);
  va_end(args);
  std::printf("\n");
}

namespace tflite {

void InitializeTarget() {}

uint32_t Model::version() const { return TFLITE_SCHEMA_VERSION; }

const Model* GetModel(const void* buf) { return static_cast<const Model*>(buf); }

MicroInterpreter::MicroInterpreter(const Model*, const MicroOpResolver&, uint8_t*, size_t, MicroResourceVariables*,
                                   MicroProfilerInterface*, bool) {}
MicroInterpreter::~MicroInterpreter() {}
TfLiteStatus MicroInterpreter::AllocateTensors() { return kTfLiteError; }
TfLiteStatus MicroInterpreter::Invoke() { return kTfLiteError; }
TfLiteTensor* MicroInterpreter::input(size_t) { return nullptr; }
TfLiteTensor* MicroInterpreter::output(size_t) { return nullptr; }
size_t MicroInterpreter::arena_used_bytes() const { return 0; }

}  // namespace tflite
