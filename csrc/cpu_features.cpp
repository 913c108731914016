#include "cpu_features.h"

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "simd.h"

namespace nemu {

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = [] {
    CpuFeatures r;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    r.avx2 = __builtin_cpu_supports("avx2");
    r.fma = __builtin_cpu_supports("fma");
    r.avx512f = __builtin_cpu_supports("avx512f");
    r.avx512bw = __builtin_cpu_supports("avx512bw");
    r.avx512vl = __builtin_cpu_supports("avx512vl");
    r.avx512dq = __builtin_cpu_supports("avx512dq");
#if defined(__GNUC__) && __GNUC__ >= 12
    r.avx512_bf16 = __builtin_cpu_supports("avx512bf16");
    r.amx_bf16 = __builtin_cpu_supports("amx-bf16");
    r.avx512_fp16 = __builtin_cpu_supports("avx512fp16");
#endif
#endif
    return r;
  }();
  return f;
}

namespace {

// Whether this build has the path's variants and this CPU can run them (the target attributes in simd.h).
bool path_supported(SimdPath p) {
  const CpuFeatures& f = cpu_features();
  switch (p) {
    case SimdPath::Portable: return true;
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    case SimdPath::Avx2: return f.avx2 && f.fma;
    case SimdPath::Avx512: return f.avx2 && f.fma && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
#else
    default: return false;
#endif
  }
  return false;
}

std::string feature_list() {
  const CpuFeatures& f = cpu_features();
  std::string s;
  auto add = [&](bool on, const char* name) { if (on) s += s.empty() ? name : std::string(" ") + name; };
  add(f.avx2, "avx2"); add(f.fma, "fma"); add(f.avx512f, "avx512f"); add(f.avx512bw, "avx512bw");
  add(f.avx512vl, "avx512vl"); add(f.avx512dq, "avx512dq");
  return s.empty() ? "baseline only" : s;
}

SimdPath choose_path() {
  const char* env = std::getenv("NEMU_SIMD");
  if (!env || !*env) {
    for (SimdPath p : {SimdPath::Avx512, SimdPath::Avx2})
      if (path_supported(p)) return p;
    return SimdPath::Portable;
  }
  const std::string want = env;
  for (SimdPath p : {SimdPath::Portable, SimdPath::Avx2, SimdPath::Avx512}) {
    if (want != simd_path_name(p)) continue;
    if (path_supported(p)) return p;
    // Running the variant anyway would die of SIGILL somewhere inside a kernel; say why instead.
    throw std::runtime_error("NEMU_SIMD=" + want + ": this CPU (or build) cannot run the " + want +
                             " path; CPU features: " + feature_list());
  }
  throw std::runtime_error("NEMU_SIMD=" + want + ": unknown SIMD path (expected portable, avx2 or avx512)");
}

}  // namespace

const char* simd_path_name(SimdPath p) {
  switch (p) {
    case SimdPath::Avx512: return "avx512";
    case SimdPath::Avx2: return "avx2";
    case SimdPath::Portable: break;
  }
  return "portable";
}

SimdPath simd_path() {
  static const SimdPath p = choose_path();
  return p;
}

pybind11::dict cpu_features_dict() {
  const CpuFeatures& f = cpu_features();
  pybind11::dict d;
  d["avx2"] = f.avx2; d["fma"] = f.fma; d["avx512f"] = f.avx512f; d["avx512bw"] = f.avx512bw;
  d["avx512vl"] = f.avx512vl; d["avx512dq"] = f.avx512dq;
  d["avx512_bf16"] = f.avx512_bf16; d["amx_bf16"] = f.amx_bf16;
  d["avx512_fp16"] = f.avx512_fp16;
#if defined(__aarch64__)
  d["arch"] = "aarch64";
#else
  d["arch"] = "x86_64";
#endif
  return d;
}

}  // namespace nemu
