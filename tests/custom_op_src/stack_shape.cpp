#include <torch/torch.h>
#include "torchneuron/register.h"

torch::Tensor same(torch::Tensor x) { return torch::zeros(x.sizes(), torch::kFloat); }

NEURON_LIBRARY(stack_ops, m) {
  m.def("big_local", &same, "big_local");
  m.def("recurse", &same, "recurse");
  m.def("huge_frame", &same, "huge_frame");
}
