// The stack a kernel runs on: STACK_SIZE bytes (-DSTACK_SIZE, default 8 KB: "declare stack > ~8 KB",
// neuron-api.md 4.1), as on the GpSimd core, instead of the host thread's megabytes. Below the declared size
// lies a painted band (room for the device library's error paths, e.g. C++ unwinding) and then a guard
// page. A kernel that writes into the band used more than its declared stack: an error after it returns. One
// that runs through the band faults on the guard page (user code is compiled with -fstack-clash-protection so
// a large frame probes every page on the way): the SIGSEGV handler sees the address and the harness reports
// a stack overflow. Either way the error names the op; the host's memory was never touched.
#pragma once
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <exception>

namespace torch {
namespace neuron_emu {

class KernelStack {
 public:
  static constexpr size_t kBand = 16384;
  static constexpr uint64_t kPaint = 0x5a5aa5a55a5aa5a5ull;

  ~KernelStack() {
    if (base_) munmap(base_, mapped_);
  }
  // Maps (once per thread and size) a stack of `declared` bytes plus the band and the guard page.
  bool prepare(size_t declared) {
    if (base_ && declared_ == declared) return true;
    if (base_) munmap(base_, mapped_);
    base_ = nullptr;
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t usable = (declared + kBand + page - 1) / page * page;
    mapped_ = usable + page;
    void* p = mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
    base_ = static_cast<char*>(p);
    mprotect(base_, page, PROT_NONE);
    guard_end_ = base_ + page;
    top_ = base_ + mapped_;
    limit_ = top_ - declared;
    declared_ = declared;
    paint();
    return true;
  }
  void paint() {
    for (char* q = guard_end_; q + 8 <= limit_; q += 8) memcpy(q, &kPaint, 8);
  }
  // Bytes of stack the last call used beyond the declared size (0: within it); repaints what it touched.
  size_t overrun() {
    for (char* q = guard_end_; q + 8 <= limit_; q += 8) {
      uint64_t v;
      memcpy(&v, q, 8);
      if (v != kPaint) {
        paint();
        return static_cast<size_t>(limit_ - q);
      }
    }
    return 0;
  }
  // A fault address on the guard page or just below it (a frame that skipped past the guard).
  bool is_overflow(const void* addr) const {
    const char* a = static_cast<const char*>(addr);
    return base_ && a < guard_end_ && a + (1 << 20) >= base_;
  }
  size_t declared() const { return declared_; }

  // Runs fn(arg) on this stack; an exception it throws is rethrown here, on the caller's stack.
  void run(void (*fn)(void*), void* arg) {
    Tramp t{fn, arg, nullptr, {}, {}};
    getcontext(&t.callee);
    t.callee.uc_stack.ss_sp = guard_end_;
    t.callee.uc_stack.ss_size = static_cast<size_t>(top_ - guard_end_);
    t.callee.uc_link = &t.caller;
    tramp() = &t;
    makecontext(&t.callee, &KernelStack::entry, 0);
    swapcontext(&t.caller, &t.callee);
    if (t.error) {
      overrun();  // the unwinding may have written into the band: repaint it for the next call
      std::rethrow_exception(t.error);
    }
  }

 private:
  struct Tramp {
    void (*fn)(void*);
    void* arg;
    std::exception_ptr error;
    ucontext_t caller, callee;
  };
  static Tramp*& tramp() {
    static thread_local Tramp* t = nullptr;
    return t;
  }
  static void entry() {
    Tramp* t = tramp();
    try {
      t->fn(t->arg);
    } catch (...) {  // exceptions must not unwind past the context switch
      t->error = std::current_exception();
    }
  }

  char* base_ = nullptr;
  char* guard_end_ = nullptr;
  char* limit_ = nullptr;
  char* top_ = nullptr;
  size_t mapped_ = 0, declared_ = 0;
};

}  // namespace neuron_emu
}  // namespace torch
