// The emulated GpSimd side of a custom-op library: what the device headers (include/torch/torch.h) call, the
// NEURON_LIBRARY registry, and the plain-C entry points the emulator uses (nemu_op_abi.h check/cost/exec per
// op, plus describe/init/shape for the loader). Compiled once per header version and linked into every
// library. One kernel call: the op's tensors are wrapped over the emulator's fp32 buffers, the kernel runs
// on core 0 (or on each of the 8 cores in multicore mode, one after another, each seeing its own
// get_cpu_id()), every access is bounds-checked and counted, and a fault in user code is caught here and
// returned as an error naming the op.
#include <torch/torch.h>
#undef printf

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "nemu_op_abi.h"
#include "glue.h"
#include <torchneuron/register.h>

// Cost parameters, passed by the builder from neuron_emu/hardware.py (CUSTOM_OP_COSTS).
#ifndef NEMU_GPSIMD_CORES
#error "built without the hardware parameters (neuron_emu/custom_op/build.py passes them)"
#endif

#include "state.h"
#include "kernel_stack.h"

// The harness is compiled with -fvisibility=hidden: each library keeps its own registry and call state even
// when several are loaded; only these entry points are exported.
#define NEMU_EXPORT __attribute__((visibility("default")))

namespace torch {
namespace neuron_emu {
thread_local Call* t_call = nullptr;
thread_local BufferCache t_buffers;
}  // namespace neuron_emu

// ---- registration ----
namespace neuron_emu {
void Library::add(const char* name, void* shape_fn, InvokeFn invoke, const int* kinds, int n_args,
                  const char* kernel) {
  OpEntry e;
  e.name = name ? name : "";
  e.kernel = kernel ? kernel : "";
  e.shape_fn = shape_fn;
  e.shape_invoke = invoke;
  e.kinds.assign(kinds, kinds + n_args);
  lib().ops.push_back(std::move(e));
}

LibraryRegistrar::LibraryRegistrar(const char* ns, void (*body)(Library&), const char* file, int line) {
  LibraryState& s = lib();
  if (s.body)
    s.error = "more than one NEURON_LIBRARY in one library (" + s.ns + " at " + s.file + ":" + std::to_string(s.line) +
              " and " + ns + " at " + file + ":" + std::to_string(line) + "); a model may use one custom-op library";
  s.ns = ns;
  s.body = body;
  s.file = file;
  s.line = line;
}
}  // namespace neuron_emu
}  // namespace torch

// ======================= entry points for the emulator =======================
namespace {
using namespace torch::neuron_emu;
using torch::Tensor;
using torch::ScalarType;

// ---- crash isolation: a fault in user code longjmps back here, per thread ----
struct Guard {
  sigjmp_buf jb;
  volatile sig_atomic_t active = 0;
  void* volatile fault_addr = nullptr;
};
thread_local Guard t_guard;
struct sigaction g_old[65];
std::once_flag g_handlers_once;
int timer_signal() { return SIGRTMIN + 7; }

void on_signal(int sig, siginfo_t* si, void* uc) {
  if (t_guard.active) {
    t_guard.active = 0;
    t_guard.fault_addr = si ? si->si_addr : nullptr;
    siglongjmp(t_guard.jb, sig);
  }
  // Not in this library's kernel: hand it to the handler installed before ours (another custom-op library
  // whose kernel is running, Python's faulthandler, ...).
  const struct sigaction& old = g_old[sig];
  if (old.sa_flags & SA_SIGINFO) {
    if (old.sa_sigaction) old.sa_sigaction(sig, si, uc);
    return;
  }
  if (old.sa_handler == SIG_IGN || sig == timer_signal()) return;  // a timer that fired as its kernel finished
  if (old.sa_handler == SIG_DFL) {
    signal(sig, SIG_DFL);  // nobody's: fault again with the default action
    return;
  }
  old.sa_handler(sig);
}

void install_handlers() {
  std::call_once(g_handlers_once, [] {
    const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, timer_signal()};
    for (int s : sigs) {
      struct sigaction sa;
      memset(&sa, 0, sizeof sa);
      sa.sa_sigaction = on_signal;
      sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
      sigemptyset(&sa.sa_mask);
      sigaction(s, &sa, &g_old[s]);
    }
  });
  thread_local bool alt = false;  // a stack overflow faults on the normal stack: handle it on another one
  if (!alt) {
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_size = 1 << 16;
    ss.ss_sp = malloc(ss.ss_size);
    if (ss.ss_sp) sigaltstack(&ss, nullptr);
    alt = true;
  }
}

