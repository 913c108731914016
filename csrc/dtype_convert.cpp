// fp32 -> emulated dtype rounding, bit-exact with torch 2.13's CPU `.to(dtype)` (and `.to(dtype).float()`
// for the fp32 storage values that round_to / round_array return). All conversions round to nearest, ties
// to even. Every per-element function below is branch-free (selects only) so the loops in round_array
// vectorise; tests/test_dtype_convert.py checks them against torch bit for bit.
//
// Special values (what torch 2.13 does on x86-64 CPU, which is what we emulate):
//  * bf16: NaN -> 0xFFFF (torch's vectorised AVX2/AVX-512 cvtfp32_bf16 writes 0xFFFF for any NaN, on
//    every tensor size we tried; the scalar c10::BFloat16 path would give 0x7FC0 but .to() does not take it).
//    Overflow rounds to +-inf as IEEE RNE does.
//  * fp16: IEEE RNE (F16C vcvtps2ph semantics): overflow -> +-inf, NaN -> sign | 0x7E00 | top 9 payload bits.
//  * tf32 (no torch dtype): fp32 exponent, 10-bit mantissa, RNE on the 13 dropped bits; overflow of the
//    largest finite values rounds to +-inf; NaN stays NaN: sign | quiet bit | top 9 payload bits (we define
//    this; TensorE tf32 NaN payloads are unpublished). Denormals round on the same bit grid.
//  * fp8 e4m3fn (no inf; max 448; NaN = S.1111.111): torch >= 2.8's c10 fp8e4m3fn_from_fp32_value
//    (torch/headeronly/util/Float8_e4m3fn.h) SATURATES: finite values beyond the range and +-inf become +-448,
//    NaN -> 0x7F | sign. This matches the OCP FP8 "saturate" conversion mode and NVIDIA's __NV_SATFINITE default.
//    Neuron: the compiler's `--enable-saturate-infinity` flag (neuronx-cc CLI reference, summarised in
//    docs/reference/neuron-api.md "--enable-saturate-infinity: +-inf -> MAX/MIN_FLOAT in compiler-inserted
//    matmul transposes") shows the hardware path itself does not saturate by default; the NKI docs do not
//    publish the fp8 cast's overflow rule. We follow torch (the oracle of our tests and of the user's model).
//    Older torch (<= 2.7) produced NaN for |x| >= 480; not emulated.
//  * fp8 e5m2 (IEEE-like, has inf; max 57344): torch's fp8e5m2_from_fp32_value does NOT saturate:
//    |x| >= 65536 or a rounding carry past 57344 (x >= 61440) -> +-inf, NaN -> 0x7F | sign.
#include "dtype_convert.h"
#include "thread_pool.h"

// The conversions compute every path (incl. an fp add for denormals) and select; without this GCC will not
// if-convert the selects (an fp add "might trap"), and the fp16/fp8 loops would stay scalar.
#pragma GCC optimize("no-trapping-math")

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>

#include "simd.h"

