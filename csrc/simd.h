// Run-time CPU dispatch for our own hot loops. Each loop body is written once as an always-inline
// `<name>_body` function; NEMU_SIMD_DISPATCH instantiates it for every SIMD path (portable baseline,
// AVX2+FMA, AVX-512 on x86-64; portable only elsewhere, NEON being baseline on aarch64) and defines
// `<name>` to call the variant for simd_path(), chosen once at first use. GCC inlines the baseline
// body into each target-attributed wrapper, so the body is vectorised for that wrapper's ISA.
// NEMU_SIMD=portable|avx2|avx512 forces a path (cpu_features.cpp), so every path can be tested.
#pragma once

namespace nemu {

enum class SimdPath { Portable = 0, Avx2 = 1, Avx512 = 2 };

// The path our loops run: the widest this CPU supports, or the one NEMU_SIMD forces (an error if the
// CPU lacks it). Fixed for the life of the process.
SimdPath simd_path();
const char* simd_path_name(SimdPath p);

template <class Fn>
Fn simd_pick(Fn portable, Fn avx2, Fn avx512) {
  switch (simd_path()) {
    case SimdPath::Avx512: return avx512;
    case SimdPath::Avx2: return avx2;
    case SimdPath::Portable: break;
  }
  return portable;
}

}  // namespace nemu

#define NEMU_ALWAYS_INLINE inline __attribute__((always_inline))

// NEMU_SIMD_DISPATCH(name, (params...), (args...)) after `NEMU_ALWAYS_INLINE void name_body(params...)`
// defines `void name(params...)`. Bodies return void (they write through pointers).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define NEMU_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define NEMU_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))
#define NEMU_SIMD_DISPATCH(name, params, args)                                                  \
  void name##_portable params { name##_body args; }                                             \
  NEMU_TARGET_AVX2 void name##_avx2 params { name##_body args; }                                \
  NEMU_TARGET_AVX512 void name##_avx512 params { name##_body args; }                            \
  void name params {                                                                            \
    static const auto variant = ::nemu::simd_pick(&name##_portable, &name##_avx2, &name##_avx512); \
    variant args;                                                                               \
  }
#else
#define NEMU_SIMD_DISPATCH(name, params, args) \
  void name params { name##_body args; }
#endif

// Work above this many elements is split across threads (thread_pool.h); below it threads cost more than they save.
constexpr long kParallelThreshold = 1 << 15;
