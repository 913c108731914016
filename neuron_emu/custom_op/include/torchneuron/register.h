// Host-side registration of a custom-op library (neuron-api.md 4.2):
//   NEURON_LIBRARY(my_ops, m) { m.def("relu_forward", &relu_fwd_shape, "relu_forward"); }
// m.def(op name, shape function, name of the kernel function in the compute sources). The shape function's
// parameter types become the op's schema; only torch::Tensor, torch::Scalar, double and int64_t are allowed.
#pragma once
#include <torch/torch.h>

namespace torch {
namespace neuron_emu {

template <typename A> struct ArgKind {
  static_assert(sizeof(A) == 0,
                "NEURON_LIBRARY: custom op arguments must be torch::Tensor, torch::Scalar, double or int64_t");
};
template <> struct ArgKind<Tensor> { static constexpr int value = kArgTensor; };
template <> struct ArgKind<double> { static constexpr int value = kArgDouble; };
template <> struct ArgKind<int64_t> { static constexpr int value = kArgInt; };
template <> struct ArgKind<Scalar> { static constexpr int value = kArgScalar; };

class Library {
 public:
  template <typename... Args>
  Library& def(const char* name, Tensor (*shape_fn)(Args...), const char* kernel_name) {
    static const int kinds[] = {ArgKind<typename std::decay<Args>::type>::value..., -1};
    add(name, reinterpret_cast<void*>(shape_fn), &Invoker<Args...>::call, kinds,
        static_cast<int>(sizeof...(Args)), kernel_name);
    return *this;
  }
  // implemented by the emulator's harness
  void add(const char* name, void* shape_fn, InvokeFn invoke, const int* kinds, int n_args, const char* kernel);
};

struct LibraryRegistrar {
  LibraryRegistrar(const char* ns, void (*body)(Library&), const char* file, int line);
};

}  // namespace neuron_emu
}  // namespace torch

#define NEURON_LIBRARY(ns, m)                                                                                  \
  static void nemu_neuron_library_body_##ns(::torch::neuron_emu::Library&);                                   \
  static const ::torch::neuron_emu::LibraryRegistrar nemu_neuron_library_registrar_##ns(                       \
      #ns, &nemu_neuron_library_body_##ns, __FILE__, __LINE__);                                                \
  static void nemu_neuron_library_body_##ns(::torch::neuron_emu::Library& m)
