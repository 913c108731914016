// Multicore kernels whose slices overlap or leave a gap.
#include <stdint.h>
#include <torch/torch.h>
#include <neuron/neuron-utils.hpp>

static void copy_slice(const torch::Tensor& t_in, size_t start, size_t n) {
  torch::Tensor t_out = get_dst_tensor();
  float* buf = (float*)torch::neuron::tcm_malloc(sizeof(float) * 1024);
  auto in = t_in.tcm_accessor();
  auto out = t_out.tcm_accessor();
  for (size_t i = 0; i < n; i += 1024) {
    size_t k = n - i > 1024 ? 1024 : n - i;
    in.tensor_to_tcm<float>(buf, start + i, k);
    out.tcm_to_tensor<float>(buf, start + i, k);
  }
  torch::neuron::tcm_free(buf);
}

// every core writes one element more than its share: neighbours overlap
torch::Tensor overlapping(const torch::Tensor& t_in) {
  size_t share = t_in.numel() / get_cpu_count();
  size_t start = share * get_cpu_id();
  copy_slice(t_in, start, get_cpu_id() == get_cpu_count() - 1 ? t_in.numel() - start : share + 1);
  return get_dst_tensor();
}

// the remainder is dropped: numel % cores elements are never written
torch::Tensor gappy(const torch::Tensor& t_in) {
  size_t share = t_in.numel() / get_cpu_count();
  copy_slice(t_in, share * get_cpu_id(), share);
  return get_dst_tensor();
}

// element accessors are single-core only
torch::Tensor uses_accessor(const torch::Tensor& t_in) {
  auto a = t_in.accessor<float, 1>();
  (void)a;
  return get_dst_tensor();
}
