// TFLM API stub (declarations only, see ../../../README.md).
#ifndef TFLM_API_STUB_SCHEMA_GENERATED_H_
#define TFLM_API_STUB_SCHEMA_GENERATED_H_

#include <cstdint>

namespace tflite {

struct Model {
  uint32_t version() const;
};

const Model* GetModel(const void* buf);

}  // namespace tflite

#endif  // TFLM_API_STUB_SCHEMA_GENERATED_H_