namespace nemu {

namespace {

inline uint32_t fbits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float bitsf(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

// ---- bf16 ----
inline uint32_t bf16_bits(uint32_t u) {
  const uint32_t r = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  return (u & 0x7FFFFFFFu) > 0x7F800000u ? 0xFFFFu : r;
}

// ---- fp16 (IEEE binary16) ----
inline uint32_t fp16_bits(uint32_t u) {
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7FFFFFFFu;
  // normal: rebias exponent (127 -> 15) and round the 13 dropped bits; carries may reach inf (0x7C00)
  const uint32_t rb = a - (112u << 23);
  const uint32_t normal = (rb + 0xFFFu + ((rb >> 13) & 1u)) >> 13;
  // below 2^-14: add 0.5 so the FPU rounds (RNE) to the denormal grid 2^-24, then take the low bits
  const uint32_t denorm = fbits(bitsf(a) + 0.5f) - fbits(0.5f);
  const uint32_t nan = 0x7E00u | ((a >> 13) & 0x3FFu);
  uint32_t r = a < (113u << 23) ? denorm : normal;
  r = a >= (143u << 23) ? 0x7C00u : r;  // >= 65536 (and inf): inf
  r = a > 0x7F800000u ? nan : r;
  return sign | r;
}

inline uint32_t fp16_to_f32_bits(uint32_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
  const uint32_t normal = ((e + 112u) << 23) | (m << 13);
  // denormal: m * 2^-24 exactly (m < 1024 is exact in fp32)
  const uint32_t denorm = fbits(static_cast<float>(static_cast<int32_t>(m)) * 5.9604644775390625e-8f);
  const uint32_t special = 0x7F800000u | (m << 13) | (m ? 0x400000u : 0u);  // inf, or quiet NaN
  uint32_t r = e == 0 ? denorm : normal;
  r = e == 31 ? special : r;
  return sign | r;
}

// ---- fp8 e4m3fn (torch 2.13 semantics: saturating) ----
inline uint32_t e4m3_bits(uint32_t u) {
  const uint32_t sign = (u >> 24) & 0x80u;
  const uint32_t a = u & 0x7FFFFFFFu;
  const uint32_t rb = a - (120u << 23);
  uint32_t normal = (rb + 0x7FFFFu + ((rb >> 20) & 1u)) >> 20;
  normal = normal >= 0x7Fu ? 0x7Eu : normal;  // a rounding carry into the NaN code saturates
  const uint32_t denorm = fbits(bitsf(a) + bitsf(141u << 23)) - (141u << 23);  // grid 2^-9
  uint32_t r = a < (121u << 23) ? denorm : normal;
  r = a >= (1087u << 20) ? 0x7Eu : r;  // >= 480 and inf: saturate to 448
  r = a > 0x7F800000u ? 0x7Fu : r;
  return sign | r;
}

inline uint32_t e4m3_to_f32_bits(uint32_t b) {
  const uint32_t sign = (b & 0x80u) << 24;
  const uint32_t e = (b >> 3) & 0xFu, m = b & 7u;
  const uint32_t normal = ((e + 120u) << 23) | (m << 20);
  const uint32_t denorm = fbits(static_cast<float>(static_cast<int32_t>(m)) * 0.001953125f);  // m * 2^-9
  uint32_t r = e == 0 ? denorm : normal;
  r = (b & 0x7Fu) == 0x7Fu ? 0x7FF00000u : r;  // what torch's fp8e4m3fn_to_fp32_value yields
  return sign | r;
}

// ---- fp8 e5m2 (torch semantics: overflow -> inf) ----
inline uint32_t e5m2_bits(uint32_t u) {
  const uint32_t sign = (u >> 24) & 0x80u;
  const uint32_t a = u & 0x7FFFFFFFu;
  const uint32_t rb = a - (112u << 23);
  const uint32_t normal = (rb + 0xFFFFFu + ((rb >> 21) & 1u)) >> 21;  // carry past 0x7B gives inf 0x7C
  const uint32_t denorm = fbits(bitsf(a) + bitsf(134u << 23)) - (134u << 23);  // grid 2^-16
  uint32_t r = a < (113u << 23) ? denorm : normal;
  r = a >= (143u << 23) ? 0x7Cu : r;
  r = a > 0x7F800000u ? 0x7Fu : r;
  return sign | r;
}

inline uint32_t e5m2_to_f32_bits(uint32_t b) { return fp16_to_f32_bits(b << 8); }

// ---- tf32 ----
inline uint32_t tf32_bits(uint32_t u) {
  const uint32_t r = (u + 0xFFFu + ((u >> 13) & 1u)) & 0xFFFFE000u;
  const uint32_t nan = (u & 0xFFFFE000u) | 0x00400000u;
  return (u & 0x7FFFFFFFu) > 0x7F800000u ? nan : r;
}

// fp32 storage of the rounded value, one element (branch-free).
inline uint32_t round_bits(uint32_t u, DType d) {
  switch (d) {
    case DType::BF16: return bf16_bits(u) << 16;
    case DType::FP16: return fp16_to_f32_bits(fp16_bits(u));
    case DType::TF32: return tf32_bits(u);
    case DType::FP8E4M3: return e4m3_to_f32_bits(e4m3_bits(u));
    case DType::FP8E5M2: return e5m2_to_f32_bits(e5m2_bits(u));
    case DType::F32: break;
  }
  return u;
}

// One loop per dtype so each inner loop is a straight select chain the compiler vectorises.
template <uint32_t (*F)(uint32_t)>
NEMU_ALWAYS_INLINE void round_loop(const float* in_, float* out_, int64_t n) {
  // in == out is allowed: each element is read once then written at the same index, so the loop
  // has no cross-iteration dependence even when the buffers alias. We go through uint32 copies.
  const uint32_t* in = reinterpret_cast<const uint32_t*>(in_);
  uint32_t* out = reinterpret_cast<uint32_t*>(out_);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = F(in[i]);
}

inline uint32_t r_bf16(uint32_t u) { return bf16_bits(u) << 16; }
inline uint32_t r_fp16(uint32_t u) { return fp16_to_f32_bits(fp16_bits(u)); }
inline uint32_t r_tf32(uint32_t u) { return tf32_bits(u); }
inline uint32_t r_e4m3(uint32_t u) { return e4m3_to_f32_bits(e4m3_bits(u)); }
inline uint32_t r_e5m2(uint32_t u) { return e5m2_to_f32_bits(e5m2_bits(u)); }

NEMU_ALWAYS_INLINE void round_serial_body(const float* in, float* out, int64_t n, DType d) {
  switch (d) {
    case DType::F32:
      if (in != out) std::memmove(out, in, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::BF16: round_loop<r_bf16>(in, out, n); return;
    case DType::FP16: round_loop<r_fp16>(in, out, n); return;
    case DType::TF32: round_loop<r_tf32>(in, out, n); return;
    case DType::FP8E4M3: round_loop<r_e4m3>(in, out, n); return;
    case DType::FP8E5M2: round_loop<r_e5m2>(in, out, n); return;
  }
}
NEMU_SIMD_DISPATCH(round_serial, (const float* in, float* out, int64_t n, DType d), (in, out, n, d))

// ---- 16-bit storage for native GEMMs ----
constexpr uint32_t kTinyBf16 = (127u - 56u) << 7;  // bf16 magnitude bits of 2^-56
constexpr uint32_t kTinyF32 = (127u - 103u) << 23;  // fp32 magnitude bits of 2^-103

inline uint32_t h_bf16(uint32_t u) { return bf16_bits(u); }
inline uint32_t h_fp16(uint32_t u) { return fp16_bits(u); }
inline uint32_t h_e4m3(uint32_t u) { return e4m3_to_f32_bits(e4m3_bits(u)) >> 16; }  // exact in bf16
inline uint32_t h_e5m2(uint32_t u) { return e5m2_to_f32_bits(e5m2_bits(u)) >> 16; }
// tiny: 0 < magnitude < bound, as one unsigned compare
inline bool tiny_bf16(uint32_t h) { return (h & 0x7FFFu) - 1u < kTinyBf16 - 1u; }
inline bool tiny_fp16(uint32_t h) { return (h & 0x7FFFu) - 1u < 0x3FFu; }  // fp16 denormal

template <uint32_t (*F)(uint32_t), bool (*T)(uint32_t)>
NEMU_ALWAYS_INLINE bool half_loop(const float* in_, uint16_t* out, int64_t n) {
  const uint32_t* in = reinterpret_cast<const uint32_t*>(in_);
  uint32_t t = 0;
#pragma omp simd reduction(| : t)
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t h = F(in[i]);
    out[i] = static_cast<uint16_t>(h);
    t |= T(h) ? 1u : 0u;
  }
  return t != 0;
}

NEMU_ALWAYS_INLINE void half_serial_body(const float* in, uint16_t* out, int64_t n, DType d, bool* tiny) {
  switch (d) {
    case DType::BF16: *tiny = half_loop<h_bf16, tiny_bf16>(in, out, n); return;
    case DType::FP16: *tiny = half_loop<h_fp16, tiny_fp16>(in, out, n); return;
    case DType::FP8E4M3: *tiny = half_loop<h_e4m3, tiny_bf16>(in, out, n); return;
    case DType::FP8E5M2: *tiny = half_loop<h_e5m2, tiny_bf16>(in, out, n); return;
    default: fail(std::string("round_to_half: no 16-bit storage for ") + dtype_name(d));
  }
}
NEMU_SIMD_DISPATCH(half_serial, (const float* in, uint16_t* out, int64_t n, DType d, bool* tiny), (in, out, n, d, tiny))

NEMU_ALWAYS_INLINE void widen_serial_body(const uint16_t* in, float* out_, int64_t n, DType store) {
  uint32_t* out = reinterpret_cast<uint32_t*>(out_);
  if (store == DType::BF16) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<uint32_t>(in[i]) << 16;
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = fp16_to_f32_bits(in[i]);
  }
}
NEMU_SIMD_DISPATCH(widen_serial, (const uint16_t* in, float* out, int64_t n, DType store), (in, out, n, store))

NEMU_ALWAYS_INLINE void tiny_half_body(const uint16_t* in, int64_t n, DType store, bool* tiny) {
  uint32_t t = 0;
  if (store == DType::BF16) {
#pragma omp simd reduction(| : t)
    for (int64_t i = 0; i < n; ++i) t |= tiny_bf16(in[i]) ? 1u : 0u;
  } else {
#pragma omp simd reduction(| : t)
    for (int64_t i = 0; i < n; ++i) t |= tiny_fp16(in[i]) ? 1u : 0u;
  }
  *tiny = t != 0;
}
NEMU_SIMD_DISPATCH(tiny_half, (const uint16_t* in, int64_t n, DType store, bool* tiny), (in, n, store, tiny))

// Chunks of kChunk elements over the pool (serial below the threshold); f(begin, length).
template <class F>
void chunked(int64_t n, F&& f) {
  if (n <= 0) return;
  if (n < kParallelThreshold) {
    f(int64_t{0}, n);
    return;
  }
  constexpr int64_t kChunk = 1 << 14;
  parallel_ranges(ceil_div(n, kChunk), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) f(c * kChunk, std::min(kChunk, n - c * kChunk));
  });
}

}  // namespace

