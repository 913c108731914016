// Multicore ReLU as the documentation writes it (neuron-api.md 4.7): every core takes num_elem / cpu_count
// elements and the last one the remainder, but the offset is computed from the *enlarged* partition, so when
// num_elem % cpu_count != 0 the last core starts past its slice (out of bounds, and part of the output is
// never written). Kept as documented: the emulator must flag it.
#include <stdint.h>
#include <stdlib.h>
#include <torch/torch.h>
#include <neuron/neuron-utils.hpp>

torch::Tensor relu_forward(const torch::Tensor& t_in) {
  size_t num_elem = t_in.numel();
  torch::Tensor t_out = get_dst_tensor();

  uint32_t cpu_id = get_cpu_id();
  uint32_t cpu_count = get_cpu_count();
  uint32_t partition = num_elem / cpu_count;
  if (cpu_id == cpu_count - 1) {
    partition = num_elem - partition * (cpu_count - 1);
  }

  static constexpr size_t buffer_size = 1024;
  float* tcm_buffer = (float*)torch::neuron::tcm_malloc(sizeof(float) * buffer_size);
  if (tcm_buffer != nullptr) {
    auto in_tcm = t_in.tcm_accessor();
    auto out_tcm = t_out.tcm_accessor();
    for (size_t i = 0; i < partition; i += buffer_size) {
      size_t remaining = partition - i;
      size_t n = remaining > buffer_size ? buffer_size : remaining;
      in_tcm.tensor_to_tcm<float>(tcm_buffer, partition * cpu_id + i, n);
      for (size_t j = 0; j < n; j++) tcm_buffer[j] = tcm_buffer[j] > 0.0 ? tcm_buffer[j] : 0.0;
      out_tcm.tcm_to_tensor<float>(tcm_buffer, partition * cpu_id + i, n);
    }
  }
  torch::neuron::tcm_free(tcm_buffer);
  return t_out;
}
