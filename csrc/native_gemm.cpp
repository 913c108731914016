#include "native_gemm.h"

#include <dlfcn.h>
#include <pthread.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "cpu_features.h"

namespace nemu {

namespace {

// MKL's CBLAS ABI (LP64: MKL_INT is int; the *_64 entry points are the ILP64 ones).
enum { kRowMajor = 101, kNoTrans = 111, kTrans = 112 };
using MklHalfGemm = void (*)(int, int, int, int, int, int, float, const uint16_t*, int, const uint16_t*, int, float,
                             float*, int);
using MklSetLocal = int (*)(int);
// Fortran sgemm_ (cblas_sgemm itself is not exported by libtorch_cpu): column-major, arguments by pointer.
using MklSgemm = void (*)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                          const int*, const float*, const int*, const float*, float*, const int*);

struct Lib {
  MklHalfGemm bf16 = nullptr, f16 = nullptr;
  MklSgemm sgemm = nullptr;
  MklSetLocal set_local = nullptr;
  const char* from = "none";
};

const Lib& lib() {
  static const Lib l = [] {
    Lib r;
    // Only libraries already loaded (torch imports libtorch_cpu.so before the first model runs): never load one.
    for (const char* name : {"libtorch_cpu.so", "libmkl_rt.so.2", "libmkl_rt.so"}) {
      void* h = dlopen(name, RTLD_LAZY | RTLD_NOLOAD);
      if (!h) continue;
      auto bf = reinterpret_cast<MklHalfGemm>(dlsym(h, "cblas_gemm_bf16bf16f32"));
      auto hf = reinterpret_cast<MklHalfGemm>(dlsym(h, "cblas_gemm_f16f16f32"));
      // The C entry point takes the count by value (mkl_set_num_threads_local is the Fortran one, by pointer).
      auto sl = reinterpret_cast<MklSetLocal>(dlsym(h, "MKL_Set_Num_Threads_Local"));
      auto sg = reinterpret_cast<MklSgemm>(dlsym(h, "sgemm_"));
      if ((bf || hf) && sl) {
        r.bf16 = bf; r.f16 = hf; r.sgemm = sg; r.set_local = sl; r.from = name;
        break;
      }
      dlclose(h);
    }
    return r;
  }();
  return l;
}

// MKL runs on libtorch's libgomp, which is not fork-safe: in a child forked after the parent ran an OpenMP
// region, MKL's next region waits forever on the parent's vanished team, even at one thread (torch itself
// avoids OpenMP in such a child). A forked process therefore uses the portable GEMMs.
std::atomic<bool> g_forked{false};
const bool g_fork_hook = [] { return pthread_atfork(nullptr, nullptr, [] { g_forked.store(true); }) == 0; }();

bool forked() { return g_forked.load(std::memory_order_relaxed); }

enum class Policy { Off, Auto, On };

Policy policy() {
  static const Policy p = [] {
    const char* e = std::getenv("NEMU_NATIVE_GEMM");
    if (!e || !*e || !std::strcmp(e, "auto")) return Policy::Auto;
    if (!std::strcmp(e, "on") || !std::strcmp(e, "1")) return Policy::On;
    if (!std::strcmp(e, "off") || !std::strcmp(e, "0")) return Policy::Off;
    fail(std::string("NEMU_NATIVE_GEMM must be auto, on or off, got '") + e + "'");
  }();
  return p;
}

enum class SgemmPolicy { Auto, Mkl, OpenBlas };

SgemmPolicy sgemm_policy() {
  static const SgemmPolicy p = [] {
    const char* e = std::getenv("NEMU_SGEMM");
    if (!e || !*e || !std::strcmp(e, "auto")) return SgemmPolicy::Auto;
    if (!std::strcmp(e, "mkl")) return SgemmPolicy::Mkl;
    if (!std::strcmp(e, "openblas")) return SgemmPolicy::OpenBlas;
    fail(std::string("NEMU_SGEMM must be auto, mkl or openblas, got '") + e + "'");
  }();
  return p;
}

// MKL picks its fastest kernels on Intel CPUs only; elsewhere OpenBLAS's own tuning is the safer default.
bool intel_avx512() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return false;
  const bool intel = b == 0x756e6547u && d == 0x49656e69u && c == 0x6c65746eu;  // "GenuineIntel"
  return intel && cpu_features().avx512f;
#else
  return false;
#endif
}

bool cpu_native(DType store) {
  const CpuFeatures& f = cpu_features();
  return store == DType::BF16 ? (f.avx512_bf16 || f.amx_bf16) : f.avx512_fp16;
}

template <MklHalfGemm Lib::*Fn>
void call(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A, int64_t lda,
          const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  // One MKL thread for this call only: the calling thread may be the user's, whose own torch/MKL calls keep
  // their setting (MKL_Set_Num_Threads_Local returns the previous value; 0 = the global one).
  const Lib& l = lib();
  const int prev = l.set_local(1);
  (l.*Fn)(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, static_cast<int>(M), static_cast<int>(N),
          static_cast<int>(K), alpha, A, static_cast<int>(lda), B, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
  l.set_local(prev);
}

void call_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, and a row-major X read column-major is X^T.
  const Lib& l = lib();
  const int prev = l.set_local(1);
  const int m = static_cast<int>(N), n = static_cast<int>(M), k = static_cast<int>(K);
  const int lb = static_cast<int>(ldb), la = static_cast<int>(lda), lc = static_cast<int>(ldc);
  l.sgemm(tb ? "T" : "N", ta ? "T" : "N", &m, &n, &k, &alpha, B, &lb, A, &la, &beta, C, &lc);
  l.set_local(prev);
}

}  // namespace

SgemmFn native_sgemm() {
  if (forked()) return nullptr;
  static const SgemmFn f = [] {
    const SgemmPolicy p = sgemm_policy();
    if (p == SgemmPolicy::OpenBlas || (p == SgemmPolicy::Auto && !intel_avx512())) return SgemmFn{nullptr};
    return lib().sgemm ? &call_sgemm : SgemmFn{nullptr};
  }();
  return f;
}

DType half_storage(DType in_dtype) {
  switch (in_dtype) {
    case DType::BF16: case DType::FP8E4M3: case DType::FP8E5M2: return DType::BF16;
    case DType::FP16: return DType::FP16;
    default: return DType::F32;
  }
}

HalfGemmFn native_gemm(DType store) {
  if ((store != DType::BF16 && store != DType::FP16) || forked()) return nullptr;
  const Policy p = policy();
  if (p == Policy::Off || (p == Policy::Auto && !cpu_native(store))) return nullptr;
  const Lib& l = lib();
  if (store == DType::BF16) return l.bf16 ? &call<&Lib::bf16> : nullptr;
  return l.f16 ? &call<&Lib::f16> : nullptr;
}

std::string native_gemm_info() {
  const Policy p = policy();
  std::string s = std::string("policy ") + (p == Policy::Off ? "off" : p == Policy::On ? "on" : "auto") + ", library " +
                  lib().from + ", native:";
  bool any = false;
  for (DType d : {DType::BF16, DType::FP16})
    if (native_gemm(d)) { s += std::string(" ") + dtype_name(d); any = true; }
  if (!any) s += " none";
  const SgemmPolicy sp = sgemm_policy();
  return s + "; fp32 GEMM (NEMU_SGEMM " + (sp == SgemmPolicy::Auto ? "auto" : sp == SgemmPolicy::Mkl ? "mkl" : "openblas") +
         "): " + (native_sgemm() ? "mkl" : "openblas");
}

}  // namespace nemu
