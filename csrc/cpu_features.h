// Run-time CPU feature detection (x86-64 cpuid; aarch64 reports its baseline) and the SIMD path
// choice built on it (simd_path(), declared in simd.h).
#pragma once
#include <pybind11/pybind11.h>

namespace nemu {
struct CpuFeatures {
  bool avx2 = false, fma = false, avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false,
       avx512_bf16 = false, amx_bf16 = false, avx512_fp16 = false;
};
const CpuFeatures& cpu_features();
pybind11::dict cpu_features_dict();
}  // namespace nemu
