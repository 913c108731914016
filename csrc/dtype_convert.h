// fp32 -> emulated dtype rounding, bit-exact with torch's .to(dtype): round-to-nearest-even,
// NaN/Inf/denormals preserved as the target format allows. fp8 out-of-range: see dtype_convert.cpp.
#pragma once
#include <cstdint>

#include "common.h"

namespace nemu {

// Round one value to `d` and return it as fp32 (exactly representable in `d`).
float round_to(float x, DType d);
// out[i] = round_to(in[i], d); in == out allowed. Parallel and vectorised for large n.
void round_array(const float* in, float* out, int64_t n, DType d);
// Raw bit patterns of the rounded values: uint16 for bf16/fp16, uint8 for fp8, uint32 for tf32/f32.
uint16_t to_bf16_bits(float x);
uint16_t to_fp16_bits(float x);
uint8_t to_fp8e4m3_bits(float x);
uint8_t to_fp8e5m2_bits(float x);
uint32_t to_tf32_bits(float x);
float bf16_bits_to_float(uint16_t b);
float fp16_bits_to_float(uint16_t b);
float fp8e4m3_bits_to_float(uint8_t b);
float fp8e5m2_bits_to_float(uint8_t b);

}  // namespace nemu
