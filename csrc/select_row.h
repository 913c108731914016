// One row of the predicated copy Out = Cond != 0 ? A : B, shared by GpSimd's Select (NeuronCore-v2) and VectorE's
// VecSelect (NeuronCore-v1, which has no GpSimd): one kernel, so both instructions give the same results.
#pragma once
#include <cstdint>

namespace nemu {

void select_row(const float* c, int64_t sc, const float* a, int64_t sa, const float* b, int64_t sb, float* o,
                int64_t so, int64_t n);

}  // namespace nemu
