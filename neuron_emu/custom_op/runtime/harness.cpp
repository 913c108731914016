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

namespace torch {
namespace neuron_emu {
namespace {

constexpr int kMaxOps = 10;  // functions per library (neuron-api.md 4.2)

struct DeviceError {
  std::string msg;
};

struct OpEntry {
  std::string name, kernel;
  void* shape_fn;
  InvokeFn shape_invoke;
  std::vector<int> kinds;
  const KernelEntry* k = nullptr;
};

struct LibraryState {
  std::string ns, file, error;
  int line = 0;
  void (*body)(Library&) = nullptr;
  bool described = false;
  std::vector<OpEntry> ops;
  bool multicore = false;
  double timeout_s = 60.0;
  std::string poisoned;
};
LibraryState& lib() {
  static LibraryState s;
  return s;
}

// What one core did during one call: the inputs of the GpSimd cost.
struct Counters {
  int64_t hbm = 0;          // element accesses through accessor<>
  int64_t tcm_calls = 0;    // tensor_to_tcm / tcm_to_tensor calls
  int64_t tcm_elems = 0;    // elements they moved
  int64_t tcm_in = 0;       // elements brought into TCM (the data the core then computes on)
  int64_t stream = 0;       // elements through stream accessors
  int64_t lib_elems = 0;    // elements produced by factory and elementwise library ops
};

struct TcmBlock {
  size_t off, size;
};

struct StreamStateImpl {
  TensorImpl* t;
  int64_t pos = 0;
  int esize;
  bool write, closed = false;
  void* tcm = nullptr;
};

struct Call {
  const char* op;
  int core = 0, cores = 1;
  bool shape_only = false, dry = false;
  TensorImpl* dst = nullptr;
  Counters c;
  std::vector<std::unique_ptr<TensorImpl>> locals;
  std::vector<void*> owned;                 // data of locals and private copies of inputs
  std::vector<std::unique_ptr<StreamStateImpl>> streams;
  alignas(64) unsigned char tcm[NEMU_TCM_POOL_BYTES];
  std::vector<TcmBlock> blocks;
  std::vector<int8_t>* owner = nullptr;     // multicore: which core wrote each output element
  std::string out;                          // printf queue (core 0)
  size_t out_cap = 0;
  ~Call();
};

size_t esize_of(ScalarType t);

// Buffers of tensors a kernel creates are kept per thread between calls: a kernel that allocates its output
// with torch::zeros every call would otherwise pay fresh pages (page faults) each time.
struct BufferCache {
  std::vector<std::pair<size_t, void*>> free_list;
  ~BufferCache() {
    for (auto& b : free_list) free(b.second);
  }
  void* get(size_t n, bool zero) {
    for (size_t i = 0; i < free_list.size(); ++i)
      if (free_list[i].first == n) {
        void* p = free_list[i].second;
        free_list.erase(free_list.begin() + i);
        if (zero) memset(p, 0, n);
        return p;
      }
    return zero ? calloc(n, 1) : malloc(n);
  }
  void put(size_t n, void* p) {
    if (free_list.size() >= 16) {
      free(free_list.front().second);
      free_list.erase(free_list.begin());
    }
    free_list.emplace_back(n, p);
  }
};
thread_local BufferCache t_buffers;

Call::~Call() {
  for (void* p : owned) free(p);
  for (auto& l : locals)
    if (l->data) t_buffers.put(static_cast<size_t>(l->numel) * esize_of(l->dtype) + 1, l->data);
}
thread_local Call* t_call = nullptr;

Call& call() {
  if (!t_call) throw DeviceError{"torch device API used outside a custom-op call"};
  return *t_call;
}

std::string shape_str(const TensorImpl* t) {
  std::string s = "[";
  for (int d = 0; d < t->ndim; ++d) s += (d ? ", " : "") + std::to_string(t->sizes[d]);
  return s + "]";
}

std::string tensor_name(const TensorImpl* t) {
  if (!t) return "tensor";
  switch (t->role) {
    case kInput: return "argument " + std::to_string(t->index) + " (input, shape " + shape_str(t) + ")";
    case kOutput: return "the op's output (get_dst_tensor(), shape " + shape_str(t) + ")";
    case kShapeOnly: return "argument " + std::to_string(t->index) + " of the shape function";
    default: return "tensor #" + std::to_string(t->index) + " created by the kernel (shape " + shape_str(t) + ")";
  }
}

[[noreturn]] void fail_at(const std::string& what) {
  Call* c = t_call;
  std::string where = c && !c->shape_only ? " on GpSimd core " + std::to_string(c->core) : "";
  throw DeviceError{std::string(c ? c->op : "custom op") + ": " + what + where};
}

size_t esize_of(ScalarType t) {
  switch (t) {
    case ScalarType::Byte: case ScalarType::Char: return 1;
    case ScalarType::Short: case ScalarType::Half: case ScalarType::BFloat16: return 2;
    case ScalarType::Int: case ScalarType::Float: return 4;
    case ScalarType::Long: case ScalarType::Double: return 8;
  }
  return 0;
}

const char* dtype_name(ScalarType t) {
  switch (t) {
    case ScalarType::Byte: return "kByte";
    case ScalarType::Char: return "kChar";
    case ScalarType::Short: return "kShort";
    case ScalarType::Int: return "kInt";
    case ScalarType::Long: return "kLong";
    case ScalarType::Half: return "kHalf";
    case ScalarType::Float: return "kFloat";
    case ScalarType::Double: return "kDouble";
    case ScalarType::BFloat16: return "kBFloat16";
  }
  return "?";
}

// ---- float16 / bfloat16 storage ----
uint16_t bf16_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

}  // namespace

// ---- data access ----
[[noreturn]] void index_error(const TensorImpl* t, const char* access, int dim, int64_t index, int64_t offset) {
  std::string idx;
  for (int d = 0; d < dim; ++d) {
    idx += "[" + std::to_string(t->strides[d] ? offset / t->strides[d] : 0) + "]";
    if (t->strides[d]) offset %= t->strides[d];
  }
  idx += "[" + std::to_string(index) + "]";
  for (int d = dim + 1; d < t->ndim; ++d) idx += "[.]";
  fail_at(std::string("out-of-bounds ") + access + " of " + tensor_name(t) + " at index " + idx + ": index " +
          std::to_string(index) + " is outside dim " + std::to_string(dim) + " of size " +
          std::to_string(t->sizes[dim]));
}

[[noreturn]] void usage_error(const TensorImpl* t, const char* what) {
  fail_at(t ? std::string(what) + " (" + tensor_name(t) + ")" : std::string(what));
}

size_t element_size(ScalarType t) { return esize_of(t); }

void* data_for(TensorImpl* t, bool write, const char* access) {
  Call& c = call();
  if (t->role == kShapeOnly || (!t->data && t->numel > 0))
    usage_error(t, "a shape function cannot read tensor data: at shape time the inputs hold no values");
  if (c.cores > 1 && access[0] != 't')
    fail_at(std::string(access) + "() is single-core only: a multicore kernel must use tcm_accessor() (" +
            tensor_name(t) + ")");
  if (write && t->shared) {  // inputs are never modified: the first write makes a private copy
    const size_t n = static_cast<size_t>(t->numel) * esize_of(t->dtype);
    void* p = malloc(n ? n : 1);
    if (!p) fail_at("out of host memory");
    memcpy(p, t->data, n);
    c.owned.push_back(p);
    t->data = p;
    t->shared = false;
  }
  return t->data;
}

int64_t* hbm_counter() { return &call().c.hbm; }

void check_accessor(const TensorImpl* t, int elem_size, int dims, const char* access) {
  if (static_cast<size_t>(elem_size) != esize_of(t->dtype))
    fail_at(std::string(access) + "<T, N>() with a " + std::to_string(elem_size) + "-byte T on " + tensor_name(t) +
            " of dtype " + dtype_name(t->dtype));
  if (dims != t->ndim)
    fail_at(std::string(access) + "<T, " + std::to_string(dims) + ">() on " + tensor_name(t) + ", which has " +
            std::to_string(t->ndim) + " dims");
}

void tcm_transfer(TensorImpl* t, void* tcm, size_t offset, size_t n, int elem_size, bool to_tensor) {
  Call& c = call();
  const char* what = to_tensor ? "tcm_to_tensor" : "tensor_to_tcm";
  if (static_cast<size_t>(elem_size) != esize_of(t->dtype))
    fail_at(std::string(what) + " of " + std::to_string(elem_size) + "-byte elements on " + tensor_name(t) +
            " of dtype " + dtype_name(t->dtype));
  const size_t numel = static_cast<size_t>(t->numel);
  if (offset > numel || n > numel - offset)
    fail_at(std::string("out-of-bounds ") + what + (to_tensor ? " write to " : " read of ") + tensor_name(t) +
            ": elements [" + std::to_string(offset) + ", " + std::to_string(offset + n) + ") of " +
            std::to_string(numel) + " (first bad index " + std::to_string(std::max(offset, numel)) + ")");
  const size_t bytes = n * static_cast<size_t>(elem_size);
  const unsigned char* p = static_cast<const unsigned char*>(tcm);
  bool inside = false;
  for (const TcmBlock& b : c.blocks)
    if (p >= c.tcm + b.off && p + bytes <= c.tcm + b.off + b.size) inside = true;
  if (!inside && n > 0)
    fail_at(std::string(what) + " of " + std::to_string(n) + " elements of " + tensor_name(t) +
            ": the TCM pointer does not lie inside a tcm_malloc() block with room for them");
  char* data = static_cast<char*>(data_for(t, to_tensor, "tcm_accessor"));
  if (to_tensor) {
    if (c.owner && t->role == kOutput) {
      std::vector<int8_t>& own = *c.owner;
      for (size_t i = offset; i < offset + n; ++i) {
        if (own[i] >= 0 && own[i] != c.core)
          fail_at("overlapping multicore writes: element " + std::to_string(i) + " of " + tensor_name(t) +
                  " written by GpSimd core " + std::to_string(own[i]) + " and by core " + std::to_string(c.core));
        own[i] = static_cast<int8_t>(c.core);
      }
    }
    memcpy(data + offset * elem_size, tcm, bytes);
  } else {
    memcpy(tcm, data + offset * elem_size, bytes);
    c.c.tcm_in += static_cast<int64_t>(n);
  }
  c.c.tcm_calls += 1;
  c.c.tcm_elems += static_cast<int64_t>(n);
}

StreamState* stream_open(TensorImpl* t, int elem_size, bool write) {
  Call& c = call();
  check_accessor(t, elem_size, t->ndim, write ? "write_stream_accessor" : "read_stream_accessor");
  data_for(t, write, write ? "write_stream_accessor" : "read_stream_accessor");
  c.streams.emplace_back(new StreamStateImpl{t, 0, elem_size, write});
  c.streams.back()->tcm = neuron::tcm_malloc(4096);  // each stream caches 4 KB of TCM (neuron-api.md 4.4)
  return reinterpret_cast<StreamState*>(c.streams.back().get());
}

void* stream_next(StreamState* st) {
  StreamStateImpl* s = reinterpret_cast<StreamStateImpl*>(st);
  Call& c = call();
  const char* what = s->write ? "write_stream_accessor write()" : "read_stream_accessor read()";
  if (s->closed) fail_at(std::string(what) + " after close() on " + tensor_name(s->t));
  if (s->pos >= s->t->numel)
    fail_at(std::string("out-of-bounds ") + what + " of " + tensor_name(s->t) + " at index " +
            std::to_string(s->pos) + ": past its " + std::to_string(s->t->numel) + " elements");
  if (s->tcm) c.c.stream += 1; else c.c.hbm += 1;  // without a TCM cache a stream is as slow as accessor<>
  return static_cast<char*>(s->t->data) + (s->pos++) * s->esize;
}

int stream_close(StreamState* st) {
  StreamStateImpl* s = reinterpret_cast<StreamStateImpl*>(st);
  if (!s->closed && s->tcm) neuron::tcm_free(s->tcm);
  s->closed = true;
  return 0;
}

}  // namespace neuron_emu

// ---- TCM pool (per core, per call) ----
namespace neuron {
using neuron_emu::Call;
using neuron_emu::TcmBlock;
using neuron_emu::call;
using neuron_emu::fail_at;
void* tcm_malloc(size_t nbytes) {
  Call& c = call();
  nbytes = (nbytes + 15) & ~size_t(15);
  if (nbytes == 0 || nbytes > sizeof c.tcm) return nullptr;
  size_t at = 0;
  for (const TcmBlock& b : c.blocks) {  // first fit; blocks are sorted by offset
    if (b.off - at >= nbytes) break;
    at = b.off + b.size;
  }
  if (at + nbytes > sizeof c.tcm) return nullptr;
  TcmBlock nb{at, nbytes};
  c.blocks.insert(std::upper_bound(c.blocks.begin(), c.blocks.end(), nb,
                                   [](const TcmBlock& a, const TcmBlock& b) { return a.off < b.off; }), nb);
  return c.tcm + at;
}
void tcm_free(void* ptr) {
  if (!ptr) return;
  Call& c = call();
  for (size_t i = 0; i < c.blocks.size(); ++i)
    if (c.tcm + c.blocks[i].off == ptr) {
      c.blocks.erase(c.blocks.begin() + i);
      return;
    }
  fail_at("tcm_free() of a pointer tcm_malloc() did not return (or freed twice)");
}
}  // namespace neuron

namespace neuron_emu {
// ---- tensors made by the kernel ----
namespace {
TensorImpl* new_tensor(IntArrayRef size, ScalarType dtype, const char* fn, bool zero) {
  Call& c = call();
  if (esize_of(dtype) == 0 || dtype == ScalarType::Long || dtype == ScalarType::Double)
    fail_at(std::string(fn) + ": dtype " + dtype_name(dtype) +
            " is not a device dtype (kFloat, kBFloat16, kHalf, kInt, kChar, kShort, kByte)");
  if (size.size() > static_cast<size_t>(kMaxDims))
    fail_at(std::string(fn) + ": " + std::to_string(size.size()) + " dims exceed the GpSimd limit of 8");
  std::unique_ptr<TensorImpl> t(new TensorImpl());
  t->ndim = static_cast<int32_t>(size.size());
  t->numel = 1;
  for (int d = t->ndim - 1; d >= 0; --d) {
    if (size[d] < 0 || size[d] > 65535)
      fail_at(std::string(fn) + ": size " + std::to_string(size[d]) + " of dim " + std::to_string(d) +
              " is outside the GpSimd limit [0, 65535]");
    t->sizes[d] = size[d];
    t->strides[d] = t->numel;
    t->numel *= size[d];
  }
  t->dtype = dtype;
  t->role = c.shape_only ? kShapeOnly : kLocal;
  t->index = static_cast<int32_t>(c.locals.size());
  t->shared = false;
  t->policy = CoherencyEnforcer::Policy::COHERENT;
  t->data = nullptr;
  if (!c.shape_only) {
    const size_t n = static_cast<size_t>(t->numel) * esize_of(dtype);
    t->data = t_buffers.get(n + 1, zero);  // returned to the cache when the call ends
    if (!t->data) fail_at(std::string(fn) + ": out of memory for " + std::to_string(n) + " bytes");
    c.c.lib_elems += t->numel;
  }
  c.locals.push_back(std::move(t));
  return c.locals.back().get();
}

double load(const TensorImpl* t, int64_t i) {
  const char* p = static_cast<const char*>(t->data);
  switch (t->dtype) {
    case ScalarType::Byte: return reinterpret_cast<const uint8_t*>(p)[i];
    case ScalarType::Char: return reinterpret_cast<const int8_t*>(p)[i];
    case ScalarType::Short: return reinterpret_cast<const int16_t*>(p)[i];
    case ScalarType::Int: return reinterpret_cast<const int32_t*>(p)[i];
    case ScalarType::Float: return reinterpret_cast<const float*>(p)[i];
    case ScalarType::Half: return float(reinterpret_cast<const Half*>(p)[i]);
    case ScalarType::BFloat16: return float(reinterpret_cast<const BFloat16*>(p)[i]);
    default: return 0;
  }
}
void store(TensorImpl* t, int64_t i, double v) {
  char* p = static_cast<char*>(t->data);
  switch (t->dtype) {
    case ScalarType::Byte: reinterpret_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(static_cast<int64_t>(v)); break;
    case ScalarType::Char: reinterpret_cast<int8_t*>(p)[i] = static_cast<int8_t>(static_cast<int64_t>(v)); break;
    case ScalarType::Short: reinterpret_cast<int16_t*>(p)[i] = static_cast<int16_t>(static_cast<int64_t>(v)); break;
    case ScalarType::Int: reinterpret_cast<int32_t*>(p)[i] = static_cast<int32_t>(static_cast<int64_t>(v)); break;
    case ScalarType::Float: reinterpret_cast<float*>(p)[i] = static_cast<float>(v); break;
    case ScalarType::Half: reinterpret_cast<Half*>(p)[i] = Half(static_cast<float>(v)); break;
    case ScalarType::BFloat16: reinterpret_cast<BFloat16*>(p)[i] = BFloat16(static_cast<float>(v)); break;
    default: break;
  }
}
bool integral(ScalarType t) { return t != ScalarType::Float && t != ScalarType::Half && t != ScalarType::BFloat16; }

void same_shape(const char* fn, const TensorImpl* a, const TensorImpl* b) {
  bool same = a->ndim == b->ndim;
  for (int d = 0; same && d < a->ndim; ++d) same = a->sizes[d] == b->sizes[d];
  if (!same)
    fail_at(std::string(fn) + ": shapes " + shape_str(a) + " and " + shape_str(b) +
            " differ (device ops do not broadcast)");
}

// result[i] = f(a[i], b[i]) (b may be null: unary).
template <typename F>
Tensor& elementwise(const char* fn, Tensor& result, const Tensor& a, const Tensor* b, F f, bool bitwise = false) {
  TensorImpl* r = result.unsafeGetTensorImpl();
  const TensorImpl* x = a.unsafeGetTensorImpl();
  const TensorImpl* y = b ? b->unsafeGetTensorImpl() : nullptr;
  if (!r || !x || (b && !y)) fail_at(std::string(fn) + ": undefined tensor argument");
  same_shape(fn, r, x);
  if (y) same_shape(fn, r, y);
  if (bitwise && (!integral(x->dtype) || (y && !integral(y->dtype))))
    fail_at(std::string(fn) + ": bitwise ops need integral tensors, got " + dtype_name(x->dtype));
  data_for(const_cast<TensorImpl*>(x), false, "t");
  if (y) data_for(const_cast<TensorImpl*>(y), false, "t");
  data_for(r, true, "t");
  for (int64_t i = 0; i < r->numel; ++i) store(r, i, f(load(x, i), y ? load(y, i) : 0.0));
  call().c.lib_elems += r->numel;
  return result;
}
Tensor like(const Tensor& a, const char* fn) {
  const TensorImpl* x = a.unsafeGetTensorImpl();
  if (!x) fail_at(std::string(fn) + ": undefined tensor argument");
  return Tensor(new_tensor(a.sizes(), x->dtype, fn, false));
}
int64_t as_int(double v) { return static_cast<int64_t>(v); }
}  // namespace

// ---- Half / BFloat16 ----
}  // namespace neuron_emu

Half::Half(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t au = u & 0x7fffffffu;
  if (au > 0x7f800000u) { x = static_cast<uint16_t>(sign | 0x7e00u); return; }
  if (au >= 0x477ff000u) { x = static_cast<uint16_t>(sign | 0x7c00u); return; }  // overflow to inf
  if (au < 0x38800000u) {  // subnormal half: round the value scaled by 2^24
    float a;
    memcpy(&a, &au, 4);
    x = static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(a * 16777216.0f)));
    return;
  }
  const uint32_t r = au + 0xfffu + ((au >> 13) & 1u) - (112u << 23);
  x = static_cast<uint16_t>(sign | (r >> 13));
}
Half::operator float() const {
  const uint32_t sign = (x & 0x8000u) << 16, e = (x >> 10) & 0x1f, m = x & 0x3ff;
  float f;
  if (e == 0) {
    f = std::ldexp(static_cast<float>(m), -24);
    return sign ? -f : f;
  }
  const uint32_t u = sign | (e == 31 ? 0x7f800000u | (m << 13) : ((e + 112) << 23) | (m << 13));
  memcpy(&f, &u, 4);
  return f;
}
BFloat16::BFloat16(float f) : x(neuron_emu::bf16_bits(f)) {}
BFloat16::operator float() const {
  const uint32_t u = static_cast<uint32_t>(x) << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

// ---- factories and elementwise ops (neuron-api.md 4.3) ----
using neuron_emu::new_tensor;
using neuron_emu::elementwise;
using neuron_emu::like;
Tensor empty(IntArrayRef size, TensorOptions o) { return Tensor(new_tensor(size, o.dtype(), "torch::empty", false)); }
Tensor zeros(IntArrayRef size, TensorOptions o) { return Tensor(new_tensor(size, o.dtype(), "torch::zeros", true)); }
Tensor full(IntArrayRef size, Scalar v, TensorOptions o) {
  Tensor t(new_tensor(size, o.dtype(), "torch::full", false));
  if (t.unsafeGetTensorImpl()->data) t.fill_(v);
  return t;
}
Tensor ones(IntArrayRef size, TensorOptions o) { return full(size, 1, o); }
Tensor eye(int64_t n, int64_t m, TensorOptions o) {
  const int64_t dims[2] = {n, m};
  Tensor t(new_tensor(IntArrayRef(dims, 2), o.dtype(), "torch::eye", true));
  neuron_emu::TensorImpl* x = t.unsafeGetTensorImpl();
  if (x->data)
    for (int64_t i = 0; i < std::min(n, m); ++i) neuron_emu::store(x, i * m + i, 1.0);
  return t;
}
Tensor eye(int64_t n, TensorOptions o) { return eye(n, n, o); }

const Tensor& Tensor::fill_(Scalar value) const {
  neuron_emu::TensorImpl* t = impl();
  neuron_emu::data_for(t, true, "t");
  for (int64_t i = 0; i < t->numel; ++i) neuron_emu::store(t, i, value.toDouble());
  neuron_emu::call().c.lib_elems += t->numel;
  return *this;
}

#define NEMU_UNARY_IMPL(name, expr, bitwise)                                                              \
  Tensor& name##_out(Tensor& result, const Tensor& self) {                                              \
    return elementwise("torch::" #name "_out", result, self, nullptr, [](double a, double) { return expr; }, \
                       bitwise);                                                                         \
  }                                                                                                      \
  Tensor name(const Tensor& self) {                                                                      \
    Tensor r = like(self, "torch::" #name);                                                              \
    return name##_out(r, self);                                                                          \
  }
NEMU_UNARY_IMPL(abs, std::fabs(a), false)
NEMU_UNARY_IMPL(ceil, std::ceil(a), false)
NEMU_UNARY_IMPL(floor, std::floor(a), false)
NEMU_UNARY_IMPL(sin, static_cast<double>(std::sin(static_cast<float>(a))), false)
NEMU_UNARY_IMPL(cos, static_cast<double>(std::cos(static_cast<float>(a))), false)
NEMU_UNARY_IMPL(tan, static_cast<double>(std::tan(static_cast<float>(a))), false)
NEMU_UNARY_IMPL(log, static_cast<double>(std::log(static_cast<float>(a))), false)
NEMU_UNARY_IMPL(log2, static_cast<double>(std::log2(static_cast<float>(a))), false)
NEMU_UNARY_IMPL(log10, static_cast<double>(std::log10(static_cast<float>(a))), false)
NEMU_UNARY_IMPL(exp, static_cast<double>(std::exp(static_cast<float>(a))), false)
NEMU_UNARY_IMPL(bitwise_not, static_cast<double>(~neuron_emu::as_int(a)), true)
#undef NEMU_UNARY_IMPL

#define NEMU_BINARY_IMPL(name, expr, bitwise)                                                                  \
  Tensor& name##_out(Tensor& result, const Tensor& self, const Tensor& other) {                              \
    return elementwise("torch::" #name "_out", result, self, &other, [](double a, double b) { return expr; }, \
                       bitwise);                                                                              \
  }                                                                                                           \
  Tensor& name##_out(Tensor& result, const Tensor& self, Scalar other) {                                     \
    const double b = other.toDouble();                                                                        \
    return elementwise("torch::" #name "_out", result, self, nullptr, [b](double a, double) { return expr; }, \
                       bitwise);                                                                              \
  }                                                                                                           \
  Tensor name(const Tensor& self, const Tensor& other) {                                                     \
    Tensor r = like(self, "torch::" #name);                                                                   \
    return name##_out(r, self, other);                                                                        \
  }                                                                                                           \
  Tensor name(const Tensor& self, Scalar other) {                                                            \
    Tensor r = like(self, "torch::" #name);                                                                   \
    return name##_out(r, self, other);                                                                        \
  }
NEMU_BINARY_IMPL(mul, a * b, false)
NEMU_BINARY_IMPL(div, a / b, false)
NEMU_BINARY_IMPL(pow, static_cast<double>(std::pow(static_cast<float>(a), static_cast<float>(b))), false)
NEMU_BINARY_IMPL(bitwise_and, static_cast<double>(neuron_emu::as_int(a) & neuron_emu::as_int(b)), true)
NEMU_BINARY_IMPL(bitwise_or, static_cast<double>(neuron_emu::as_int(a) | neuron_emu::as_int(b)), true)
#undef NEMU_BINARY_IMPL

Tensor& pow_out(Tensor& result, Scalar self, const Tensor& exponent) {
  const double s = self.toDouble();
  return elementwise("torch::pow_out", result, exponent, nullptr, [s](double e, double) {
    return static_cast<double>(std::pow(static_cast<float>(s), static_cast<float>(e)));
  });
}
Tensor pow(Scalar self, const Tensor& exponent) {
  Tensor r = like(exponent, "torch::pow");
  return pow_out(r, self, exponent);
}
Tensor& add_out(Tensor& result, const Tensor& self, const Tensor& other, Scalar alpha) {
  const double al = alpha.toDouble();
  return elementwise("torch::add_out", result, self, &other, [al](double a, double b) { return a + al * b; });
}
Tensor& add_out(Tensor& result, const Tensor& self, Scalar other, Scalar alpha) {
  const double b = other.toDouble() * alpha.toDouble();
  return elementwise("torch::add_out", result, self, nullptr, [b](double a, double) { return a + b; });
}
Tensor add(const Tensor& self, const Tensor& other, Scalar alpha) {
  Tensor r = like(self, "torch::add");
  return add_out(r, self, other, alpha);
}
Tensor add(const Tensor& self, Scalar other, Scalar alpha) {
  Tensor r = like(self, "torch::add");
  return add_out(r, self, other, alpha);
}
Tensor& sub_out(Tensor& result, const Tensor& self, const Tensor& other, Scalar alpha) {
  const double al = alpha.toDouble();
  return elementwise("torch::sub_out", result, self, &other, [al](double a, double b) { return a - al * b; });
}
Tensor& sub_out(Tensor& result, const Tensor& self, Scalar other, Scalar alpha) {
  const double b = other.toDouble() * alpha.toDouble();
  return elementwise("torch::sub_out", result, self, nullptr, [b](double a, double) { return a - b; });
}
Tensor sub(const Tensor& self, const Tensor& other, Scalar alpha) {
  Tensor r = like(self, "torch::sub");
  return sub_out(r, self, other, alpha);
}
Tensor sub(const Tensor& self, Scalar other, Scalar alpha) {
  Tensor r = like(self, "torch::sub");
  return sub_out(r, self, other, alpha);
}
Tensor& clamp_out(Tensor& result, const Tensor& self, Scalar min, Scalar max) {
  const double lo = min.toDouble(), hi = max.toDouble();
  return elementwise("torch::clamp_out", result, self, nullptr,
                     [lo, hi](double a, double) { return a < lo ? lo : (a > hi ? hi : a); });
}
Tensor clamp(const Tensor& self, Scalar min, Scalar max) {
  Tensor r = like(self, "torch::clamp");
  return clamp_out(r, self, min, max);
}

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

uint32_t get_cpu_id() { return torch::neuron_emu::t_call ? torch::neuron_emu::t_call->core : 0; }
uint32_t get_cpu_count() { return torch::neuron_emu::t_call ? torch::neuron_emu::t_call->cores : 1; }

torch::Tensor get_dst_tensor() {
  using namespace torch::neuron_emu;
  Call& c = call();
  if (c.shape_only || !c.dst) fail_at("get_dst_tensor() called outside the op's kernel (e.g. in a shape function)");
  return torch::Tensor(c.dst);
}

extern "C" int nemu_device_printf(const char* fmt, ...) {
  using namespace torch::neuron_emu;
  va_list ap;
  va_start(ap, fmt);
  Call* c = t_call;
  int n;
  if (!c || c->shape_only) {
    n = vprintf(fmt, ap);  // host side (shape functions)
  } else {
    char buf[1024];
    n = vsnprintf(buf, sizeof buf, fmt, ap);
    if (c->core == 0 && !c->dry && c->out_cap > 0) {  // single-core or core 0 only (neuron-api.md 4.6)
      c->out.append(buf, std::min<size_t>(n < 0 ? 0 : static_cast<size_t>(n), sizeof buf - 1));
      if (c->out.size() > c->out_cap) c->out.erase(0, c->out.size() - c->out_cap);  // overflow drops the oldest
    }
  }
  va_end(ap);
  return n;
}

// ======================= entry points for the emulator =======================
namespace {
using namespace torch::neuron_emu;
using torch::Tensor;
using torch::ScalarType;

// ---- crash isolation: a fault in user code longjmps back here, per thread ----
struct Guard {
  sigjmp_buf jb;
  volatile sig_atomic_t active = 0;
};
thread_local Guard t_guard;
struct sigaction g_old[65];
std::once_flag g_handlers_once;
int timer_signal() { return SIGRTMIN + 7; }

void on_signal(int sig, siginfo_t* si, void* uc) {
  if (t_guard.active) {
    t_guard.active = 0;
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

const char* signal_text(int sig) {
  if (sig == SIGSEGV) return "a segmentation fault (SIGSEGV)";
  if (sig == SIGBUS) return "a bus error (SIGBUS)";
  if (sig == SIGFPE) return "an arithmetic fault (SIGFPE)";
  if (sig == SIGILL) return "an illegal instruction (SIGILL)";
  if (sig == SIGABRT) return "abort() (SIGABRT)";
  return "a signal";
}

// ---- one call of op k ----
struct Decoded {
  std::vector<TensorImpl> tensors;  // inputs..., output
  std::vector<Arg> args;
};

void decode_dims(const int64_t* ip, TensorImpl& t) {
  t.ndim = static_cast<int32_t>(ip[0]);
  if (t.ndim < 0 || t.ndim > kMaxDims) throw DeviceError{"corrupt instruction: tensor rank " + std::to_string(t.ndim)};
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
    t.dtype = ScalarType::Float;
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
  TensorImpl& dst = dec.tensors[nt];
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
      Tensor r = op.k->invoke(op.k->fn, dec.args.data());
      TensorImpl* ri = r.unsafeGetTensorImpl();
      if (ri != &dst) {
        if (cores > 1)
          fail_at("a multicore kernel must write and return get_dst_tensor() (neuron-api.md 4.4)");
        if (!ri) fail_at("the kernel returned an undefined tensor");
        bool same = ri->ndim == dst.ndim;
        for (int d = 0; same && d < dst.ndim; ++d) same = ri->sizes[d] == dst.sizes[d];
        if (!same)
          fail_at("the kernel returned a tensor of shape " + shape_str(ri) + ", the shape function says " +
                  shape_str(&dst));
        if (ri->dtype == ScalarType::Float)
          memcpy(dst.data, ri->data, static_cast<size_t>(dst.numel) * sizeof(float));
        else
          for (int64_t i = 0; i < dst.numel; ++i) static_cast<float*>(dst.data)[i] = static_cast<float>(load(ri, i));
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
  flush_printf(printed);
}

int report(const DeviceError& e, char* err, int64_t errlen) {
  snprintf(err, static_cast<size_t>(errlen), "%s", e.msg.c_str());
  return 1;
}

// Cost from what the kernel did, measured by a dry run on zero inputs (memoised per instruction): start-up,
// then the slowest core. Element accesses through accessor<> are HBM round trips; TCM transfers pay a setup and
// move bytes; the core then computes on what it brought into TCM.
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
    auto cyc = [](const Counters& c) {
      return c.hbm * NEMU_HBM_ACCESS_CYCLES + c.tcm_calls * NEMU_TCM_SETUP_CYCLES +
             c.tcm_elems * 4.0 / NEMU_TCM_BYTES_PER_CYCLE + c.tcm_in * NEMU_COMPUTE_CYCLES_PER_ELEM +
             c.stream * (4.0 / NEMU_TCM_BYTES_PER_CYCLE + NEMU_COMPUTE_CYCLES_PER_ELEM) +
             static_cast<double>(c.lib_elems) / NEMU_GPSIMD_LANES;
    };
    for (const Counters& c : per)
      if (cyc(c) >= cyc(worst)) worst = c;
    std::lock_guard<std::mutex> lk(g_cost_mu);
    g_cost_memo[key] = worst;
  }
  out.cycles += worst.hbm * NEMU_HBM_ACCESS_CYCLES + worst.tcm_calls * NEMU_TCM_SETUP_CYCLES +
                worst.tcm_elems * 4.0 / NEMU_TCM_BYTES_PER_CYCLE + worst.tcm_in * NEMU_COMPUTE_CYCLES_PER_ELEM +
                worst.stream * (4.0 / NEMU_TCM_BYTES_PER_CYCLE + NEMU_COMPUTE_CYCLES_PER_ELEM) +
                static_cast<double>(worst.lib_elems) / NEMU_GPSIMD_LANES;
  total_bytes = (worst.hbm + worst.tcm_elems + worst.stream) * 4;
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
int nemu_customop_describe(char* buf, int64_t len) {
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
int nemu_customop_init(int multicore, double timeout_s, char* err, int64_t errlen) {
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

void nemu_customop_set_timeout(double s) { lib().timeout_s = s; }

// Runs op k's shape function on shape-only tensors. desc: 3 ints per tensor argument (rank, dims packed
// 16 bits each) then the int arguments; reals: the double/Scalar arguments. out: rank, dims[8], dtype.
int nemu_customop_shape(int k, const int64_t* ints, const double* reals, int64_t* out, char* err, int64_t errlen) {
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
  int nemu_customop_check_##k(const nemu_instr* in, const int64_t* numel, char* err, int64_t errlen) {       \
    return check_of(k, in, numel, err, errlen);                                                               \
  }                                                                                                           \
  nemu_cost nemu_customop_cost_##k(const nemu_instr* in, const nemu_core* core) { return cost_of(k, in, core); } \
  int nemu_customop_exec_##k(const nemu_instr* in, float* const* op, const int64_t* numel, char* err,        \
                             int64_t errlen) {                                                                \
    return exec_of(k, in, op, numel, err, errlen);                                                            \
  }
NEMU_OP_ENTRIES(0) NEMU_OP_ENTRIES(1) NEMU_OP_ENTRIES(2) NEMU_OP_ENTRIES(3) NEMU_OP_ENTRIES(4)
NEMU_OP_ENTRIES(5) NEMU_OP_ENTRIES(6) NEMU_OP_ENTRIES(7) NEMU_OP_ENTRIES(8) NEMU_OP_ENTRIES(9)
#undef NEMU_OP_ENTRIES

}  // extern "C"