struct Timer {
  timer_t id;
  bool ok = false;
  Timer() {
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = timer_signal();
    ev._sigev_un._tid = static_cast<pid_t>(syscall(SYS_gettid));
    ok = timer_create(CLOCK_MONOTONIC, &ev, &id) == 0;
  }
  void arm(double s) {
    if (!ok) return;
    struct itimerspec it;
    memset(&it, 0, sizeof it);
    it.it_value.tv_sec = static_cast<time_t>(s);
    it.it_value.tv_nsec = static_cast<long>((s - static_cast<double>(it.it_value.tv_sec)) * 1e9);
    if (it.it_value.tv_sec == 0 && it.it_value.tv_nsec == 0) it.it_value.tv_nsec = 1;
    timer_settime(id, 0, &it, nullptr);
  }
  void disarm() {
    struct itimerspec off;
    memset(&off, 0, sizeof off);
    if (ok) timer_settime(id, 0, &off, nullptr);
  }
  ~Timer() {
    if (ok) timer_delete(id);
  }
};
thread_local Timer t_timer;
thread_local KernelStack t_stack;

struct KernelCall {
  const KernelEntry* k;
  Arg* args;
  Tensor result;
};
void invoke_kernel(void* p) {
  KernelCall* kc = static_cast<KernelCall*>(p);
  kc->result = kc->k->invoke(kc->k->fn, kc->args);
}

const char* signal_text(int sig) {
  if (sig == SIGSEGV) return "a segmentation fault (SIGSEGV)";
  if (sig == SIGBUS) return "a bus error (SIGBUS)";
  if (sig == SIGFPE) return "an arithmetic fault (SIGFPE)";
  if (sig == SIGILL) return "an illegal instruction (SIGILL)";
  if (sig == SIGABRT) return "abort() (SIGABRT)";
  return "a signal";
}

std::string stack_hint() {
  return "-byte STACK_SIZE (" + std::string(nemu_customop_stack_size == kDefaultStackSize ? "the default; " : "") +
         "declare more with extra_cflags=['-DSTACK_SIZE=<bytes>'], at most 409600)";
}

// ---- one call of op k ----
struct Decoded {
  std::vector<TensorImpl> tensors;  // inputs..., output
  std::vector<Arg> args;
};

// ip[0] = rank | ScalarType code << 8 (library.py CustomOp.fields), ip[1..2] = dims packed 16 bits each.
void decode_dims(const int64_t* ip, TensorImpl& t) {
  t.ndim = static_cast<int32_t>(ip[0] & 0xff);
  if (t.ndim < 0 || t.ndim > kMaxDims) throw DeviceError{"corrupt instruction: tensor rank " + std::to_string(t.ndim)};
  t.dtype = static_cast<ScalarType>(ip[0] >> 8);
  if (!device_dtype(t.dtype))
    throw DeviceError{"corrupt instruction: tensor dtype code " + std::to_string(ip[0] >> 8)};
  t.numel = 1;
  for (int d = t.ndim - 1; d >= 0; --d) {
    t.sizes[d] = (ip[1 + d / 4] >> (16 * (d % 4))) & 0xffff;
    t.strides[d] = t.numel;
    t.numel *= t.sizes[d];
  }
}

void decode(const OpEntry& op, const nemu_instr* in, Decoded& dec) {
  int nt = 0;
  for (int k : op.kinds) nt += k == kArgTensor;
  dec.tensors.assign(static_cast<size_t>(nt + 1), TensorImpl());
  for (int j = 0; j <= nt; ++j) {
    TensorImpl& t = dec.tensors[j];
    decode_dims(in->ints + 3 * j, t);
    t.role = j == nt ? kOutput : kInput;
    t.index = j;
    t.shared = j != nt;
    t.policy = torch::CoherencyEnforcer::Policy::COHERENT;
  }
  dec.args.assign(op.kinds.size(), Arg());
  int ti = 0, ii = 3 * (nt + 1), ri = 0;
  for (size_t a = 0; a < op.kinds.size(); ++a) {
    switch (op.kinds[a]) {
      case kArgTensor: dec.args[a].t = Tensor(&dec.tensors[ti++]); break;
      case kArgInt: dec.args[a].i = in->ints[ii++]; break;
      case kArgDouble: dec.args[a].d = in->reals[ri++]; break;
      case kArgScalar: dec.args[a].s = torch::Scalar(in->reals[ri++]); break;
    }
  }
}