bool round_to_half(const float* in, uint16_t* out, int64_t n, DType in_dtype) {
  std::atomic<bool> any{false};
  chunked(n, [&](int64_t b, int64_t len) {
    bool t = false;
    half_serial(in + b, out + b, len, in_dtype, &t);
    if (t) any.store(true, std::memory_order_relaxed);
  });
  return any.load();
}

void widen_half(const uint16_t* in, float* out, int64_t n, DType store) {
  chunked(n, [&](int64_t b, int64_t len) { widen_serial(in + b, out + b, len, store); });
}

bool has_tiny_half(const uint16_t* in, int64_t n, DType store) {
  std::atomic<bool> any{false};
  chunked(n, [&](int64_t b, int64_t len) {
    bool t = false;
    tiny_half(in + b, len, store, &t);
    if (t) any.store(true, std::memory_order_relaxed);
  });
  return any.load();
}

bool has_tiny_f32(const float* in, int64_t n) {
  const uint32_t* u = reinterpret_cast<const uint32_t*>(in);
  uint32_t t = 0;
#pragma omp simd reduction(| : t)
  for (int64_t i = 0; i < n; ++i) t |= ((u[i] & 0x7FFFFFFFu) - 1u < kTinyF32 - 1u) ? 1u : 0u;
  return t != 0;
}

