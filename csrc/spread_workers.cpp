#include "spread_workers.h"

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <condition_variable>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace nemu {

namespace {

struct Task {
  const std::function<void(size_t)>* fn;
  size_t index;
  std::exception_ptr error;
  std::atomic<bool> done{false};
  std::mutex mu;  // with cv: the caller parks on it after a short spin
  std::condition_variable cv;
};

class Worker {
 public:
  Worker() { std::thread([this] { loop(); }).detach(); }

  void post(Task* t) {
    bool wake;
    {
      std::lock_guard<std::mutex> lk(mu_);
      queue_.push_back(t);
      posted_.fetch_add(1, std::memory_order_release);
      wake = parked_;
    }
    if (wake) cv_.notify_one();
  }

 private:
  void loop() {
    for (;;) {
      Task* t = nullptr;
      uint64_t seen;
      {
        std::lock_guard<std::mutex> lk(mu_);
        seen = posted_.load(std::memory_order_relaxed);
        if (!queue_.empty()) {
          t = queue_.front();
          queue_.pop_front();
        }
      }
      if (!t) {
        // spin briefly before parking: calls come back to back (a DataParallel loop), and a futex wake-up costs
        // tens of microseconds here, as much as a small model's share of a batch
        const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
        while (posted_.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() < until) {
        }
        std::unique_lock<std::mutex> lk(mu_);
        parked_ = true;
        cv_.wait(lk, [&] { return !queue_.empty(); });
        parked_ = false;
        continue;
      }
      try {
        (*t->fn)(t->index);
      } catch (...) {
        t->error = std::current_exception();
      }
      // notified under the task's lock, the last touch of the task: the caller takes that lock before it
      // returns (and frees the task), so it cannot free it while the worker still uses it
      std::lock_guard<std::mutex> lk(t->mu);
      t->done.store(true, std::memory_order_release);
      t->cv.notify_one();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task*> queue_;         // guarded by mu_
  std::atomic<uint64_t> posted_{0};  // tasks ever posted (changed under mu_): ends the spin
  bool parked_ = false;              // guarded by mu_: waiting on cv_, needs a notify
};

// never freed: workers outlive static destructors
std::mutex* g_mu = new std::mutex();
std::map<size_t, Worker*>* g_workers = new std::map<size_t, Worker*>();

// A forked child has none of the parent's threads: it starts its own workers, under a fresh lock (another
// thread may have held the parent's at the fork); the parent's are leaked.
const bool g_fork_hook = [] {
  return pthread_atfork(nullptr, nullptr, [] {
    g_mu = new std::mutex();
    g_workers = new std::map<size_t, Worker*>();
  }) == 0;
}();

Worker& worker(size_t index) {
  std::lock_guard<std::mutex> lk(*g_mu);
  Worker*& w = (*g_workers)[index];
  if (!w) w = new Worker();
  return *w;
}

void wait(Task& t) {
  // spin briefly before parking: a futex wake-up costs tens of microseconds here, as much as a small chunk
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(100);
  while (!t.done.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < until) {
  }
  std::unique_lock<std::mutex> lk(t.mu);  // always taken, even after the spin saw `done` (see Worker::loop)
  t.cv.wait(lk, [&] { return t.done.load(std::memory_order_acquire); });
}

}  // namespace

void run_spread(size_t n, const std::function<void(size_t)>& fn) {
  // the calling thread's tasks, kept across calls (no allocation per call); a task is free again once wait()
  // returned, which takes its lock after the helper's last touch
  thread_local std::vector<std::unique_ptr<Task>> tasks;
  while (tasks.size() + 1 < n) tasks.push_back(std::make_unique<Task>());
  for (size_t i = 1; i < n; ++i) {
    Task& t = *tasks[i - 1];
    t.fn = &fn;
    t.index = i;
    t.error = nullptr;
    t.done.store(false, std::memory_order_relaxed);
    worker(i).post(&t);
  }
  std::exception_ptr first;
  try {
    fn(0);
  } catch (...) {
    first = std::current_exception();
  }
  for (size_t i = 1; i < n; ++i) {
    Task& t = *tasks[i - 1];
    wait(t);
    if (!first && t.error) first = t.error;
  }
  if (first) std::rethrow_exception(first);
}

}  // namespace nemu
