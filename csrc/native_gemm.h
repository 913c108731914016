// Native low-precision GEMM (bf16/fp16 inputs, fp32 accumulate and output) from a library already in the
// process: MKL's cblas_gemm_bf16bf16f32 / cblas_gemm_f16f16f32, which torch's CPU wheel exports from
// libtorch_cpu.so. Resolved at run time (dlopen RTLD_NOLOAD + dlsym): nothing is linked, and without torch
// loaded (or on a build without MKL) there is simply no native path and TensorE uses its fp32 GEMM.
//
// Policy (NEMU_NATIVE_GEMM, read once): "auto" (default) uses a dtype's native GEMM only where the CPU has the
// instructions for it (AVX512-BF16 or AMX-BF16 for bf16; AVX512-FP16 for fp16); "on" uses it whenever the
// library is present (MKL then runs its own AVX2 code), so tests exercise it on any machine; "off" never.
//
// fp32 GEMM (NEMU_SGEMM, read once): "auto" (default) runs MKL's sgemm from the same library on Intel CPUs with
// AVX-512 (measured 1.2-2x OpenBLAS's per thread on Sapphire Rapids for BERT/ResNet shapes), OpenBLAS
// elsewhere; "mkl" whenever the library is present; "openblas" never. Plain fp32 GEMM either way.
#pragma once
#include <cstdint>
#include <string>

#include "common.h"

namespace nemu {

// C[M,N] = alpha * op(A) @ op(B) + beta * C, row-major, 16-bit inputs (bf16 or fp16 bit patterns).
using HalfGemmFn = void (*)(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A,
                            int64_t lda, const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The 16-bit storage a TensorE input dtype's values fit exactly: BF16 for bf16 and both fp8 formats, FP16 for
// fp16, F32 (none) for fp32 and tf32.
DType half_storage(DType in_dtype);

// The native GEMM for 16-bit storage `store` (BF16 or FP16) under the policy, or nullptr (always in a process
// forked from one that loaded this module: MKL's OpenMP hangs there). Single-threaded per
// call: the library's thread count is set to 1 for the call in the calling thread (MKL_Set_Num_Threads_Local,
// restored after), so its OpenMP team never spins beside our pool, and the caller's own MKL setting is kept;
// callers split large GEMMs over the pool themselves.
HalfGemmFn native_gemm(DType store);

// C[M,N] = alpha * op(A) @ op(B) + beta * C, row-major fp32, single-threaded like HalfGemmFn.
using SgemmFn = void (*)(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                         const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// MKL's sgemm under the NEMU_SGEMM policy, or nullptr (TensorE then uses OpenBLAS; always in a forked process).
SgemmFn native_sgemm();

// For reports and benchmarks: policy, library found, and which dtypes run natively.
std::string native_gemm_info();

}  // namespace nemu