float round_to(float x, DType d) { return bitsf(round_bits(fbits(x), d)); }

void round_array(const float* in, float* out, int64_t n, DType d) {
  if (n <= 0) return;
  if (n < kParallelThreshold) {
    round_serial(in, out, n, d);
    return;
  }
  constexpr int64_t kChunk = 1 << 14;  // multiple of the vector width; keeps chunks cache-line aligned
  const int64_t chunks = ceil_div(n, kChunk);
  parallel_ranges(chunks, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t b = c * kChunk;
      const int64_t len = b + kChunk <= n ? kChunk : n - b;
      round_serial(in + b, out + b, len, d);
    }
  });
}

uint16_t to_bf16_bits(float x) { return static_cast<uint16_t>(bf16_bits(fbits(x))); }
uint16_t to_fp16_bits(float x) { return static_cast<uint16_t>(fp16_bits(fbits(x))); }
uint8_t to_fp8e4m3_bits(float x) { return static_cast<uint8_t>(e4m3_bits(fbits(x))); }
uint8_t to_fp8e5m2_bits(float x) { return static_cast<uint8_t>(e5m2_bits(fbits(x))); }
uint32_t to_tf32_bits(float x) { return tf32_bits(fbits(x)); }
float bf16_bits_to_float(uint16_t b) { return bitsf(static_cast<uint32_t>(b) << 16); }
float fp16_bits_to_float(uint16_t b) { return bitsf(fp16_to_f32_bits(b)); }
float fp8e4m3_bits_to_float(uint8_t b) { return bitsf(e4m3_to_f32_bits(b)); }
float fp8e5m2_bits_to_float(uint8_t b) { return bitsf(e5m2_to_f32_bits(b)); }

}  // namespace nemu