size_t printf_queue_bytes() {
  const char* lvl = getenv("NEURON_RT_LOG_LEVEL");
  if (!lvl) return 0;
  std::string l(lvl);
  for (char& ch : l) ch = static_cast<char>(toupper(ch));
  if (l != "INFO" && l != "DEBUG" && l != "TRACE") return 0;
  const char* q = getenv("NEURON_RT_GPSIMD_STDOUT_QUEUE_SIZE_BYTES");
  if (!q) return 0;
  const long v = strtol(q, nullptr, 10);
  if (v <= 0 || v > 131072 || (v & (v - 1)) != 0) return 0;  // a power of two <= 128 KB (neuron-api.md 4.6)
  return static_cast<size_t>(v);
}

void flush_printf(const std::string& text) {
  if (text.empty()) return;
  char stamp[64];
  time_t now = time(nullptr);
  struct tm tm;
  localtime_r(&now, &tm);
  strftime(stamp, sizeof stamp, "%Y-%b-%d %H:%M:%S", &tm);
  fprintf(stdout, "%s %d:%d INFO  TDRV:pool_stdio_queue_consume_all_entries    Printing stdout from GPSIMD:\n%s",
          stamp, static_cast<int>(getpid()), static_cast<int>(syscall(SYS_gettid)), text.c_str());
  if (text.back() != '\n') fputc('\n', stdout);
  fflush(stdout);
}

