// The int8 model in TFLM; see model_runner.h.
#include "model_runner.h"

#include <cmath>

#include "model_data.h"
#include "model_op_resolver.h"
#include "model_settings.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {

alignas(16) uint8_t tensor_arena[kTensorArenaSize];
tflite::MicroInterpreter* interpreter = nullptr;
TfLiteTensor* input = nullptr;
TfLiteTensor* output = nullptr;

bool HasShape(const TfLiteTensor* tensor, const int* dims, int rank) {
  if (tensor->dims->size != rank) return false;
  for (int i = 0; i < rank; i++) {
    if (tensor->dims->data[i] != dims[i]) return false;
  }
  return true;
}

// The export writes the scales as float literals that read back exactly; allow for
// nothing but float rounding.
bool HasQuantization(const TfLiteTensor* tensor, float scale, int zero_point) {
  return tensor->type == kTfLiteInt8 && tensor->params.zero_point == zero_point &&
         std::fabs(tensor->params.scale - scale) <= 1e-6f * scale;
}

}  // namespace

model_runner_status_t model_runner_init(void) {
  if (input != nullptr) return MODEL_RUNNER_OK;  // initialised before: the interpreter is static
  const tflite::Model* model = tflite::GetModel(g_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    MicroPrintf("model schema %d, TFLM expects %d", static_cast<int>(model->version()), TFLITE_SCHEMA_VERSION);
    return MODEL_RUNNER_BAD_SCHEMA;
  }
  static ModelOpResolver op_resolver;
  static bool ops_registered = false;  // a resolver refuses an op registered twice: a retry registers none
  if (!ops_registered) {
    if (RegisterModelOps(op_resolver) != kTfLiteOk) return MODEL_RUNNER_OPS_FAILED;
    ops_registered = true;
  }

  static tflite::MicroInterpreter static_interpreter(model, op_resolver, tensor_arena, kTensorArenaSize);
  interpreter = &static_interpreter;
  if (interpreter->AllocateTensors() != kTfLiteOk) {
    MicroPrintf("AllocateTensors() failed with a %d-byte arena", kTensorArenaSize);
    return MODEL_RUNNER_ALLOC_FAILED;
  }
  TfLiteTensor* in = interpreter->input(0);
  TfLiteTensor* out = interpreter->output(0);
  const int input_dims[] = {1, kNumCoefficients, kNumFrames, 1};
  const int output_dims[] = {1, kCategoryCount};
  if (!HasShape(in, input_dims, 4) || !HasQuantization(in, kInputScale, kInputZeroPoint) ||
      !HasShape(out, output_dims, 2) || !HasQuantization(out, kOutputScale, kOutputZeroPoint)) {
    MicroPrintf("model tensors do not match model_settings.h: regenerate both from one export");
    return MODEL_RUNNER_BAD_TENSORS;
  }
  input = in;  // set only once every check passed: they mark a usable model
  output = out;
  return MODEL_RUNNER_OK;
}

int8_t* model_runner_input(void) { return input != nullptr ? input->data.int8 : nullptr; }

model_runner_status_t model_runner_invoke(void) {
  if (input == nullptr) return MODEL_RUNNER_INVOKE_FAILED;
  return interpreter->Invoke() == kTfLiteOk ? MODEL_RUNNER_OK : MODEL_RUNNER_INVOKE_FAILED;
}

const int8_t* model_runner_output(void) { return output != nullptr ? output->data.int8 : nullptr; }

size_t model_runner_arena_used(void) { return input != nullptr ? interpreter->arena_used_bytes() : 0; }
