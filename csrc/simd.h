// Run-time CPU dispatch for our own hot loops: the compiler emits an AVX2+FMA clone and a
// portable baseline of each marked function, and the loader picks one per machine (GCC/Clang
// function multiversioning). On non-x86 builds the attribute expands to nothing.
#pragma once

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(__clang__) && !defined(NEMU_NO_CLONES)
#define NEMU_SIMD_CLONES __attribute__((target_clones("avx2,fma", "default")))
#else
#define NEMU_SIMD_CLONES
#endif

// Work above this many elements is split across threads (thread_pool.h); below it threads cost more than they save.
constexpr long kParallelThreshold = 1 << 15;
