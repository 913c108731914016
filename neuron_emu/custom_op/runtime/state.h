// Internal to the harness: the state of one kernel call (what the device API reads and counts), the
// library's registry, and the error every check raises. Shared by harness.cpp (entry points),
// device_access.cpp (accessors, streams, TCM) and device_ops.cpp (factories, elementwise ops).
#pragma once
#include <torch/torch.h>
#undef printf

#include <stdlib.h>

#include <string>
#include <utility>
#include <vector>

#include "glue.h"
#include <torchneuron/register.h>

#ifndef NEMU_GPSIMD_CORES
#error "built without the hardware parameters (neuron_emu/custom_op/build.py passes them)"
#endif

namespace torch {
namespace neuron_emu {

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
inline LibraryState& lib() {
  static LibraryState s;
  return s;
}

// What one core did during one call: the inputs of the GpSimd cost.
struct Counters {
  int64_t hbm = 0;          // element accesses through accessor<>
  int64_t tcm_calls = 0;    // tensor_to_tcm / tcm_to_tensor calls
  int64_t tcm_elems = 0;    // elements they moved
  int64_t tcm_bytes = 0;    // bytes they moved
  int64_t tcm_in = 0;       // elements brought into TCM (the data the core then computes on)
  int64_t stream = 0;       // elements through stream accessors
  int64_t stream_bytes = 0; // their bytes
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

inline size_t esize_of(ScalarType t);

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
extern thread_local BufferCache t_buffers;  // defined in harness.cpp

inline Call::~Call() {
  for (void* p : owned) free(p);
  for (auto& l : locals)
    if (l->data) t_buffers.put(static_cast<size_t>(l->numel) * esize_of(l->dtype) + 1, l->data);
}
extern thread_local Call* t_call;  // the kernel call this thread is in (harness.cpp)

inline Call& call() {
  if (!t_call) throw DeviceError{"torch device API used outside a custom-op call"};
  return *t_call;
}

inline std::string shape_str(const TensorImpl* t) {
  std::string s = "[";
  for (int d = 0; d < t->ndim; ++d) s += (d ? ", " : "") + std::to_string(t->sizes[d]);
  return s + "]";
}

inline std::string tensor_name(const TensorImpl* t) {
  if (!t) return "tensor";
  switch (t->role) {
    case kInput: return "argument " + std::to_string(t->index) + " (input, shape " + shape_str(t) + ")";
    case kOutput: return "the op's output (get_dst_tensor(), shape " + shape_str(t) + ")";
    case kShapeOnly: return "argument " + std::to_string(t->index) + " of the shape function";
    default: return "tensor #" + std::to_string(t->index) + " created by the kernel (shape " + shape_str(t) + ")";
  }
}

[[noreturn]] inline void fail_at(const std::string& what) {
  Call* c = t_call;
  std::string where = c && !c->shape_only ? " on GpSimd core " + std::to_string(c->core) : "";
  throw DeviceError{std::string(c ? c->op : "custom op") + ": " + what + where};
}

inline size_t esize_of(ScalarType t) {
  switch (t) {
    case ScalarType::Byte: case ScalarType::Char: return 1;
    case ScalarType::Short: case ScalarType::Half: case ScalarType::BFloat16: return 2;
    case ScalarType::Int: case ScalarType::Float: return 4;
    case ScalarType::Long: case ScalarType::Double: return 8;
  }
  return 0;
}

inline const char* dtype_name(ScalarType t) {
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
inline uint16_t bf16_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

// The dtypes an op's tensors may have (neuron-api.md 4.3): what the device headers document.
inline bool device_dtype(ScalarType t) {
  return t == ScalarType::Float || t == ScalarType::BFloat16 || t == ScalarType::Half || t == ScalarType::Int ||
         t == ScalarType::Char || t == ScalarType::Short || t == ScalarType::Byte;
}

// Implemented in device_ops.cpp, used by the entry points.
double load(const TensorImpl* t, int64_t i);
void store(TensorImpl* t, int64_t i, double v);

}  // namespace neuron_emu
}  // namespace torch
