#include "torch_stable_abi.h"

#include <dlfcn.h>

#include <cstring>
#include <stdexcept>

namespace nemu {

namespace {

template <class F>
bool resolve(void* lib, const char* name, F& fn) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  return fn != nullptr;
}

}  // namespace

const TorchAbi& torch_abi() {
  static const TorchAbi s = [] {
    TorchAbi r{};
    void* h = dlopen("libtorch_cpu.so", RTLD_LAZY | RTLD_NOLOAD);  // only a libtorch torch already loaded
    if (!h) return r;
    int32_t (*cpu)() = nullptr;
    r.lib = h;
    r.ok = resolve(h, "aoti_torch_library_init_impl", r.library_init_impl) &&
           resolve(h, "torch_library_impl", r.library_impl) && resolve(h, "torch_call_dispatcher", r.call_dispatcher) &&
           resolve(h, "torch_exception_get_what_without_backtrace", r.exception_what) &&
           resolve(h, "torch_list_size", r.list_size) && resolve(h, "torch_list_get_item", r.list_get) &&
           resolve(h, "torch_new_list_reserve_size", r.list_new) && resolve(h, "torch_list_push_back", r.list_push) &&
           resolve(h, "torch_delete_list", r.list_delete) && resolve(h, "aoti_torch_delete_tensor_object", r.tensor_delete) &&
           resolve(h, "aoti_torch_new_tensor_handle", r.new_handle) &&
           resolve(h, "aoti_torch_get_data_ptr", r.data_ptr) && resolve(h, "aoti_torch_get_dim", r.dim) &&
           resolve(h, "aoti_torch_get_sizes", r.sizes) && resolve(h, "aoti_torch_get_dtype", r.dtype) &&
           resolve(h, "aoti_torch_get_device_type", r.device_type) && resolve(h, "aoti_torch_get_numel", r.numel) &&
           resolve(h, "aoti_torch_is_contiguous", r.is_contiguous) &&
           resolve(h, "aoti_torch_empty_strided", r.empty_strided) &&
           resolve(h, "aoti_torch_grad_mode_is_enabled", r.grad_enabled) && resolve(h, "aoti_torch_device_type_cpu", cpu);
    if (r.ok) r.cpu = cpu();
    return r;
  }();
  return s;
}

int32_t torch_dtype_code(const std::string& name) {
  int32_t (*fn)() = nullptr;
  if (!torch_abi().lib || !resolve(torch_abi().lib, ("aoti_torch_dtype_" + name).c_str(), fn))
    throw std::invalid_argument("forward op: torch's stable ABI has no dtype '" + name + "'");
  return fn();
}

bool tensor_requires_grad(TorchTensor t, uint64_t version) {
  const TorchAbi& s = torch_abi();
  TorchTensor h = nullptr;
  if (s.new_handle(t, &h)) return true;
  StableIValue st[1] = {static_cast<StableIValue>(reinterpret_cast<uintptr_t>(h))};
  // each call takes ownership of the handle on the stack and leaves its result there
  if (s.call_dispatcher("aten::alias", "", st, version)) return true;
  if (s.call_dispatcher("aten::is_leaf", "", st, version)) return true;
  bool leaf = false;
  std::memcpy(&leaf, &st[0], sizeof(bool));  // a bool StableIValue: its first byte (stableivalue_conversions.h)
  return !leaf;
}

}  // namespace nemu
