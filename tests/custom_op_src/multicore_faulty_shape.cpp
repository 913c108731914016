#include <torch/torch.h>
#include "torchneuron/register.h"

torch::Tensor same_shape(torch::Tensor t_in) { return torch::zeros(t_in.sizes(), torch::kFloat); }

NEURON_LIBRARY(mc_faulty_ops, m) {
  m.def("overlapping", &same_shape, "overlapping");
  m.def("gappy", &same_shape, "gappy");
  m.def("uses_accessor", &same_shape, "uses_accessor");
}
