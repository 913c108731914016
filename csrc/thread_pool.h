// Host threads for the kernels: a small worker pool of our own instead of OpenMP.
//
// Why not OpenMP: torch loads its libgomp first and ours resolves to it, so its default active wait
// applies and cannot be changed from here. Idle OpenMP threads then spin on the cores that OpenBLAS and
// the next kernel need; on a 2-core machine a bf16 1024^3 MatMul ran 1.7x slower than with passive
// waiting. Our workers spin briefly, then park on a condition variable. Concurrent callers (several
// cores executing at once) each post a job; workers take indices from all active jobs round-robin and
// every caller works on its own job too. Calls from inside a task run inline on the calling thread.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace nemu {

int num_threads();   // pool size including the calling thread (NEMU_NUM_THREADS, else the usable CPUs)
bool in_parallel();  // true inside a parallel_for task

// Marks the calling thread as occupying a CPU while it lives (one Program::run: its small kernels run on
// the caller's thread between pool jobs). Workers help only while callers leave CPUs free: with as many
// busy callers as CPUs (two cores executing on a 2-CPU host) each caller runs its own tasks, instead of
// waking a third thread that can only time-slice with them. Nested claims on one thread count once.
class CpuClaim {
 public:
  CpuClaim();
  ~CpuClaim();
  CpuClaim(const CpuClaim&) = delete;
  CpuClaim& operator=(const CpuClaim&) = delete;
};

void parallel_for_impl(int64_t n, void (*fn)(void*, int64_t), void* ctx);

// f(i) for every i in [0, n), spread over the pool; the caller takes part. The first exception thrown by
// a task is rethrown here after all tasks finished.
template <class F>
void parallel_for(int64_t n, F&& f) {
  if (n <= 0) return;
  if (n == 1 || num_threads() < 2 || in_parallel()) {
    for (int64_t i = 0; i < n; ++i) f(i);
    return;
  }
  using Fn = std::remove_reference_t<F>;
  parallel_for_impl(n, [](void* c, int64_t i) { (*static_cast<Fn*>(c))(i); }, const_cast<void*>(static_cast<const void*>(&f)));
}

// parallel_for when `parallel`, else a plain loop on the calling thread.
template <class F>
void parallel_for_if(bool parallel, int64_t n, F&& f) {
  if (parallel) {
    parallel_for(n, f);
  } else {
    for (int64_t i = 0; i < n; ++i) f(i);
  }
}

// [0, n) cut into one contiguous range per thread: f(begin, end).
template <class F>
void parallel_ranges(int64_t n, F&& f) {
  if (n <= 0) return;
  const int64_t nt = std::min<int64_t>(num_threads(), n);
  parallel_for(nt, [&](int64_t t) {
    const int64_t b = n * t / nt, e = n * (t + 1) / nt;
    if (b < e) f(b, e);
  });
}

}  // namespace nemu
