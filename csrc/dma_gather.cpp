// DmaGather: a row gather by DMA with indirect addressing, for cores without GpSimd (NeuronCore-v1, whose
// embedding lookups neuron-cc places on the device: aten::embedding is in the published Inf1 operator list).
// Out [n,D] = Table [rows,D] at the rows named by Index [n] (fp32 holding integers), as Gather.
//
// Cost mapping (neuron-hardware.md 1.1 "Data movement"; ASSUMPTION for v1, whose DMA is unpublished): one
// transfer whose descriptors (one per row, addresses read from Index) are spread over all DMA queues:
// ns = spec.dma_fixed_ns + bytes / (spec.dma_engines * spec.dma_bytes_per_ns_per_engine), bytes = the n*D rows
// at in_dtype's size + the n fp32 indices read.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "strided.h"

namespace nemu {
namespace {

using GF = DmaGatherF;

void dgather_check(const Instr& in, const int64_t* numel, const CoreSpec& spec) {
  const int64_t n = in.ip[GF::n], rows = in.ip[GF::rows], D = in.ip[GF::D];
  for (auto [v, what] : {std::pair<int64_t, const char*>{n, "n"}, {rows, "rows"}, {D, "D"}})
    check_range("DmaGather", what, v, 0, int64_t{1} << 40);  // each bounded: with D = 0 the buffers bound neither
  check_fits("DmaGather", 0, "table [rows,D]", checked_mul(rows, D, "DmaGather", "rows*D"), numel);
  check_fits("DmaGather", 1, "index [n]", n, numel);
  check_fits("DmaGather", 2, "output [n,D]", checked_mul(n, D, "DmaGather", "n*D"), numel);
  check_dtype("DmaGather", in.ip[GF::in_dtype]);
}

void dgather_exec(const Instr& in, OpCtx& ctx) {
  const int64_t n = in.ip[GF::n], rows = in.ip[GF::rows], D = in.ip[GF::D];
  const float* T = ctx.operand(in, 0);
  const float* I = ctx.operand(in, 1);
  float* O = ctx.operand(in, 2);
  for (int64_t i = 0; i < n; ++i) {  // validate every address before any descriptor runs (errors stay on this thread)
    const float v = I[i];
    if (!(v >= 0.f && v < static_cast<float>(rows)) || v != std::floor(v)) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
      fail(std::string("DmaGather: index ") + buf + " at position " + std::to_string(i) +
           " is out of range for a table of " + std::to_string(rows) + " rows");
    }
  }
  parallel_chunks(n, D, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      std::memcpy(O + i * D, T + static_cast<int64_t>(I[i]) * D, static_cast<size_t>(D) * sizeof(float));
  });
}

Cost dgather_cost(const Instr& in, const CoreSpec& s) {
  const int64_t n = in.ip[GF::n], D = in.ip[GF::D];
  const int64_t bytes = dtype_bytes_of(in, GF::in_dtype, n * D) + n * 4;
  Cost c;
  c.engine = Engine::Dma;
  c.cycles = s.dma_fixed_ns + static_cast<double>(bytes) / (s.dma_engines * s.dma_bytes_per_ns_per_engine);
  c.instructions = 1;
  c.bytes = bytes;
  return c;
}

}  // namespace

void register_dma_gather_op() { register_builtin(Op::DmaGather, dgather_exec, dgather_check, dgather_cost); }

}  // namespace nemu