// Runs op k over the operands; fills per-core counters. Throws DeviceError.
void run_op(int k, const nemu_instr* in, float* const* operand, const int64_t* numel, bool dry,
            std::vector<Counters>& per_core) {
  LibraryState& L = lib();
  if (k < 0 || k >= static_cast<int>(L.ops.size()) || !L.ops[k].k)
    throw DeviceError{"custom op #" + std::to_string(k) + " is not defined by this library"};
  const OpEntry& op = L.ops[k];
  const std::string qname = L.ns + "::" + op.name;
  if (!L.poisoned.empty())
    throw DeviceError{qname + ": refused: " + L.poisoned + " earlier in this process may have corrupted its memory; "
                      "restart the process"};
  Decoded dec;
  decode(op, in, dec);
  const int nt = static_cast<int>(dec.tensors.size()) - 1;
  for (int j = 0; j <= nt; ++j) {
    if (numel[j] < dec.tensors[j].numel)
      throw DeviceError{qname + ": operand " + std::to_string(j) + " holds " + std::to_string(numel[j]) +
                        " elements, its shape needs " + std::to_string(dec.tensors[j].numel)};
    dec.tensors[j].data = operand[j];
  }
  // The emulator's buffers hold fp32 values (a bf16/int tensor's values, exactly): a tensor of another dtype
  // is staged in its own element type, so the kernel sees the bytes the device would hold.
  std::vector<std::vector<char>> staged(static_cast<size_t>(nt + 1));
  for (int j = 0; j <= nt; ++j) {
    TensorImpl& t = dec.tensors[j];
    if (t.dtype == ScalarType::Float) continue;
    staged[j].assign(static_cast<size_t>(t.numel) * esize_of(t.dtype) + 1, 0);
    t.data = staged[j].data();
    if (j < nt)
      for (int64_t i = 0; i < t.numel; ++i) store(&t, i, static_cast<double>(operand[j][i]));
  }
  TensorImpl& dst = dec.tensors[nt];
  if (!t_stack.prepare(static_cast<size_t>(nemu_customop_stack_size)))
    throw DeviceError{qname + ": cannot map a " + std::to_string(nemu_customop_stack_size) + "-byte kernel stack"};
  const int cores = L.multicore ? NEMU_GPSIMD_CORES : 1;
  std::vector<int8_t> owner;
  if (cores > 1) owner.assign(static_cast<size_t>(dst.numel), -1);
  per_core.assign(static_cast<size_t>(cores), Counters());
  std::string printed;
  const size_t out_cap = dry ? 0 : printf_queue_bytes();
  const std::vector<TensorImpl> pristine = dec.tensors;

  install_handlers();
  std::unique_ptr<Call> cur;
  volatile int core_at = 0;
  // A signal in user code lands back here (the handler clears t_guard.active).
  const int jumped = sigsetjmp(t_guard.jb, 1);
  if (jumped != 0) {
    t_timer.disarm();
    t_call = nullptr;
    const int core = core_at;
    cur.reset();
    t_stack.paint();
    if ((jumped == SIGSEGV || jumped == SIGBUS) && t_stack.is_overflow(t_guard.fault_addr))
      throw DeviceError{qname + ": stack overflow on GpSimd core " + std::to_string(core) + ": the kernel ran past " +
                        "its " + std::to_string(t_stack.declared()) + stack_hint()};
    if (jumped == timer_signal())
    {
      char secs[32];
      snprintf(secs, sizeof secs, "%g", L.timeout_s);
      throw DeviceError{qname + ": the kernel did not finish within " + secs + " s on GpSimd core " + std::to_string(core) +
                        " (NEURON_EMU_CUSTOM_OP_TIMEOUT_S); it was stopped"};
    }
    if ((jumped == SIGSEGV || jumped == SIGBUS) && !dry) L.poisoned = "a memory fault in " + qname;
    throw DeviceError{qname + ": the kernel crashed with " + signal_text(jumped) + " on GpSimd core " +
                      std::to_string(core) + " (in user code, outside the bounds-checked accessors)"};
  }
  try {
    t_guard.active = 1;
    if (L.timeout_s > 0) t_timer.arm(L.timeout_s);
    for (int c = 0; c < cores; ++c) {
      core_at = c;
      cur.reset(new Call());
      cur->op = qname.c_str();
      cur->core = c;
      cur->cores = cores;
      cur->dry = dry;
      cur->dst = &dst;
      cur->owner = cores > 1 ? &owner : nullptr;
      cur->out_cap = out_cap;
      // each core starts from the op's inputs (a private copy an earlier core made is dropped)
      for (int j = 0; j < nt; ++j) dec.tensors[j] = pristine[j];
      t_call = cur.get();
      KernelCall kc{op.k, dec.args.data(), Tensor()};
      t_stack.run(invoke_kernel, &kc);
      if (const size_t over = t_stack.overrun())
        fail_at("the kernel used at least " + std::to_string(t_stack.declared() + over) + " bytes of stack, more " +
                "than its " + std::to_string(t_stack.declared()) + stack_hint());
      TensorImpl* ri = kc.result.unsafeGetTensorImpl();
      if (ri != &dst) {
        if (cores > 1)
          fail_at("a multicore kernel must write and return get_dst_tensor() (neuron-api.md 4.4)");
        if (!ri) fail_at("the kernel returned an undefined tensor");
        bool same = ri->ndim == dst.ndim;
        for (int d = 0; same && d < dst.ndim; ++d) same = ri->sizes[d] == dst.sizes[d];
        if (!same)
          fail_at("the kernel returned a tensor of shape " + shape_str(ri) + ", the shape function says " +
                  shape_str(&dst));
        if (ri->dtype == dst.dtype)
          memcpy(dst.data, ri->data, static_cast<size_t>(dst.numel) * esize_of(dst.dtype));
        else
          for (int64_t i = 0; i < dst.numel; ++i) store(&dst, i, load(ri, i));
      }
      if (c == 0) printed = cur->out;
      per_core[c] = cur->c;
      t_call = nullptr;
      cur.reset();
    }
    t_guard.active = 0;
  } catch (DeviceError&) {
    t_guard.active = 0;
    t_timer.disarm();
    t_call = nullptr;
    throw;
  } catch (std::exception& e) {
    t_guard.active = 0;
    t_timer.disarm();
    t_call = nullptr;
    throw DeviceError{qname + ": the kernel threw " + e.what() + " on GpSimd core " + std::to_string(core_at)};
  } catch (...) {
    t_guard.active = 0;
    t_timer.disarm();
    t_call = nullptr;
    throw DeviceError{qname + ": the kernel threw a C++ exception on GpSimd core " + std::to_string(core_at)};
  }
  if (L.timeout_s > 0) t_timer.disarm();
  if (cores > 1) {
    int64_t missing = 0, first = -1;
    for (int64_t i = 0; i < dst.numel; ++i)
      if (owner[i] < 0) {
        if (first < 0) first = i;
        ++missing;
      }
    if (missing)
      throw DeviceError{qname + ": " + std::to_string(missing) + " of " + std::to_string(dst.numel) +
                        " elements of the op's output were written by no GpSimd core (first: element " +
                        std::to_string(first) + "); the cores' slices do not cover get_dst_tensor()"};
  }
  if (dst.dtype != ScalarType::Float && !dry) {
    float* out = operand[nt];
    for (int64_t i = 0; i < dst.numel; ++i) {
      const double v = load(&dst, i);
      out[i] = static_cast<float>(v);
      if (static_cast<double>(out[i]) != v)  // only kInt can hold what fp32 cannot
        throw DeviceError{qname + ": element " + std::to_string(i) + " of the op's output (kInt) is " +
                          std::to_string(static_cast<int64_t>(v)) + ", beyond +-2^24: the emulator's device "
                          "buffers hold fp32 values, which cannot represent it exactly"};
    }
  }
  flush_printf(printed);
}

