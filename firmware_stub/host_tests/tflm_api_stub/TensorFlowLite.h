// TFLM API stub (see README.md): stands in for the Arduino_TensorFlowLite library's
// umbrella header, which main.cc includes when ARDUINO is defined.
#ifndef TFLM_API_STUB_TENSORFLOWLITE_H_
#define TFLM_API_STUB_TENSORFLOWLITE_H_
#endif  // TFLM_API_STUB_TENSORFLOWLITE_H_
