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
thread_local int t_claims = 0;
std::atomic<int> g_busy_callers{0};  // threads holding a CpuClaim

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

// One parallel_for call. Lives on its caller's stack; the caller leaves only when no worker is inside.
struct Job {
  void (*fn)(void*, int64_t);
  void* ctx;
  int64_t n;
  std::atomic<int64_t> next{0};  // next unclaimed index
  std::atomic<int> helpers{0};   // workers inside a task of this job (changed under Pool::mu_)
  std::exception_ptr error;      // first exception (guarded by Pool::mu_)
};

// Workers serve every active job round-robin, one index at a time, so concurrent callers (two cores
// running kernels at once) all get help. Each caller also works on its own job, then waits for its own
// job only. Workers spin briefly after the queue empties (back-to-back kernels), then park.
class Pool {
 public:
  explicit Pool(int threads) : threads_(threads) {
    for (int i = 1; i < threads_; ++i) std::thread([this, i] { worker(i - 1); }).detach();
  }

  void run(int64_t n, void (*fn)(void*, int64_t), void* ctx) {
    CpuClaim claim;  // a caller outside Program::run (kernel API) occupies a CPU while here
    Job job;
    job.fn = fn;
    job.ctx = ctx;
    job.n = n;
    {
      std::lock_guard<std::mutex> lk(mu_);
      jobs_.push_back(&job);
      posted_.fetch_add(1, std::memory_order_release);
    }
    if (may_help(0)) cv_.notify_all();  // else no worker may help: don't wake one just to park again
    t_in_task = true;
    for (int64_t i; (i = job.next.fetch_add(1, std::memory_order_relaxed)) < n;) execute(job, i);
    t_in_task = false;
    std::unique_lock<std::mutex> lk(mu_);
    remove(&job);  // every index is claimed: no worker can enter it any more
    if (job.helpers.load() != 0) {
      // helpers are finishing their last index (one task at most): spin up to 100 us before parking, since a
      // futex wake-up costs tens of microseconds here, as much as a small kernel's whole task
      lk.unlock();
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(100);
      while (job.helpers.load(std::memory_order_acquire) != 0 && std::chrono::steady_clock::now() < until) {
      }
      lk.lock();
      done_cv_.wait(lk, [&] { return job.helpers.load() == 0; });
    }
    if (job.error) std::rethrow_exception(job.error);
  }

 private:
  void execute(Job& job, int64_t i) {
    try {
      job.fn(job.ctx, i);
    } catch (...) {
      std::lock_guard<std::mutex> lk(mu_);
      if (!job.error) job.error = std::current_exception();
    }
  }

  void remove(Job* job) {
    for (size_t k = 0; k < jobs_.size(); ++k)
      if (jobs_[k] == job) {
        jobs_.erase(jobs_.begin() + static_cast<std::ptrdiff_t>(k));
        return;
      }
  }

  // Worker `w` helps only while callers leave a CPU for it (see CpuClaim).
  bool may_help(int w) const { return w + g_busy_callers.load(std::memory_order_relaxed) < threads_; }

  // Under mu_: claim one index of the next job (round-robin) that has one left.
  Job* claim(int w, int64_t& index) {
    if (!may_help(w)) return nullptr;
    for (size_t tries = 0; tries < jobs_.size(); ++tries) {
      Job* j = jobs_[rr_++ % jobs_.size()];
      const int64_t i = j->next.fetch_add(1, std::memory_order_relaxed);
      if (i < j->n) {
        ++j->helpers;
        index = i;
        return j;
      }
    }
    return nullptr;
  }

  void worker(int w) {
    t_in_task = true;  // nested parallel_for inside a task runs inline
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      int64_t i;
      if (Job* j = claim(w, i)) {
        lk.unlock();
        execute(*j, i);
        lk.lock();
        if (j->helpers.fetch_sub(1, std::memory_order_acq_rel) == 1) done_cv_.notify_all();
        continue;
      }
      // nothing to claim: spin briefly without the lock for a new job, then park
      const uint64_t seen = posted_.load(std::memory_order_acquire);
      lk.unlock();
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
      while (may_help(w) && posted_.load(std::memory_order_acquire) == seen &&
             std::chrono::steady_clock::now() < until) {
      }
      lk.lock();
      cv_.wait(lk, [&] { return posted_.load(std::memory_order_acquire) != seen; });
    }
  }

  const int threads_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::vector<Job*> jobs_;             // active jobs (guarded by mu_)
  size_t rr_ = 0;                      // round-robin cursor (guarded by mu_)
  std::atomic<uint64_t> posted_{0};    // jobs ever posted: wakes spinning and parked workers
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

CpuClaim::CpuClaim() {
  if (t_claims++ == 0) g_busy_callers.fetch_add(1, std::memory_order_relaxed);
}

CpuClaim::~CpuClaim() {
  if (--t_claims == 0) g_busy_callers.fetch_sub(1, std::memory_order_relaxed);
}

void parallel_for_impl(int64_t n, void (*fn)(void*, int64_t), void* ctx) { pool().run(n, fn, ctx); }

}  // namespace nemu