int report(const DeviceError& e, char* err, int64_t errlen) {
  snprintf(err, static_cast<size_t>(errlen), "%s", e.msg.c_str());
  return 1;
}

// Cost from what the kernel did, measured by a dry run on zero inputs (memoised per instruction): start-up,
// then the slowest core. Element accesses through accessor<> are HBM round trips; TCM transfers pay a setup and
// move bytes; the core then computes on what it brought into TCM.
// An element access through accessor<> is a round trip whatever its size; TCM transfers and streams move bytes
// (a bf16 tensor moves half of an fp32 one's); the core then computes once per element it brought in.
double cyc(const Counters& c) {
  return c.hbm * NEMU_HBM_ACCESS_CYCLES + c.tcm_calls * NEMU_TCM_SETUP_CYCLES +
         (c.tcm_bytes + c.stream_bytes) / NEMU_TCM_BYTES_PER_CYCLE +
         (c.tcm_in + c.stream) * NEMU_COMPUTE_CYCLES_PER_ELEM + static_cast<double>(c.lib_elems) / NEMU_GPSIMD_LANES;
}

std::mutex g_cost_mu;
std::map<std::vector<int64_t>, Counters> g_cost_memo;  // (op, ints) -> slowest core's counters, cores

nemu_cost cost_of(int k, const nemu_instr* in, const nemu_core* core) {
  LibraryState& L = lib();
  nemu_cost out;
  memset(&out, 0, sizeof out);
  out.instructions = 1;
  out.cycles = core->gpsimd_start + NEMU_CUSTOM_OP_LAUNCH_CYCLES;
  if (k < 0 || k >= static_cast<int>(L.ops.size())) return out;
  int nt = 0;
  for (int kind : L.ops[k].kinds) nt += kind == kArgTensor;
  std::vector<int64_t> key(in->ints, in->ints + 48);
  key.push_back(k);
  Counters worst;
  int64_t total_bytes = 0;
  bool have = false;
  {
    std::lock_guard<std::mutex> lk(g_cost_mu);
    auto it = g_cost_memo.find(key);
    if (it != g_cost_memo.end()) {
      worst = it->second;
      have = true;
    }
  }
  if (!have) {
    std::vector<std::vector<float>> bufs(static_cast<size_t>(nt + 1));
    std::vector<float*> ptrs(bufs.size());
    std::vector<int64_t> numel(bufs.size());
    for (int j = 0; j <= nt; ++j) {
      TensorImpl t;
      decode_dims(in->ints + 3 * j, t);
      bufs[j].assign(static_cast<size_t>(t.numel), 0.0f);
      ptrs[j] = bufs[j].data();
      numel[j] = t.numel;
    }
    std::vector<Counters> per;
    try {
      run_op(k, in, ptrs.data(), numel.data(), true, per);
    } catch (DeviceError&) {
      // the error surfaces when the op executes; cost what the cores did up to it
    }
    for (const Counters& c : per)
      if (cyc(c) >= cyc(worst)) worst = c;
    std::lock_guard<std::mutex> lk(g_cost_mu);
    g_cost_memo[key] = worst;
  }
  out.cycles += cyc(worst);
  total_bytes = worst.hbm * 4 + worst.tcm_bytes + worst.stream_bytes;  // (an accessor access: one 4-byte word)
  out.bytes = total_bytes * (L.multicore ? NEMU_GPSIMD_CORES : 1);
  return out;
}

