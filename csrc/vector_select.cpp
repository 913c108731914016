// VecSelect: Out = Cond != 0 ? A : B on VectorE (NKI's predicated tensor copy), for cores without GpSimd
// (NeuronCore-v1). Same operands and results as GpSimd's Select.
//
// Cost mapping (NKI-ISA cost table, neuron-hardware.md 1.1): elementwise over [partitions, F], like a
// TensorTensor with two SBUF inputs: max(MIN_II, 2N) VectorE cycles per instruction of N free elements;
// bytes = the fp32 condition + A and B at in_dtype + Out at out_dtype.
#include <string>

#include "select_row.h"
#include "strided.h"

namespace nemu {
namespace {

using SF = VecSelectF;

void vsel_check(const Instr& in, const int64_t* numel, const CoreSpec& spec) {
  check_views(in, 4, numel, "VecSelect");
  check_dtype("VecSelect", in.ip[SF::in_dtype]);
  check_dtype("VecSelect", in.ip[SF::out_dtype]);
}


void vsel_exec(const Instr& in, OpCtx& ctx) {
  const auto p = make_plan<4>(in);
  const float* C = ctx.operand(in, 0);
  const float* A = ctx.operand(in, 1);
  const float* B = ctx.operand(in, 2);
  float* O = ctx.operand(in, 3);
  const DType dt = field_dtype(in, SF::out_dtype);
  for_each_row(p, [&](const int64_t* off, int64_t m, const int64_t* st) {
    select_row(C + off[0], st[0], A + off[1], st[1], B + off[2], st[2], O + off[3], st[3], m);
    round_row(O + off[3], st[3], m, dt);
  });
}

Cost vsel_cost(const Instr& in, const CoreSpec& s) {
  const int64_t n = view_numel(in);
  const Tiled t = tiled_elementwise(s, n, [&](int64_t N) { return min_ii(s, 2.0 * N); });
  Cost c;
  c.engine = Engine::Vector;
  c.cycles = t.cycles;
  c.instructions = t.instructions;
  c.bytes = n * 4 + dtype_bytes_of(in, SF::in_dtype, 2 * n) + dtype_bytes_of(in, SF::out_dtype, n);
  c.flops = n;
  return c;
}

}  // namespace

void register_vector_select_op() { register_builtin(Op::VecSelect, vsel_exec, vsel_check, vsel_cost); }

}  // namespace nemu
