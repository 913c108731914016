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
// TensorE inputs in 16-bit storage for a native low-precision GEMM (native_gemm.h): values rounded to
// `in_dtype` (bf16, fp16, fp8) written as the bit patterns of half_storage(in_dtype) (bf16 holds every fp8
// value exactly). Returns whether any value is "tiny" (has_tiny_half). Parallel for large n.
bool round_to_half(const float* in, uint16_t* out, int64_t n, DType in_dtype);
// out[i] = the fp32 value of the 16-bit pattern in[i] of storage `store` (BF16 or FP16). Parallel for large n.
void widen_half(const uint16_t* in, float* out, int64_t n, DType store);
// Whether a native GEMM's flush-to-zero / denormals-are-zero could change a result: any nonzero 16-bit input
// below 2^-56 (fp16: a denormal), or (has_tiny_f32, for values added to the products: bias, accumulated Out)
// any nonzero fp32 value below 2^-103. Above those bounds every product and partial sum is a multiple of
// 2^-126, so no denormal ever arises and FTZ/DAZ are inert (see tensor_engine.cpp).
bool has_tiny_half(const uint16_t* in, int64_t n, DType store);
bool has_tiny_f32(const float* in, int64_t n);
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
