#include "forward_op.h"

#include <Python.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <unordered_map>

#include "spread_workers.h"
#include "torch_stable_abi.h"

namespace nemu {

namespace {

bool is_floating(const std::string& dtype) {
  return dtype.rfind("float", 0) == 0 || dtype == "bfloat16" || dtype.rfind("complex", 0) == 0;
}

struct Io {
  int32_t dtype;
  std::vector<int64_t> sizes, strides;  // strides: contiguous
  int64_t row_bytes;                     // bytes of one index of dimension 0 (batched I/O)
  int64_t total_bytes;                   // bytes of the compiled size
  bool batched;                          // dynamic batching: dimension 0 is the batch (the compiled one)
  bool floating;                         // floating-point dtype: may require grad
};

struct Placement {
  unsigned char uid[16];
  int64_t numel;
  std::vector<ForwardCopy> copies;
  std::vector<Io> ins, outs;
  bool grad_free;  // no floating-point input: none can require grad
  int64_t batch;   // > 0: dynamic batching for this compiled batch
  mutable std::atomic<uint64_t> next{0};
};

constexpr int64_t kUidOffset = 16;  // artifact prefix: magic[8], two uint32, uid[16] (compiler/artifact.py)

std::shared_mutex g_mu;
std::unordered_map<uintptr_t, std::shared_ptr<const Placement>> g_placed;
std::atomic<int64_t> g_native_calls{0};
uint64_t g_torch_version = 0;  // the extension_build_version passed to torch's stable ABI (install)
thread_local int t_pin = -1;
thread_local std::vector<TorchTensor> in_handles;  // the call's input handles (borrowed until consumed)

std::shared_ptr<const Placement> find(TorchTensor model) {
  const TorchAbi& s = torch_abi();
  void* data = nullptr;
  int32_t dev = -1;
  int64_t numel = 0;
  if (s.data_ptr(model, &data) || s.device_type(model, &dev) || dev != s.cpu || s.numel(model, &numel)) return nullptr;
  std::shared_ptr<const Placement> p;
  {
    std::shared_lock<std::shared_mutex> lk(g_mu);
    auto it = g_placed.find(reinterpret_cast<uintptr_t>(data));
    if (it == g_placed.end()) return nullptr;
    p = it->second;
  }
  // the same bytes as when placed (a freed artifact's address may hold another one now)
  if (numel != p->numel || std::memcmp(static_cast<const char*>(data) + kUidOffset, p->uid, 16) != 0) return nullptr;
  return p;
}

// The model's input pointers when every input is what it was compiled for, else -1. Returns the batch: the
// compiled one, or with dynamic batching the common size of the batched inputs' dimension 0 (>= 1).
int64_t gather_inputs(const Placement& p, TorchList list, std::vector<TorchTensor>& handles, std::vector<void*>& ptrs) {
  handles.clear();
  const TorchAbi& s = torch_abi();
  size_t n = 0;
  if (s.list_size(list, &n) || n != p.ins.size()) return -1;
  ptrs.resize(n);
  int64_t rows = -1;
  for (size_t i = 0; i < n; ++i) {
    StableIValue v = 0;
    if (s.list_get(list, i, &v)) return -1;
    TorchTensor t = reinterpret_cast<TorchTensor>(static_cast<uintptr_t>(v));
    const Io& want = p.ins[i];
    int32_t dt = -1, dev = -1;
    int64_t dim = -1, *sizes = nullptr;
    bool contiguous = false;
    if (s.dtype(t, &dt) || dt != want.dtype || s.device_type(t, &dev) || dev != s.cpu || s.dim(t, &dim) ||
        dim != static_cast<int64_t>(want.sizes.size()) || s.sizes(t, &sizes) || s.is_contiguous(t, &contiguous) ||
        !contiguous || s.data_ptr(t, &ptrs[i]))
      return -1;
    const bool batched = p.batch > 0 && want.batched;
    if (!std::equal(want.sizes.begin() + (batched ? 1 : 0), want.sizes.end(), sizes + (batched ? 1 : 0))) return -1;
    if (batched) {
      if (sizes[0] < 1 || (rows >= 0 && sizes[0] != rows)) return -1;
      rows = sizes[0];
    }
    handles.push_back(t);
  }
  return rows < 0 ? (p.batch > 0 ? p.batch : 1) : rows;
}

// Runs batch rows [begin, end) of `rows` (begin a multiple of the compiled batch) as compiled-batch chunks on one
// program (runtime/batching.py): chunk inputs are row ranges of the inputs (the last one copied into zero
// padding), batched outputs are written in place (the last chunk through scratch), other outputs come from the
// chunk of row 0.
void run_chunks(const Placement& p, LoadedProgram& prog, int64_t rows, int64_t begin, int64_t end,
                const std::vector<void*>& ins, const std::vector<void*>& outs, double* stats) {
  thread_local std::vector<void*> in_c, out_c;
  thread_local std::vector<unsigned char> pad;
  const int64_t B = p.batch;
  if (rows != B) {  // scratch: a padded chunk of each batched input and output, a discarded copy of the others
    size_t need = 0;
    for (const Io& io : p.ins) need += io.batched ? B * io.row_bytes : 0;
    for (const Io& io : p.outs) need += io.batched ? B * io.row_bytes : io.total_bytes;
    if (pad.size() < need) pad.resize(need);
  }
  in_c.resize(ins.size());
  out_c.resize(outs.size());
  for (int64_t start = begin; start < end; start += B) {
    const int64_t r = std::min(B, rows - start);
    unsigned char* scratch = pad.data();
    for (size_t i = 0; i < ins.size(); ++i) {
      const Io& io = p.ins[i];
      unsigned char* x = static_cast<unsigned char*>(ins[i]);
      if (!io.batched) {
        in_c[i] = x;
      } else if (r == B) {
        in_c[i] = x + start * io.row_bytes;
      } else {
        std::memcpy(scratch, x + start * io.row_bytes, r * io.row_bytes);
        std::memset(scratch + r * io.row_bytes, 0, (B - r) * io.row_bytes);
        in_c[i] = scratch;
        scratch += B * io.row_bytes;
      }
    }
    for (size_t j = 0; j < outs.size(); ++j) {
      const Io& io = p.outs[j];
      unsigned char* y = static_cast<unsigned char*>(outs[j]);
      if (io.batched ? r == B : start == 0) {
        out_c[j] = io.batched ? y + start * io.row_bytes : y;
      } else {
        out_c[j] = scratch;
        scratch += io.batched ? B * io.row_bytes : io.total_bytes;
      }
    }
    prog.execute(in_c.data(), out_c.data(), stats);
    for (size_t j = 0; j < outs.size(); ++j)
      if (p.outs[j].batched && r < B)
        std::memcpy(static_cast<unsigned char*>(outs[j]) + start * p.outs[j].row_bytes, out_c[j], r * p.outs[j].row_bytes);
  }
}

// The chunks of `rows` spread over the placement's copies as consecutive spans, span j on copy first + j (mod
// copies; `first` advances per call, as runtime/batching.py's run_dynamic rotates, so a call of fewer chunks than
// copies does not always land on the first), span 0 on the calling thread and span j on spread helper j
// (spread_workers.h): DataParallel's and replicated dynamic batching's split, with no Python thread. `stats`: the
// calling thread's last execution.
void spread_chunks(const Placement& p, int64_t rows, size_t first, const std::vector<void*>& ins,
                   const std::vector<void*>& outs, double* stats) {
  const int64_t B = p.batch, chunks = (rows + B - 1) / B;
  const size_t n = p.copies.size();
  const int64_t k = std::min<int64_t>(static_cast<int64_t>(n), chunks), per = (chunks + k - 1) / k;
  size_t shares = 0;
  while (static_cast<int64_t>(shares) < k && static_cast<int64_t>(shares) * per < chunks) ++shares;
  thread_local std::vector<double> other;  // the helpers' stats (the caller keeps its own in `stats`)
  other.resize(kStatsLen * shares);
  double* const other_stats = other.data();  // by pointer: in a helper, `other` would name the helper's own
  run_spread(shares, [&](size_t j) {
    const int64_t begin = static_cast<int64_t>(j) * per * B, end = std::min(rows, (static_cast<int64_t>(j) + 1) * per * B);
    run_chunks(p, *p.copies[(first + j) % n].program, rows, begin, end, ins, outs,
               j == 0 ? stats : other_stats + j * kStatsLen);
  });
}

// The call's freshly allocated output handles (kept per thread: no allocation per call); whatever is still here
// when the call leaves was not handed to torch and is freed.
thread_local std::vector<TorchTensor> out_handles;
struct FreeUnhandedOutputs {
  ~FreeUnhandedOutputs() {
    for (TorchTensor x : out_handles) torch_abi().tensor_delete(x);
    out_handles.clear();
  }
};

bool run_native(StableIValue* stack, bool autograd_key) {
  const TorchAbi& s = torch_abi();
  TorchList list = reinterpret_cast<TorchList>(static_cast<uintptr_t>(stack[0]));
  TorchTensor model = reinterpret_cast<TorchTensor>(static_cast<uintptr_t>(stack[1]));
  std::shared_ptr<const Placement> p = find(model);
  if (!p) return false;
  thread_local std::vector<void*> in_ptrs, out_ptrs;
  const int64_t rows = gather_inputs(*p, list, in_handles, in_ptrs);
  if (rows < 0) return false;
  if (autograd_key && !p->grad_free && s.grad_enabled())  // autograd is the Python kernel's
    for (size_t i = 0; i < in_handles.size(); ++i)
      if (p->ins[i].floating && tensor_requires_grad(in_handles[i], g_torch_version)) return false;
  const bool chunked = p->batch > 0 && rows != p->batch;
  const ForwardCopy* copy = nullptr;
  size_t first = 0;  // spread_chunks' first copy
  if (t_pin >= 0) {
    for (const ForwardCopy& c : p->copies)
      if (c.core == t_pin) copy = &c;
    if (!copy) return false;  // pinned to a core without a copy: the runtime loads one there
  } else if (chunked && p->copies.size() > 1) {  // no one copy: the chunks are spread over them (spread_chunks)
    first = p->next.fetch_add(1, std::memory_order_relaxed) % p->copies.size();
  } else {
    copy = &p->copies[p->next.fetch_add(1, std::memory_order_relaxed) % p->copies.size()];
  }
  FreeUnhandedOutputs free_outputs;
  out_ptrs.resize(p->outs.size());
  thread_local std::vector<int64_t> sizes;
  for (size_t i = 0; i < p->outs.size(); ++i) {
    const Io& o = p->outs[i];
    sizes = o.sizes;
    if (chunked && o.batched) sizes[0] = rows;
    TorchTensor t = nullptr;
    if (s.empty_strided(static_cast<int64_t>(sizes.size()), sizes.data(), o.strides.data(), o.dtype, s.cpu, 0, &t))
      return false;
    out_handles.push_back(t);
    if (s.data_ptr(t, &out_ptrs[i])) return false;
  }
  // from here on the call is ours: the arguments (input handles, their list, the model) are consumed
  struct Consume {
    TorchList list;
    TorchTensor model;
    ~Consume() {
      const TorchAbi& s = torch_abi();
      for (TorchTensor t : in_handles) s.tensor_delete(t);
      s.list_delete(list);
      s.tensor_delete(model);
    }
  } consume{list, model};
  double stats[kStatsLen];
  {
    // called from Python directly (torch.ops.neuron.forward_v2) the GIL is held; from TorchScript it is not
    PyThreadState* saved = Py_IsInitialized() && PyGILState_Check() ? PyEval_SaveThread() : nullptr;
    try {
      if (!copy) spread_chunks(*p, rows, first, in_ptrs, out_ptrs, stats);
      else if (chunked) run_chunks(*p, *copy->program, rows, 0, rows, in_ptrs, out_ptrs, stats);
      else copy->program->execute(in_ptrs.data(), out_ptrs.data(), stats);
    } catch (...) {
      if (saved) PyEval_RestoreThread(saved);
      throw;
    }
    if (saved) PyEval_RestoreThread(saved);
  }
  TorchList result = nullptr;
  if (s.list_new(out_handles.size(), &result))
    throw std::runtime_error("neuron forward op: cannot allocate the output list");
  for (TorchTensor t : out_handles) s.list_push(result, static_cast<StableIValue>(reinterpret_cast<uintptr_t>(t)));
  out_handles.clear();   // handed to torch
  stack[0] = static_cast<StableIValue>(reinterpret_cast<uintptr_t>(result));
  g_native_calls.fetch_add(1, std::memory_order_relaxed);
  return true;
}

std::string g_fallback[2];  // the Python implementation's op name, of forward_v2 and of forward_1

template <int Which, bool AutogradKey>
void kernel(StableIValue* stack, uint64_t /*num_args*/, uint64_t /*num_returns*/) {
  if (run_native(stack, AutogradKey)) return;
  const TorchAbi& s = torch_abi();
  if (s.call_dispatcher(g_fallback[Which].c_str(), "", stack, g_torch_version))
    throw std::runtime_error(s.exception_what());
}

}  // namespace

bool forward_op_install(const std::string& op, const std::string& fallback, uint64_t torch_version) {
  const TorchAbi& s = torch_abi();
  if (!s.ok) return false;
  const int which = op == "forward_v2" ? 0 : op == "forward_1" ? 1 : -1;
  if (which < 0) throw std::invalid_argument("forward op: unknown op " + op);
  g_fallback[which] = "neuron::" + fallback;
  g_torch_version = torch_version;
  const TorchBoxedFn fns[2][2] = {{&kernel<0, true>, &kernel<0, false>}, {&kernel<1, true>, &kernel<1, false>}};
  const char* keys[2] = {"Autograd", "CPU"};
  for (int k = 0; k < 2; ++k) {
    void* lib = nullptr;  // kept for the process's life: deleting it would unregister the kernel
    if (s.library_init_impl("neuron", keys[k], __FILE__, __LINE__, &lib) ||
        s.library_impl(lib, op.c_str(), fns[which][k], torch_version))
      throw std::runtime_error(std::string("forward op: registering neuron::") + op + " for " + keys[k] + ": " +
                               s.exception_what());
  }
  return true;
}

void forward_op_place(uintptr_t artifact_data, int64_t artifact_numel, const std::string& uid,
                      std::vector<ForwardCopy> copies, const std::vector<ForwardIo>& inputs,
                      const std::vector<ForwardIo>& outputs, int64_t dynamic_batch, int64_t n_user) {
  if (uid.size() != 16) throw std::invalid_argument("forward op: an artifact uid has 16 bytes");
  if (copies.empty()) throw std::invalid_argument("forward op: a placement needs a copy");
  auto p = std::make_shared<Placement>();
  std::memcpy(p->uid, uid.data(), 16);
  p->numel = artifact_numel;
  p->copies = std::move(copies);
  p->grad_free = true;
  p->batch = dynamic_batch;
  auto io = [&](const ForwardIo& f, bool batched) {
    Io o{torch_dtype_code(f.dtype), f.sizes, std::vector<int64_t>(f.sizes.size(), 1), 0, f.itemsize, false,
         is_floating(f.dtype)};
    for (int64_t d = static_cast<int64_t>(o.sizes.size()) - 2; d >= 0; --d)
      o.strides[d] = o.strides[d + 1] * std::max<int64_t>(o.sizes[d + 1], 1);
    for (int64_t n : f.sizes) o.total_bytes *= n;
    o.batched = batched && dynamic_batch > 0 && !f.sizes.empty() && f.sizes[0] == dynamic_batch;
    o.row_bytes = o.batched ? o.total_bytes / dynamic_batch : 0;
    return o;
  };
  for (size_t i = 0; i < inputs.size(); ++i) {
    p->ins.push_back(io(inputs[i], static_cast<int64_t>(i) < n_user));
    p->grad_free = p->grad_free && !is_floating(inputs[i].dtype);
  }
  for (const ForwardIo& f : outputs) p->outs.push_back(io(f, true));
  std::shared_ptr<const Placement> gone = std::move(p);  // swapped with the old one, released outside the lock
  std::unique_lock<std::shared_mutex> lk(g_mu);
  std::swap(g_placed[artifact_data], gone);
  lk.unlock();
}

void forward_op_remove(uintptr_t artifact_data) {
  std::shared_ptr<const Placement> gone;  // released outside the lock (may drop the last program reference)
  std::unique_lock<std::shared_mutex> lk(g_mu);
  auto it = g_placed.find(artifact_data);
  if (it == g_placed.end()) return;
  gone = std::move(it->second);
  g_placed.erase(it);
  lk.unlock();
}

void forward_op_pin(int core) { t_pin = core; }

int64_t forward_op_native_calls() { return g_native_calls.load(); }

}  // namespace nemu