int check_of(int k, const nemu_instr* in, const int64_t* numel, char* err, int64_t errlen) {
  LibraryState& L = lib();
  if (k < 0 || k >= static_cast<int>(L.ops.size()) || !L.ops[k].k) {
    snprintf(err, static_cast<size_t>(errlen), "custom op #%d is not defined by this library", k);
    return 1;
  }
  int nt = 0;
  for (int kind : L.ops[k].kinds) nt += kind == kArgTensor;
  if (in->n_operands != nt + 1) {
    snprintf(err, static_cast<size_t>(errlen), "%s::%s: %d operands, expected %d", L.ns.c_str(),
             L.ops[k].name.c_str(), in->n_operands, nt + 1);
    return 1;
  }
  for (int j = 0; j <= nt; ++j) {
    TensorImpl t;
    try {
      decode_dims(in->ints + 3 * j, t);
    } catch (DeviceError& e) {
      return report(e, err, errlen);
    }
    if (numel[j] < t.numel) {
      snprintf(err, static_cast<size_t>(errlen), "%s::%s: operand %d holds %lld elements, its shape needs %lld",
               L.ns.c_str(), L.ops[k].name.c_str(), j, static_cast<long long>(numel[j]),
               static_cast<long long>(t.numel));
      return 1;
    }
  }
  return 0;
}

int exec_of(int k, const nemu_instr* in, float* const* operand, const int64_t* numel, char* err, int64_t errlen) {
  std::vector<Counters> per;
  try {
    run_op(k, in, operand, numel, false, per);
  } catch (DeviceError& e) {
    return report(e, err, errlen);
  }
  return 0;
}

void json_str(std::string& o, const std::string& s) {
  o += '"';
  for (char ch : s) {
    if (ch == '"' || ch == '\\') o += '\\';
    if (static_cast<unsigned char>(ch) < 0x20) { o += ' '; continue; }
    o += ch;
  }
  o += '"';
}

}  // namespace

