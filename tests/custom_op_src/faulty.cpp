// Kernels with the bugs the emulator must catch (tests/test_custom_op_checks.py).
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <torch/torch.h>

// reads one row past the end
torch::Tensor oob_read(const torch::Tensor& t_in) {
  torch::Tensor t_out = torch::zeros(t_in.sizes(), torch::kFloat);
  auto in = t_in.accessor<float, 2>();
  auto out = t_out.accessor<float, 2>();
  for (int i = 0; i <= t_in.size(0); i++)
    for (int j = 0; j < t_in.size(1); j++) out[i % t_in.size(0)][j] = in[i][j];
  return t_out;
}

// writes one column past the end of the output
torch::Tensor oob_write(const torch::Tensor& t_in) {
  torch::Tensor t_out = get_dst_tensor();
  auto out = t_out.accessor<float, 2>();
  for (int i = 0; i < t_in.size(0); i++)
    for (int j = 0; j <= t_in.size(1); j++) out[i][j] = 1.0f;
  return t_out;
}

// writes through a raw pointer nowhere: a segfault in user code
torch::Tensor segv(const torch::Tensor& t_in) {
  volatile float* p = (volatile float*)(uintptr_t)16;
  *p = 1.0f;
  return get_dst_tensor();
}

torch::Tensor aborts(const torch::Tensor& t_in) {
  if (t_in.numel() > 0) abort();
  return get_dst_tensor();
}

torch::Tensor spins(const torch::Tensor& t_in) {
  volatile uint64_t i = 0;
  while (t_in.numel() > 0) i = i + 1;
  return get_dst_tensor();
}

// copies through TCM past the end of its 256-byte tcm_malloc block
torch::Tensor tcm_overflow(const torch::Tensor& t_in) {
  torch::Tensor t_out = get_dst_tensor();
  float* buf = (float*)torch::neuron::tcm_malloc(256);
  auto in = t_in.tcm_accessor();
  in.tensor_to_tcm<float>(buf, 0, t_in.numel());
  torch::neuron::tcm_free(buf);
  return t_out;
}

// writes its input (inputs are never modified: the write lands in a private copy), prints, returns 2*x
torch::Tensor scribble(const torch::Tensor& t_in) {
  torch::Tensor t = t_in;
  auto a = t.accessor<float, 1>();
  torch::Tensor t_out = torch::empty(t_in.sizes(), torch::kFloat);
  auto out = t_out.accessor<float, 1>();
  for (int i = 0; i < t_in.size(0); i++) {
    out[i] = 2 * a[i];
    a[i] = -1.0f;
  }
  printf("scribbled %d elements\n", (int)t_in.size(0));
  return t_out;
}

// (x + alpha) * scale with library ops and scalar arguments
torch::Tensor affine(const torch::Tensor& t_in, double alpha, int64_t scale) {
  torch::Tensor s = torch::add(t_in, alpha);
  return torch::mul(s, torch::Scalar(scale));
}
