// ReLU with element accessors (the first, slowest version of neuron-api.md 4.7).
#include <stdint.h>
#include <stdlib.h>
#include <torch/torch.h>

torch::Tensor relu_forward(const torch::Tensor& t_in) {
  torch::Tensor t_out = torch::zeros(t_in.sizes(), torch::kFloat);
  auto in = t_in.accessor<float, 2>();
  auto out = t_out.accessor<float, 2>();
  auto shape = t_in.sizes();
  for (int i = 0; i < shape[0]; i++) {
    for (int j = 0; j < shape[1]; j++) {
      out[i][j] = in[i][j] > 0.0 ? in[i][j] : 0.0;
    }
  }
  return t_out;
}

torch::Tensor relu_backward(const torch::Tensor& t_grad, const torch::Tensor& t_in) {
  torch::Tensor t_out = torch::zeros(t_in.sizes(), torch::kFloat);
  auto in = t_in.accessor<float, 2>();
  auto grad = t_grad.accessor<float, 2>();
  auto out = t_out.accessor<float, 2>();
  auto shape = t_in.sizes();
  for (int i = 0; i < shape[0]; i++) {
    for (int j = 0; j < shape[1]; j++) {
      out[i][j] = in[i][j] > 0.0 ? grad[i][j] : 0.0;
    }
  }
  return t_out;
}
