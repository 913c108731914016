#include <torch/torch.h>
#include "torchneuron/register.h"

torch::Tensor same_shape(torch::Tensor t_in) { return torch::zeros(t_in.sizes(), torch::kFloat); }
torch::Tensor affine_shape(torch::Tensor t_in, double alpha, int64_t scale) {
  return torch::zeros(t_in.sizes(), torch::kFloat);
}

NEURON_LIBRARY(faulty_ops, m) {
  m.def("oob_read", &same_shape, "oob_read");
  m.def("oob_write", &same_shape, "oob_write");
  m.def("segv", &same_shape, "segv");
  m.def("aborts", &same_shape, "aborts");
  m.def("spins", &same_shape, "spins");
  m.def("tcm_overflow", &same_shape, "tcm_overflow");
  m.def("scribble", &same_shape, "scribble");
  m.def("affine", &affine_shape, "affine");
}
