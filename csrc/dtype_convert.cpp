#include "dtype_convert.h"
#include <cstring>
namespace nemu {
float round_to(float x, DType d) { return x; }
void round_array(const float* in, float* out, int64_t n, DType d) { if (in != out) std::memcpy(out, in, n * 4); }
uint16_t to_bf16_bits(float x) { return 0; }
uint16_t to_fp16_bits(float x) { return 0; }
uint8_t to_fp8e4m3_bits(float x) { return 0; }
uint8_t to_fp8e5m2_bits(float x) { return 0; }
uint32_t to_tf32_bits(float x) { return 0; }
float bf16_bits_to_float(uint16_t b) { return 0; }
float fp16_bits_to_float(uint16_t b) { return 0; }
float fp8e4m3_bits_to_float(uint8_t b) { return 0; }
float fp8e5m2_bits_to_float(uint8_t b) { return 0; }
}  // namespace nemu
