// TFLM API stub (declarations only, see ../../../README.md).
#ifndef TFLM_API_STUB_SYSTEM_SETUP_H_
#define TFLM_API_STUB_SYSTEM_SETUP_H_

namespace tflite {
void InitializeTarget();
}  // namespace tflite

#endif  // TFLM_API_STUB_SYSTEM_SETUP_H_
