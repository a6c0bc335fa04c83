// TFLM API stub (declarations only, see ../../../README.md).
#ifndef TFLM_API_STUB_MICRO_LOG_H_
#define TFLM_API_STUB_MICRO_LOG_H_

void MicroPrintf(const char* format, ...);

#endif  // TFLM_API_STUB_MICRO_LOG_H_
