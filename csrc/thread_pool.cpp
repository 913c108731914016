#include "thread_pool.h"

#include <sched.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace nemu {
namespace {

thread_local bool t_in_task = false;

int detect_threads() {
  if (const char* env = std::getenv("NEMU_NUM_THREADS")) {
    const int v = std::atoi(env);
    if (v >= 1) return v;
  }
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
  return std::max(1u, std::thread::hardware_concurrency());
}

class Pool {
 public:
  explicit Pool(int threads) : threads_(threads) {
    for (int i = 1; i < threads_; ++i) std::thread([this] { worker(); }).detach();
  }

  // Returns false (caller runs inline) when another thread is using the pool.
  bool run(int64_t n, void (*fn)(void*, int64_t), void* ctx) {
    std::unique_lock<std::mutex> busy(run_mu_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    {
      std::lock_guard<std::mutex> lk(mu_);
      fn_ = fn;
      ctx_ = ctx;
      n_ = n;
      next_.store(0);
      error_ = nullptr;
      pending_.store(threads_ - 1);
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    work();
    // wait for the workers to leave this job (they finish their last task first)
    for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin)
      if (spin > 64) std::this_thread::yield();
    if (error_) std::rethrow_exception(error_);
    return true;
  }

  int threads() const { return threads_; }

 private:
  void work() {
    t_in_task = true;
    for (int64_t i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < n_;) {
      try {
        fn_(ctx_, i);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        if (!error_) error_ = std::current_exception();
      }
    }
    t_in_task = false;
  }

  void worker() {
    uint64_t seen = 0;  // not generation_.load(): a job may already be posted before this thread starts
    for (;;) {
      // brief spin (back-to-back kernels), then park
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
      while (generation_.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() < until) {
      }
      if (generation_.load(std::memory_order_acquire) == seen) {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      }
      seen = generation_.load(std::memory_order_acquire);
      work();
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  const int threads_;
  std::mutex run_mu_, mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int64_t> next_{0};
  std::atomic<int> pending_{0};
  int64_t n_ = 0;
  void (*fn_)(void*, int64_t) = nullptr;
  void* ctx_ = nullptr;
  std::exception_ptr error_;
};

Pool& pool() {
  static Pool* p = new Pool(detect_threads());  // never destroyed: workers outlive static destructors
  return *p;
}

}  // namespace

int num_threads() {
  static const int n = detect_threads();
  return n;
}

bool in_parallel() { return t_in_task; }

void parallel_for_impl(int64_t n, void (*fn)(void*, int64_t), void* ctx) {
  if (!pool().run(n, fn, ctx))
    for (int64_t i = 0; i < n; ++i) fn(ctx, i);
}

}  // namespace nemu
