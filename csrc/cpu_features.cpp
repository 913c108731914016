#include "cpu_features.h"

namespace nemu {

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = [] {
    CpuFeatures r;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    r.avx2 = __builtin_cpu_supports("avx2");
    r.fma = __builtin_cpu_supports("fma");
    r.avx512f = __builtin_cpu_supports("avx512f");
#if defined(__GNUC__) && __GNUC__ >= 12
    r.avx512_bf16 = __builtin_cpu_supports("avx512bf16");
    r.amx_bf16 = __builtin_cpu_supports("amx-bf16");
#endif
#endif
    return r;
  }();
  return f;
}

pybind11::dict cpu_features_dict() {
  const CpuFeatures& f = cpu_features();
  pybind11::dict d;
  d["avx2"] = f.avx2; d["fma"] = f.fma; d["avx512f"] = f.avx512f;
  d["avx512_bf16"] = f.avx512_bf16; d["amx_bf16"] = f.amx_bf16;
#if defined(__aarch64__)
  d["arch"] = "aarch64";
#else
  d["arch"] = "x86_64";
#endif
  return d;
}

}  // namespace nemu
