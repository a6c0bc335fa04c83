/* The TFLM part of the firmware: the int8 model in a MicroInterpreter.
 *
 * C-callable so the rest of the application stays C.  The interpreter, the op resolver
 * (RegisterModelOps from the generated model_op_resolver.h) and the tensor arena
 * (kTensorArenaSize bytes, measured by the export) are static: no heap.
 */
#ifndef ESC_TF_MODEL_RUNNER_H_
#define ESC_TF_MODEL_RUNNER_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  MODEL_RUNNER_OK = 0,
  MODEL_RUNNER_BAD_SCHEMA = -1,    /* model_data.cc is not a TFLite flatbuffer of this schema */
  MODEL_RUNNER_OPS_FAILED = -2,    /* RegisterModelOps failed */
  MODEL_RUNNER_ALLOC_FAILED = -3,  /* AllocateTensors failed: arena too small or op missing */
  MODEL_RUNNER_BAD_TENSORS = -4,   /* input/output shape, type or quantisation != model_settings.h */
  MODEL_RUNNER_INVOKE_FAILED = -5
} model_runner_status_t;

/* Load g_model_data, allocate tensors and check them against model_settings.h.  Once it has returned
 * MODEL_RUNNER_OK, later calls return MODEL_RUNNER_OK at once; after a failure, a call tries again. */
model_runner_status_t model_runner_init(void);

/* The input tensor: kFeatureElementCount int8, [1, kNumCoefficients, kNumFrames, 1]; NULL until init succeeded. */
int8_t *model_runner_input(void);

/* Run the model on the input tensor (MODEL_RUNNER_INVOKE_FAILED before init succeeded). */
model_runner_status_t model_runner_invoke(void);

/* The output tensor: kCategoryCount int8 logits (kOutputScale, kOutputZeroPoint); NULL until init succeeded. */
const int8_t *model_runner_output(void);

/* Arena bytes the interpreter actually uses (0 until init succeeded). */
size_t model_runner_arena_used(void);

#ifdef __cplusplus
}
#endif

#endif /* ESC_TF_MODEL_RUNNER_H_ */
