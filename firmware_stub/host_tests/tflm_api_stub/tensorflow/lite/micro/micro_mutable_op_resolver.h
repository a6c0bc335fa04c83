// TFLM API stub (see ../../../README.md): the Add* methods of tflite::MicroMutableOpResolver
// that exported models are likely to need, with dummy bodies.
#ifndef TFLM_API_STUB_MICRO_MUTABLE_OP_RESOLVER_H_
#define TFLM_API_STUB_MICRO_MUTABLE_OP_RESOLVER_H_

#include "tensorflow/lite/c/common.h"

namespace tflite {

class MicroOpResolver {
 public:
  virtual ~MicroOpResolver() {}
};

template <unsigned int tOpCount>
class MicroMutableOpResolver : public MicroOpResolver {
 public:
  TfLiteStatus AddAdd() { return kTfLiteOk; }
  TfLiteStatus AddAveragePool2D() { return kTfLiteOk; }
  TfLiteStatus AddConcatenation() { return kTfLiteOk; }
  TfLiteStatus AddConv2D() { return kTfLiteOk; }
  TfLiteStatus AddDepthwiseConv2D() { return kTfLiteOk; }
  TfLiteStatus AddDequantize() { return kTfLiteOk; }
  TfLiteStatus AddFullyConnected() { return kTfLiteOk; }
  TfLiteStatus AddLogistic() { return kTfLiteOk; }
  TfLiteStatus AddMaxPool2D() { return kTfLiteOk; }
  TfLiteStatus AddMean() { return kTfLiteOk; }
  TfLiteStatus AddMul() { return kTfLiteOk; }
  TfLiteStatus AddPad() { return kTfLiteOk; }
  TfLiteStatus AddQuantize() { return kTfLiteOk; }
  TfLiteStatus AddRelu() { return kTfLiteOk; }
  TfLiteStatus AddRelu6() { return kTfLiteOk; }
  TfLiteStatus AddReshape() { return kTfLiteOk; }
  TfLiteStatus AddSoftmax() { return kTfLiteOk; }
};

}  // namespace tflite

#endif  // TFLM_API_STUB_MICRO_MUTABLE_OP_RESOLVER_H_
