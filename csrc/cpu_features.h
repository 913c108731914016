// Run-time CPU feature detection (x86-64 cpuid; aarch64 reports its baseline).
#pragma once
#include <pybind11/pybind11.h>

namespace nemu {
struct CpuFeatures { bool avx2 = false, fma = false, avx512f = false, avx512_bf16 = false, amx_bf16 = false; };
const CpuFeatures& cpu_features();
pybind11::dict cpu_features_dict();
}  // namespace nemu
