// torch's stable C ABI (torch/csrc/stable/c/shim.h, torch/csrc/inductor/aoti_torch/c/shim.h; torch >= 2.10),
// resolved at run time from the libtorch_cpu.so torch already loaded (dlopen RTLD_NOLOAD + dlsym): this extension
// is not built against libtorch, as native_gemm.cpp takes MKL from the same library. The declarations are plain C
// types, stable across torch releases by design. Used by the native forward op (forward_op.h).
#pragma once
#include <cstdint>
#include <cstddef>
#include <string>

namespace nemu {

using TorchErr = int32_t;    // AOTITorchError: 0 = success
using TorchTensor = void*;   // AtenTensorHandle: an owning handle to an at::Tensor
using TorchList = void*;     // StableListHandle
using StableIValue = uint64_t;  // a handle's pointer bits, or a scalar
using TorchBoxedFn = void (*)(StableIValue*, uint64_t, uint64_t);

struct TorchAbi {
  TorchErr (*library_init_impl)(const char*, const char*, const char*, uint32_t, void**);
  TorchErr (*library_impl)(void*, const char*, TorchBoxedFn, uint64_t);
  TorchErr (*call_dispatcher)(const char*, const char*, StableIValue*, uint64_t);
  const char* (*exception_what)();
  TorchErr (*list_size)(TorchList, size_t*);
  TorchErr (*list_get)(TorchList, size_t, StableIValue*);
  TorchErr (*list_new)(size_t, TorchList*);
  TorchErr (*list_push)(TorchList, StableIValue);
  TorchErr (*list_delete)(TorchList);
  TorchErr (*tensor_delete)(TorchTensor);
  TorchErr (*new_handle)(TorchTensor, TorchTensor*);
  TorchErr (*data_ptr)(TorchTensor, void**);
  TorchErr (*dim)(TorchTensor, int64_t*);
  TorchErr (*sizes)(TorchTensor, int64_t**);
  TorchErr (*dtype)(TorchTensor, int32_t*);
  TorchErr (*device_type)(TorchTensor, int32_t*);
  TorchErr (*numel)(TorchTensor, int64_t*);
  TorchErr (*is_contiguous)(TorchTensor, bool*);
  TorchErr (*empty_strided)(int64_t, const int64_t*, const int64_t*, int32_t, int32_t, int32_t, TorchTensor*);
  bool (*grad_enabled)();
  int32_t cpu = 0;       // the CPU device type
  void* lib = nullptr;
  bool ok = false;       // every entry point above was found
};

// The process's libtorch entry points (ok == false where torch is not loaded or lacks the stable ABI).
const TorchAbi& torch_abi();

// A torch dtype's code by its name without "torch." (e.g. "float32"); throws std::invalid_argument if unknown.
int32_t torch_dtype_code(const std::string& name);

// Whether a tensor requires grad, which the stable ABI has no getter for: under grad mode an alias of it is a view
// with a grad_fn (not a leaf) exactly when it requires grad, so aten::alias then aten::is_leaf through the
// dispatcher (inside a jit.trace the tracer records neither: it runs a traced op with tracing off). Any failure
// answers true. `version`: the extension_build_version given to the stable ABI.
bool tensor_requires_grad(TorchTensor t, uint64_t version);

}  // namespace nemu