extern "C" {

// The library's NEURON_LIBRARY registration as JSON: {"ns", "file", "line", "error", "ops": [...]}.
NEMU_EXPORT int nemu_customop_describe(char* buf, int64_t len) {
  LibraryState& L = lib();
  if (!L.described && L.body) {
    L.described = true;
    Library m;
    L.body(m);
  }
  std::string o = "{\"ns\": ";
  json_str(o, L.ns);
  o += ", \"file\": ";
  json_str(o, L.file);
  o += ", \"line\": " + std::to_string(L.line) + ", \"error\": ";
  json_str(o, L.error);
  o += ", \"header_version\": " + std::to_string(NEMU_CUSTOM_OP_HEADER_VERSION) + ", \"ops\": [";
  for (size_t i = 0; i < L.ops.size(); ++i) {
    o += i ? ", {\"name\": " : "{\"name\": ";
    json_str(o, L.ops[i].name);
    o += ", \"kernel\": ";
    json_str(o, L.ops[i].kernel);
    o += ", \"kinds\": [";
    for (size_t a = 0; a < L.ops[i].kinds.size(); ++a) o += (a ? ", " : "") + std::to_string(L.ops[i].kinds[a]);
    o += "]}";
  }
  o += "]}";
  snprintf(buf, static_cast<size_t>(len), "%s", o.c_str());
  return static_cast<int>(o.size());
}

// Binds each op to its kernel (by name, in the generated table) and sets the library-wide mode.
NEMU_EXPORT int nemu_customop_init(int multicore, double timeout_s, char* err, int64_t errlen) {
  LibraryState& L = lib();
  L.multicore = multicore != 0;
  L.timeout_s = timeout_s;
  int n = 0;
  const KernelEntry* table = nemu_customop_kernels(&n);
  for (OpEntry& op : L.ops) {
    op.k = nullptr;
    for (int i = 0; i < n; ++i)
      if (op.kernel == table[i].name) op.k = &table[i];
    if (!op.k) {
      snprintf(err, static_cast<size_t>(errlen),
               "%s::%s: the kernel function '%s' named by m.def() is not defined in the compute sources",
               L.ns.c_str(), op.name.c_str(), op.kernel.c_str());
      return 1;
    }
    if (op.k->n_args != static_cast<int>(op.kinds.size())) {
      snprintf(err, static_cast<size_t>(errlen),
               "%s::%s: the kernel %s(%s) takes %d arguments, its shape function %zu", L.ns.c_str(),
               op.name.c_str(), op.k->name, op.k->signature, op.k->n_args, op.kinds.size());
      return 1;
    }
  }
  return 0;
}

NEMU_EXPORT void nemu_customop_set_timeout(double s) { lib().timeout_s = s; }

// Runs op k's shape function on shape-only tensors. desc: 3 ints per tensor argument (rank, dims packed
// 16 bits each) then the int arguments; reals: the double/Scalar arguments. out: rank, dims[8], dtype.
NEMU_EXPORT int nemu_customop_shape(int k, const int64_t* ints, const double* reals, int64_t* out, char* err, int64_t errlen) {
  LibraryState& L = lib();
  if (k < 0 || k >= static_cast<int>(L.ops.size())) return report(DeviceError{"no such op"}, err, errlen);
  const OpEntry& op = L.ops[k];
  const std::string qname = L.ns + "::" + op.name;
  nemu_instr in{0, ints, reals};
  Decoded dec;
  Call c;
  c.op = qname.c_str();
  c.shape_only = true;
  try {
    decode(op, &in, dec);
    for (TensorImpl& t : dec.tensors) {
      t.role = kShapeOnly;
      t.data = nullptr;
    }
    t_call = &c;
    Tensor r = op.shape_invoke(op.shape_fn, dec.args.data());
    t_call = nullptr;
    const TensorImpl* ri = r.unsafeGetTensorImpl();
    if (!ri) throw DeviceError{qname + ": the shape function returned an undefined tensor"};
    out[0] = ri->ndim;
    for (int d = 0; d < ri->ndim; ++d) out[1 + d] = ri->sizes[d];
    out[9] = static_cast<int64_t>(ri->dtype);
  } catch (DeviceError& e) {
    t_call = nullptr;
    return report(e, err, errlen);
  } catch (...) {
    t_call = nullptr;
    return report(DeviceError{qname + ": the shape function threw a C++ exception"}, err, errlen);
  }
  return 0;
}

#define NEMU_OP_ENTRIES(k)                                                                                     \
  NEMU_EXPORT int nemu_customop_check_##k(const nemu_instr* in, const int64_t* numel, char* err, int64_t errlen) {       \
    return check_of(k, in, numel, err, errlen);                                                               \
  }                                                                                                           \
  NEMU_EXPORT nemu_cost nemu_customop_cost_##k(const nemu_instr* in, const nemu_core* core) { return cost_of(k, in, core); } \
  NEMU_EXPORT int nemu_customop_exec_##k(const nemu_instr* in, float* const* op, const int64_t* numel, char* err,        \
                             int64_t errlen) {                                                                \
    return exec_of(k, in, op, numel, err, errlen);                                                            \
  }
NEMU_OP_ENTRIES(0) NEMU_OP_ENTRIES(1) NEMU_OP_ENTRIES(2) NEMU_OP_ENTRIES(3) NEMU_OP_ENTRIES(4)
NEMU_OP_ENTRIES(5) NEMU_OP_ENTRIES(6) NEMU_OP_ENTRIES(7) NEMU_OP_ENTRIES(8) NEMU_OP_ENTRIES(9)
#undef NEMU_OP_ENTRIES

}  // extern "C"
