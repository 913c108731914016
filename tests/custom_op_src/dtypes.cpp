// Kernels over every device dtype (tests/test_custom_op_dtypes.py): one op each, dispatching on the input's
// scalar type to accessors of the matching element type.
#include <torch/torch.h>

template <typename T, typename C>
torch::Tensor sub_as(const torch::Tensor& x, const torch::Tensor& y) {
  torch::Tensor out = get_dst_tensor();
  auto a = x.accessor<T, 2>();
  auto b = y.accessor<T, 2>();
  auto o = out.accessor<T, 2>();
  for (int64_t i = 0; i < x.size(0); i++)
    for (int64_t j = 0; j < x.size(1); j++) o[i][j] = T(C(a[i][j]) - C(b[i][j]));  // one rounding, as torch
  return out;
}

// x - y in the inputs' dtype
torch::Tensor sub(const torch::Tensor& x, const torch::Tensor& y) {
  switch (x.scalar_type()) {
    case torch::kFloat: return sub_as<float, float>(x, y);
    case torch::kBFloat16: return sub_as<torch::BFloat16, float>(x, y);
    case torch::kHalf: return sub_as<torch::Half, float>(x, y);
    case torch::kInt: return sub_as<int32_t, int32_t>(x, y);
    case torch::kShort: return sub_as<int16_t, int32_t>(x, y);
    case torch::kChar: return sub_as<int8_t, int32_t>(x, y);
    case torch::kByte: return sub_as<uint8_t, int32_t>(x, y);
    default: return get_dst_tensor();
  }
}

// floor(x) as int32, through TCM (a float input, an int output)
torch::Tensor floor_int(const torch::Tensor& x) {
  torch::Tensor out = get_dst_tensor();
  float* in = (float*)torch::neuron::tcm_malloc(sizeof(float) * x.numel());
  int32_t* res = (int32_t*)torch::neuron::tcm_malloc(sizeof(int32_t) * x.numel());
  x.tcm_accessor().tensor_to_tcm<float>(in, 0, x.numel());
  for (int64_t i = 0; i < x.numel(); i++) res[i] = (int32_t)floorf(in[i]);
  out.tcm_accessor().tcm_to_tensor<int32_t>(res, 0, x.numel());
  torch::neuron::tcm_free(in);
  torch::neuron::tcm_free(res);
  return out;
}

// x * 3 as int32, returned as a tensor the kernel made (converted into the op's int32 output)
torch::Tensor times3(const torch::Tensor& x) {
  torch::Tensor out = torch::empty(x.sizes(), torch::kInt);
  auto a = x.accessor<int32_t, 1>();
  auto o = out.accessor<int32_t, 1>();
  for (int64_t i = 0; i < x.size(0); i++) o[i] = a[i] * 3;
  return out;
}

// x copied through TCM in its own element size: a bf16 tensor moves half the bytes of an fp32 one
torch::Tensor tcm_copy(const torch::Tensor& x) {
  torch::Tensor out = get_dst_tensor();
  void* buf = torch::neuron::tcm_malloc(4096);
  const size_t per = 4096 / x.element_size();
  for (int64_t i = 0; i < x.numel(); i += per) {
    const size_t n = x.numel() - i < (int64_t)per ? x.numel() - i : per;
    if (x.element_size() == 2) {
      x.tcm_accessor().tensor_to_tcm<uint16_t>((uint16_t*)buf, i, n);
      out.tcm_accessor().tcm_to_tensor<uint16_t>((uint16_t*)buf, i, n);
    } else {
      x.tcm_accessor().tensor_to_tcm<float>((float*)buf, i, n);
      out.tcm_accessor().tcm_to_tensor<float>((float*)buf, i, n);
    }
  }
  torch::neuron::tcm_free(buf);
  return out;
}
