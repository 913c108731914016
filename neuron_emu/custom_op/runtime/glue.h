// The table the builder generates for a library (nemu_glue.cpp): every global function of the compute
// sources whose parameters are op-argument types, with a caller instantiated for its exact signature (a
// kernel may take `const Tensor&` where its shape function takes `Tensor`: the calling conventions differ).
#pragma once
#include <torch/torch.h>

namespace torch {
namespace neuron_emu {

struct KernelEntry {
  const char* name;
  const char* signature;
  void* fn;
  InvokeFn invoke;
  int n_args;
};

template <typename... Args>
KernelEntry make_kernel(const char* name, const char* signature, Tensor (*fn)(Args...)) {
  return KernelEntry{name, signature, reinterpret_cast<void*>(fn), &Invoker<Args...>::call,
                     static_cast<int>(sizeof...(Args))};
}

}  // namespace neuron_emu
}  // namespace torch

extern "C" const torch::neuron_emu::KernelEntry* nemu_customop_kernels(int* n);
// The kernel stack in bytes: -DSTACK_SIZE of the library's build, else the default (build.py writes it).
extern "C" const long nemu_customop_stack_size;
namespace torch {
namespace neuron_emu {
constexpr long kDefaultStackSize = 8192;  // "declare stack > ~8 KB" (neuron-api.md 4.1)
}  // namespace neuron_emu
}  // namespace torch
