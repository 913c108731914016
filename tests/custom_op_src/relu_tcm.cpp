// ReLU staged through a 1024-float TCM buffer (the second version of neuron-api.md 4.7).
#include <stdint.h>
#include <stdlib.h>
#include <torch/torch.h>

torch::Tensor relu_forward(const torch::Tensor& t_in) {
  size_t num_elem = t_in.numel();
  torch::Tensor t_out = torch::zeros(t_in.sizes(), torch::kFloat);

  static constexpr size_t buffer_size = 1024;
  float* tcm_buffer = (float*)torch::neuron::tcm_malloc(sizeof(float) * buffer_size);
  if (tcm_buffer != nullptr) {
    auto in_tcm = t_in.tcm_accessor();
    auto out_tcm = t_out.tcm_accessor();
    for (size_t i = 0; i < num_elem; i += buffer_size) {
      size_t remaining = num_elem - i;
      size_t n = remaining > buffer_size ? buffer_size : remaining;
      in_tcm.tensor_to_tcm<float>(tcm_buffer, i, n);
      for (size_t j = 0; j < n; j++) tcm_buffer[j] = tcm_buffer[j] > 0.0 ? tcm_buffer[j] : 0.0;
      out_tcm.tcm_to_tensor<float>(tcm_buffer, i, n);
    }
  }
  torch::neuron::tcm_free(tcm_buffer);
  return t_out;
}

torch::Tensor relu_backward(const torch::Tensor& t_grad, const torch::Tensor& t_in) {
  size_t num_elem = t_in.numel();
  torch::Tensor t_out = torch::zeros(t_in.sizes(), torch::kFloat);

  static constexpr size_t buffer_size = 1024;
  float* in_buf = (float*)torch::neuron::tcm_malloc(sizeof(float) * buffer_size);
  float* grad_buf = (float*)torch::neuron::tcm_malloc(sizeof(float) * buffer_size);
  if (in_buf != nullptr && grad_buf != nullptr) {
    auto in_tcm = t_in.tcm_accessor();
    auto grad_tcm = t_grad.tcm_accessor();
    auto out_tcm = t_out.tcm_accessor();
    for (size_t i = 0; i < num_elem; i += buffer_size) {
      size_t remaining = num_elem - i;
      size_t n = remaining > buffer_size ? buffer_size : remaining;
      in_tcm.tensor_to_tcm<float>(in_buf, i, n);
      grad_tcm.tensor_to_tcm<float>(grad_buf, i, n);
      for (size_t j = 0; j < n; j++) grad_buf[j] = in_buf[j] > 0.0 ? grad_buf[j] : 0.0;
      out_tcm.tcm_to_tensor<float>(grad_buf, i, n);
    }
  }
  torch::neuron::tcm_free(in_buf);
  torch::neuron::tcm_free(grad_buf);
  return t_out;
}
