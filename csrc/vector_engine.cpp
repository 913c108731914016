// VectorE kernels: TensorTensor, TensorScalar, TensorReduce, Softmax, LayerNorm, BatchNorm, Pool2d,
// TensorCopy, VecTranspose, Scan.
//
// Cost mapping (NKI-ISA cost table, reference neuron-hardware.md 1.1; MIN_II = spec.min_ii; all costs in VectorE
// cycles; ScalarE parts of fused ops are converted with the clock ratio f_vector / f_scalar):
//  * Layout: elementwise ops (TensorTensor, TensorScalar, TensorCopy) lay their numel elements out as
//    [partitions, F = ceil(numel/partitions)]; row-wise ops (reduce, softmax, layernorm, scan, pool) put the
//    independent rows (outer*inner, rows, N*C...) on the partitions (ceil(rows/128) partition tiles) and the
//    reduced/normalised axis on the free axis. The free axis is cut into instructions of at most
//    spec.free_tile (512) elements per partition; cycles = sum over instructions.
//  * TensorTensor max(MIN_II, 2N) (two SBUF inputs); TensorScalar / TensorCopy max(MIN_II, N);
//    TensorReduce N (ArgMax/ArgMin: max + find-index = 2N; Mean adds a [P,1] tensor_scalar, MIN_II);
//    Scan (tensor_tensor_scan) max(MIN_II, 2N); VecTranspose: one max(MIN_II, 32) instruction per
//    [128 partitions x 32] block group (4 reshape banks of 32x32).
//  * Softmax per partition tile = per chunk [tensor_reduce max N + ScalarE activation exp with accumulate
//    max(MIN_II,N)+MIN_II] + reciprocal of the [P,1] sums max(MIN_II, 8) (log-softmax: ScalarE Ln [P,1], MIN_II)
//    + per chunk tensor_scalar (multiply / subtract) max(MIN_II, N). The ScalarE parts are charged to ScalarE
//    (Cost.aux, serial with the VectorE passes), not folded into VectorE cycles.
//  * LayerNorm per partition tile = per chunk bn_stats max(MIN_II, N) + bn_aggr max(MIN_II, 13*(6*chunks/3))
//    + tensor_scalar (var+eps)^-0.5 on [P,1] (MIN_II) + per chunk tensor_scalar (x-mean)*rstd max(MIN_II, N)
//    + per chunk tensor_tensor * weight / + bias max(MIN_II, 2N) each (weights broadcast over partitions).
//  * BatchNorm (inference): channels on partitions, free = N*HW. Per channel tile 4 [C,1] instructions
//    (rstd, scale = w*rstd, mean*scale, shift = b - mean*scale), MIN_II each, + per chunk one tensor_scalar
//    x*scale + shift max(MIN_II, N).
//  * Pool2d: N*C rows on partitions, free = OH*OW; per chunk 1 tensor_copy max(MIN_II, N) + (kh*kw-1)
//    tensor_tensor max/add on strided window views max(MIN_II, 2N); avg adds the divisor: tensor_scalar
//    max(MIN_II, N) for a uniform divisor (divisor_override or count_include_pad), else a tensor_tensor by
//    per-position reciprocal counts max(MIN_II, 2N).
//  bytes = elements read + written, each at the size of its dtype field (in_dtype / out_dtype); flops ~ one
//  per element per ALU op.
// No FP-exception semantics are relied on; this lets GCC if-convert and vectorise the math loops (clamps, floor).
#pragma GCC optimize("no-trapping-math")
#include <cmath>
#include <cstring>
#include <limits>

#include "strided.h"

namespace nemu {
namespace {

// Upper bound of any single extent field read from an artifact (2^40 elements = 4 TiB of fp32): the buffers
// bound products of extents, this bounds each one, so cost formulas cannot overflow when a product is 0.
constexpr int64_t kMaxExtent = int64_t{1} << 40;

#define AI inline __attribute__((always_inline))

// ---------------- ALU ----------------
AI float f_max(float x, float y) { return x != x ? x : (y != y ? y : (x > y ? x : y)); }
AI float f_min(float x, float y) { return x != x ? x : (y != y ? y : (x < y ? x : y)); }
AI float f_remainder(float a, float b) {
  float m = std::fmod(a, b);
  if (m != 0.f && ((b < 0.f) != (m < 0.f))) m += b;
  return m;
}
AI float f_floordiv(float a, float b) {  // torch div_floor_floating
  if (b == 0.f) return a / b;
  const float mod = std::fmod(a, b);
  float div = (a - mod) / b;
  if (mod != 0.f && ((b < 0.f) != (mod < 0.f))) div -= 1.f;
  float fd;
  if (div != 0.f) {
    fd = std::floor(div);
    if (div - fd > 0.5f) fd += 1.f;
  } else {
    fd = std::copysign(0.f, a / b);
  }
  return fd;
}

template <class Fn>
AI void bin_loop(const float* a, int64_t sa, const float* b, int64_t sb, float* o, int64_t so, int64_t n, Fn fn) {
  if (so == 1) {
    if (sa == 1 && sb == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = fn(a[i], b[i]);
      return;
    }
    if (sa == 1 && sb == 0) {
      const float bv = *b;
      for (int64_t i = 0; i < n; ++i) o[i] = fn(a[i], bv);
      return;
    }
    if (sa == 0 && sb == 1) {
      const float av = *a;
      for (int64_t i = 0; i < n; ++i) o[i] = fn(av, b[i]);
      return;
    }
  }
  for (int64_t i = 0; i < n; ++i) o[i * so] = fn(a[i * sa], b[i * sb]);
}

NEMU_ALWAYS_INLINE void alu_row_body(int op, const float* a, int64_t sa, const float* b, int64_t sb, float* o, int64_t so,
                                     int64_t n) {
  switch (static_cast<Alu>(op)) {
    case Alu::Add: bin_loop(a, sa, b, sb, o, so, n, [](float x, float y) { return x + y; }); break;
    case Alu::Sub: bin_loop(a, sa, b, sb, o, so, n, [](float x, float y) { return x - y; }); break;
    case Alu::Mul: bin_loop(a, sa, b, sb, o, so, n, [](float x, float y) { return x * y; }); break;
    case Alu::Div: bin_loop(a, sa, b, sb, o, so, n, [](float x, float y) { return x / y; }); break;
    case Alu::Max: bin_loop(a, sa, b, sb, o, so, n, [](float x, float y) { return f_max(x, y); }); break;
    case Alu::Min: bin_loop(a, sa, b, sb, o, so, n, [](float x, float y) { return f_min(x, y); }); break;
    case Alu::Pow: bin_loop(a, sa, b, sb, o, so, n, [](float x, float y) { return std::pow(x, y); }); break;
    case Alu::Eq: bin_loop(a, sa, b, sb, o, so, n, [](float x, float y) { return x == y ? 1.f : 0.f; }); break;
    case Alu::Ne: bin_loop(a, sa, b, sb, o, so, n, [](float x, float y) { return x != y ? 1.f : 0.f; }); break;
    case Alu::Lt: bin_loop(a, sa, b, sb, o, so, n, [](float x, float y) { return x < y ? 1.f : 0.f; }); break;
    case Alu::Le: bin_loop(a, sa, b, sb, o, so, n, [](float x, float y) { return x <= y ? 1.f : 0.f; }); break;
    case Alu::Gt: bin_loop(a, sa, b, sb, o, so, n, [](float x, float y) { return x > y ? 1.f : 0.f; }); break;
    case Alu::Ge: bin_loop(a, sa, b, sb, o, so, n, [](float x, float y) { return x >= y ? 1.f : 0.f; }); break;
    case Alu::And: bin_loop(a, sa, b, sb, o, so, n, [](float x, float y) { return (x != 0.f && y != 0.f) ? 1.f : 0.f; }); break;
    case Alu::Or: bin_loop(a, sa, b, sb, o, so, n, [](float x, float y) { return (x != 0.f || y != 0.f) ? 1.f : 0.f; }); break;
    case Alu::Xor: bin_loop(a, sa, b, sb, o, so, n, [](float x, float y) { return ((x != 0.f) != (y != 0.f)) ? 1.f : 0.f; }); break;
    case Alu::Fmod: bin_loop(a, sa, b, sb, o, so, n, [](float x, float y) { return std::fmod(x, y); }); break;
    case Alu::Remainder: bin_loop(a, sa, b, sb, o, so, n, [](float x, float y) { return f_remainder(x, y); }); break;
    case Alu::FloorDiv: bin_loop(a, sa, b, sb, o, so, n, [](float x, float y) { return f_floordiv(x, y); }); break;
    case Alu::Atan2: bin_loop(a, sa, b, sb, o, so, n, [](float x, float y) { return std::atan2(x, y); }); break;
    case Alu::Hypot: bin_loop(a, sa, b, sb, o, so, n, [](float x, float y) { return std::hypot(x, y); }); break;
    case Alu::Copysign: bin_loop(a, sa, b, sb, o, so, n, [](float x, float y) { return std::copysign(x, y); }); break;
    case Alu::FMax: bin_loop(a, sa, b, sb, o, so, n, [](float x, float y) { return std::fmax(x, y); }); break;
    case Alu::FMin: bin_loop(a, sa, b, sb, o, so, n, [](float x, float y) { return std::fmin(x, y); }); break;
    default: break;
  }
}
NEMU_SIMD_DISPATCH(alu_row,
                   (int op, const float* a, int64_t sa, const float* b, int64_t sb, float* o, int64_t so, int64_t n),
                   (op, a, sa, b, sb, o, so, n))

NEMU_ALWAYS_INLINE void copy_row_body(const float* a, int64_t sa, float* o, int64_t so, int64_t n) {
  if (sa == 1 && so == 1) {
    std::memmove(o, a, n * sizeof(float));
  } else if (so == 1) {
    for (int64_t i = 0; i < n; ++i) o[i] = a[i * sa];
  } else {
    for (int64_t i = 0; i < n; ++i) o[i * so] = a[i * sa];
  }
}
NEMU_SIMD_DISPATCH(copy_row, (const float* a, int64_t sa, float* o, int64_t so, int64_t n), (a, sa, o, so, n))

void check_alu(const char* op, int64_t code) { check_range(op, "alu code", code, 0, static_cast<int64_t>(Alu::kCount) - 1); }

Cost vcost(const Tiled& t, int64_t bytes, int64_t flops) {
  Cost c;
  c.engine = Engine::Vector;
  c.cycles = t.cycles;
  c.instructions = t.instructions;
  c.bytes = bytes;
  c.flops = flops;
  return c;
}

// ---------------- TensorTensor ----------------
using TTF = TensorTensorF;
void tt_check(const Instr& in, const int64_t* numel, const CoreSpec& spec) {
  check_views(in, 3, numel, "TensorTensor");
  check_alu("TensorTensor", in.ip[TTF::alu]);
  check_dtype("TensorTensor", in.ip[TTF::in_dtype]);
  check_dtype("TensorTensor", in.ip[TTF::out_dtype]);
}
void tt_exec(const Instr& in, OpCtx& ctx) {
  const auto p = make_plan<3>(in);
  const float* A = ctx.operand(in, 0);
  const float* B = ctx.operand(in, 1);
  float* O = ctx.operand(in, 2);
  const int op = static_cast<int>(in.ip[TTF::alu]);
  const DType dt = field_dtype(in, TTF::out_dtype);
  for_each_row(p, [&](const int64_t* off, int64_t n, const int64_t* st) {
    alu_row(op, A + off[0], st[0], B + off[1], st[1], O + off[2], st[2], n);
    round_row(O + off[2], st[2], n, dt);
  });
}
Cost tt_cost(const Instr& in, const CoreSpec& s) {
  const int64_t n = view_numel(in);
  return vcost(tiled_elementwise(s, n, [&](int64_t N) { return min_ii(s, 2.0 * N); }),
               dtype_bytes_of(in, TTF::in_dtype, 2 * n) + dtype_bytes_of(in, TTF::out_dtype, n), n);
}

// ---------------- TensorScalar ----------------
using TSF = TensorScalarF;
void ts_check(const Instr& in, const int64_t* numel, const CoreSpec& spec) {
  check_views(in, 2, numel, "TensorScalar");
  check_alu("TensorScalar", in.ip[TSF::alu0]);
  check_dtype("TensorScalar", in.ip[TSF::in_dtype]);
  check_dtype("TensorScalar", in.ip[TSF::out_dtype]);
  if (in.ip[TSF::alu1] != -1) check_alu("TensorScalar", in.ip[TSF::alu1]);
}
void ts_exec(const Instr& in, OpCtx& ctx) {
  const auto p = make_plan<2>(in);
  const float* A = ctx.operand(in, 0);
  float* O = ctx.operand(in, 1);
  const int op0 = static_cast<int>(in.ip[TSF::alu0]), op1 = static_cast<int>(in.ip[TSF::alu1]);
  const bool rev0 = in.ip[TSF::reverse0] != 0, rev1 = in.ip[TSF::reverse1] != 0;
  const float s0 = static_cast<float>(in.fp[TSF::scalar0]), s1 = static_cast<float>(in.fp[TSF::scalar1]);
  const DType dt = field_dtype(in, TSF::out_dtype);
  for_each_row(p, [&](const int64_t* off, int64_t n, const int64_t* st) {
    const float* a = A + off[0];
    float* o = O + off[1];
    if (rev0) alu_row(op0, &s0, 0, a, st[0], o, st[1], n);
    else alu_row(op0, a, st[0], &s0, 0, o, st[1], n);
    if (op1 >= 0) {
      if (rev1) alu_row(op1, &s1, 0, o, st[1], o, st[1], n);
      else alu_row(op1, o, st[1], &s1, 0, o, st[1], n);
    }
    round_row(o, st[1], n, dt);
  });
}
Cost ts_cost(const Instr& in, const CoreSpec& s) {
  const int64_t n = view_numel(in);
  return vcost(tiled_elementwise(s, n, [&](int64_t N) { return min_ii(s, N); }),
               dtype_bytes_of(in, TSF::in_dtype, n) + dtype_bytes_of(in, TSF::out_dtype, n),
               n * (in.ip[TSF::alu1] >= 0 ? 2 : 1));
}

// ---------------- TensorCopy ----------------
using TCF = TensorCopyF;
void copy_check(const Instr& in, const int64_t* numel, const CoreSpec& spec) {
  check_views(in, 2, numel, "TensorCopy");
  check_dtype("TensorCopy", in.ip[TCF::in_dtype]);
  check_dtype("TensorCopy", in.ip[TCF::out_dtype]);
}
void copy_exec(const Instr& in, OpCtx& ctx) {
  const auto p = make_plan<2>(in);
  const float* A = ctx.operand(in, 0);
  float* O = ctx.operand(in, 1);
  const DType dt = field_dtype(in, TCF::out_dtype);
  for_each_row(p, [&](const int64_t* off, int64_t n, const int64_t* st) {
    copy_row(A + off[0], st[0], O + off[1], st[1], n);
    round_row(O + off[1], st[1], n, dt);
  });
}
Cost copy_cost(const Instr& in, const CoreSpec& s) {
  const int64_t n = view_numel(in);
  return vcost(tiled_elementwise(s, n, [&](int64_t N) { return min_ii(s, N); }),
               dtype_bytes_of(in, TCF::in_dtype, n) + dtype_bytes_of(in, TCF::out_dtype, n), 0);
}

// ---------------- [outer, R, inner] helpers ----------------
struct ORI {
  int64_t outer, R, inner;
};
// TensorReduce, Softmax and Scan share the [outer, R, inner] fields in their first three slots.
static_assert(TensorReduceF::outer == 0 && TensorReduceF::R == 1 && TensorReduceF::inner == 2 && SoftmaxF::outer == 0 &&
              SoftmaxF::R == 1 && SoftmaxF::inner == 2 && ScanF::outer == 0 && ScanF::R == 1 && ScanF::inner == 2,
              "ORI field layout");
ORI ori_check(const Instr& in, const int64_t* numel, const char* op, bool out_reduced, int64_t min_r) {
  ORI d{in.ip[0], in.ip[1], in.ip[2]};
  // each extent bounded on its own: with outer*inner = 0 the buffers would not bound R (costs multiply it)
  check_range(op, "outer", d.outer, 0, kMaxExtent);
  check_range(op, "R", d.R, 0, kMaxExtent);
  check_range(op, "inner", d.inner, 0, kMaxExtent);
  const int64_t rows = checked_mul(d.outer, d.inner, op, "outer*inner");
  const int64_t all = checked_mul(rows, d.R, op, "outer*R*inner");
  if (d.R < min_r) fail(std::string(op) + ": reduced extent R = " + std::to_string(d.R) + " must be >= " + std::to_string(min_r));
  check_fits(op, 0, "input [outer,R,inner]", all, numel);
  check_fits(op, 1, out_reduced ? "output [outer,inner]" : "output [outer,R,inner]", out_reduced ? rows : all, numel);
  return d;
}

constexpr int64_t kBlk = 128;  // inner-axis block kept in stack accumulators

// ---------------- TensorReduce ----------------
void reduce_check(const Instr& in, const int64_t* numel, const CoreSpec& spec) {
  ori_check(in, numel, "TensorReduce", true, 1);
  check_range("TensorReduce", "reduce op", in.ip[TensorReduceF::reduce_op], 0, static_cast<int64_t>(ReduceOp::kCount) - 1);
  check_dtype("TensorReduce", in.ip[TensorReduceF::in_dtype]);
  check_dtype("TensorReduce", in.ip[TensorReduceF::out_dtype]);
}

NEMU_ALWAYS_INLINE void reduce_rows_body(int rop, const float* x, float* out, int64_t R, int64_t inner, int64_t ib, int64_t nb) {
  // Reduces x[r*inner + ib + i] over r for i in [0, nb) into out[ib + i].
  const ReduceOp op = static_cast<ReduceOp>(rop);
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Mean:
    case ReduceOp::Prod: {
      double acc[kBlk];
      const bool prod = op == ReduceOp::Prod;
      for (int64_t i = 0; i < nb; ++i) acc[i] = prod ? 1.0 : 0.0;
      if (inner == 1) {  // contiguous row: 4 independent accumulators
        double a0 = acc[0], a1 = acc[0], a2 = acc[0], a3 = acc[0];
        int64_t r = 0;
        if (prod) {
          for (; r + 4 <= R; r += 4) { a0 *= x[r]; a1 *= x[r + 1]; a2 *= x[r + 2]; a3 *= x[r + 3]; }
          for (; r < R; ++r) a0 *= x[r];
          acc[0] = (a0 * a1) * (a2 * a3);
        } else {
          for (; r + 4 <= R; r += 4) { a0 += x[r]; a1 += x[r + 1]; a2 += x[r + 2]; a3 += x[r + 3]; }
          for (; r < R; ++r) a0 += x[r];
          acc[0] = (a0 + a1) + (a2 + a3);
        }
      } else if (prod) {
        for (int64_t r = 0; r < R; ++r) {
          const float* xr = x + r * inner + ib;
          for (int64_t i = 0; i < nb; ++i) acc[i] *= xr[i];
        }
      } else {
        for (int64_t r = 0; r < R; ++r) {
          const float* xr = x + r * inner + ib;
          for (int64_t i = 0; i < nb; ++i) acc[i] += xr[i];
        }
      }
      const double div = op == ReduceOp::Mean ? static_cast<double>(R) : 1.0;
      for (int64_t i = 0; i < nb; ++i) out[ib + i] = static_cast<float>(acc[i] / div);
      break;
    }
    case ReduceOp::Max:
    case ReduceOp::Min: {
      float acc[kBlk];
      const bool mx = op == ReduceOp::Max;
      for (int64_t i = 0; i < nb; ++i) acc[i] = x[ib + i];
      for (int64_t r = 1; r < R; ++r) {
        const float* xr = x + r * inner + ib;
        if (mx) for (int64_t i = 0; i < nb; ++i) acc[i] = f_max(acc[i], xr[i]);
        else for (int64_t i = 0; i < nb; ++i) acc[i] = f_min(acc[i], xr[i]);
      }
      for (int64_t i = 0; i < nb; ++i) out[ib + i] = acc[i];
      break;
    }
    case ReduceOp::ArgMax:
    case ReduceOp::ArgMin: {
      float best[kBlk];
      int64_t idx[kBlk];
      const bool mx = op == ReduceOp::ArgMax;
      for (int64_t i = 0; i < nb; ++i) { best[i] = x[ib + i]; idx[i] = 0; }
      for (int64_t r = 1; r < R; ++r) {
        const float* xr = x + r * inner + ib;
        for (int64_t i = 0; i < nb; ++i) {
          const float v = xr[i], b = best[i];
          // NaN counts as the extreme (torch); first occurrence wins.
          const bool take = (b == b) && ((v != v) || (mx ? v > b : v < b));
          if (take) { best[i] = v; idx[i] = r; }
        }
      }
      for (int64_t i = 0; i < nb; ++i) out[ib + i] = static_cast<float>(idx[i]);
      break;
    }
    case ReduceOp::Any:
    case ReduceOp::All: {
      bool acc[kBlk];
      const bool any = op == ReduceOp::Any;
      for (int64_t i = 0; i < nb; ++i) acc[i] = !any;
      for (int64_t r = 0; r < R; ++r) {
        const float* xr = x + r * inner + ib;
        if (any) for (int64_t i = 0; i < nb; ++i) acc[i] = acc[i] || (xr[i] != 0.f);
        else for (int64_t i = 0; i < nb; ++i) acc[i] = acc[i] && (xr[i] != 0.f);
      }
      for (int64_t i = 0; i < nb; ++i) out[ib + i] = acc[i] ? 1.f : 0.f;
      break;
    }
    default: break;
  }
}
NEMU_SIMD_DISPATCH(reduce_rows,
                   (int rop, const float* x, float* out, int64_t R, int64_t inner, int64_t ib, int64_t nb),
                   (rop, x, out, R, inner, ib, nb))

using RF = TensorReduceF;
void reduce_exec(const Instr& in, OpCtx& ctx) {
  const int64_t outer = in.ip[RF::outer], R = in.ip[RF::R], inner = in.ip[RF::inner];
  const int rop = static_cast<int>(in.ip[RF::reduce_op]);
  const DType dt = field_dtype(in, RF::out_dtype);
  const float* X = ctx.operand(in, 0);
  float* O = ctx.operand(in, 1);
  const int64_t nblk = ceil_div(inner, kBlk);
  parallel_chunks(outer * nblk, R * std::min(inner, kBlk), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t o = t / nblk, ib = (t % nblk) * kBlk, nb = std::min(kBlk, inner - ib);
      reduce_rows(rop, X + o * R * inner, O + o * inner, R, inner, ib, nb);
      round_row(O + o * inner + ib, 1, nb, dt);
    }
  });
}
Cost reduce_cost(const Instr& in, const CoreSpec& s) {
  const int64_t outer = in.ip[RF::outer], R = in.ip[RF::R], inner = in.ip[RF::inner];
  const ReduceOp op = static_cast<ReduceOp>(in.ip[RF::reduce_op]);
  const double k = (op == ReduceOp::ArgMax || op == ReduceOp::ArgMin) ? 2.0 : 1.0;
  Tiled t = tiled(s, outer * inner, R, [&](int64_t N) { return k * N; });
  if (op == ReduceOp::Mean) {
    t.cycles += s.min_ii * static_cast<double>(t.ptiles);
    t.instructions += t.ptiles;
  }
  const int64_t n = outer * R * inner;
  return vcost(t, dtype_bytes_of(in, RF::in_dtype, n) + dtype_bytes_of(in, RF::out_dtype, outer * inner), n);
}

// ---------------- Softmax ----------------
void softmax_check(const Instr& in, const int64_t* numel, const CoreSpec& spec) {
  ori_check(in, numel, "Softmax", false, 1);
  check_dtype("Softmax", in.ip[SoftmaxF::in_dtype]);
  check_dtype("Softmax", in.ip[SoftmaxF::out_dtype]);
}

NEMU_ALWAYS_INLINE void softmax_block_body(const float* x, float* y, int64_t R, int64_t inner, int64_t nb, bool log) {
  // x, y point at element (r=0, i=ib); rows r at stride inner; nb columns.
  if (inner == 1) {  // contiguous row: vectorised max / exp / sum / scale passes, y doubles as the exp buffer
    // max as a SIMD reduction (f_max's NaN branches kept it scalar); a NaN row takes its first NaN, as f_max did
    // (16 independent lanes: a float max reduction is not vectorised without -ffinite-math-only)
    float m16[16];
    uint32_t n16[16] = {};
    for (int k = 0; k < 16; ++k) m16[k] = x[0];
    int64_t i = 0;
    for (; i + 16 <= R; i += 16)
#pragma omp simd
      for (int k = 0; k < 16; ++k) {
        const float v = x[i + k];
        m16[k] = v > m16[k] ? v : m16[k];
        n16[k] |= v != v ? 1u : 0u;
      }
    float m = m16[0];
    uint32_t nan = 0;
    for (int k = 0; k < 16; ++k) {
      m = m16[k] > m ? m16[k] : m;
      nan |= n16[k];
    }
    for (; i < R; ++i) {
      m = x[i] > m ? x[i] : m;
      nan |= x[i] != x[i] ? 1u : 0u;
    }
    if (nan)
      for (i = 0; i < R; ++i)
        if (x[i] != x[i]) { m = x[i]; break; }
    int64_t r = 0;
#pragma omp simd
    for (r = 0; r < R; ++r) y[r] = fast_expf(x[r] - m);
    float s8[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (r = 0; r + 8 <= R; r += 8)
      for (int k = 0; k < 8; ++k) s8[k] += y[r + k];
    double tot = 0;
    for (; r < R; ++r) tot += y[r];
    for (int k = 0; k < 8; ++k) tot += s8[k];
    if (log) {
      const float ls = static_cast<float>(std::log(tot));
      for (r = 0; r < R; ++r) y[r] = (x[r] - m) - ls;
    } else {
      const float k = static_cast<float>(1.0 / tot);
      for (r = 0; r < R; ++r) y[r] *= k;
    }
    return;
  }
  float mx[kBlk];
  double sum[kBlk];
  for (int64_t i = 0; i < nb; ++i) { mx[i] = x[i]; sum[i] = 0; }
  for (int64_t r = 1; r < R; ++r) {  // f_max as a select, so the column loop vectorises
    const float* xr = x + r * inner;
#pragma omp simd
    for (int64_t i = 0; i < nb; ++i) mx[i] = (mx[i] == mx[i] && (xr[i] > mx[i] || xr[i] != xr[i])) ? xr[i] : mx[i];
  }
  if (nb == 1) {
    const float m = mx[0];
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    int64_t r = 0;
    if (inner == 1) {
      for (; r + 8 <= R; r += 8) {
        float e0 = fast_expf(x[r] - m), e1 = fast_expf(x[r + 1] - m), e2 = fast_expf(x[r + 2] - m), e3 = fast_expf(x[r + 3] - m);
        float e4 = fast_expf(x[r + 4] - m), e5 = fast_expf(x[r + 5] - m), e6 = fast_expf(x[r + 6] - m), e7 = fast_expf(x[r + 7] - m);
        if (!log) { y[r] = e0; y[r + 1] = e1; y[r + 2] = e2; y[r + 3] = e3; y[r + 4] = e4; y[r + 5] = e5; y[r + 6] = e6; y[r + 7] = e7; }
        s0 += e0; s1 += e1; s2 += e2; s3 += e3; s4 += e4; s5 += e5; s6 += e6; s7 += e7;
      }
    }
    double tot = 0;
    for (; r < R; ++r) {
      const float e = fast_expf(x[r * inner] - m);
      if (!log) y[r * inner] = e;
      tot += e;
    }
    sum[0] = tot + (static_cast<double>(s0) + s1 + s2 + s3) + (static_cast<double>(s4) + s5 + s6 + s7);
  } else {
    for (int64_t r = 0; r < R; ++r) {
      const float* xr = x + r * inner;
      float* yr = y + r * inner;
      for (int64_t i = 0; i < nb; ++i) {
        const float e = fast_expf(xr[i] - mx[i]);
        if (!log) yr[i] = e;
        sum[i] += e;
      }
    }
  }
  float k[kBlk];
  if (log) {
    for (int64_t i = 0; i < nb; ++i) k[i] = static_cast<float>(std::log(sum[i]));
    for (int64_t r = 0; r < R; ++r) {  // (x - max) - log(sum), in torch's order
      const float* xr = x + r * inner;
      float* yr = y + r * inner;
      for (int64_t i = 0; i < nb; ++i) yr[i] = (xr[i] - mx[i]) - k[i];
    }
  } else {
    for (int64_t i = 0; i < nb; ++i) k[i] = static_cast<float>(1.0 / sum[i]);
    if (nb == 1) {
      const float kk = k[0];
      if (inner == 1) for (int64_t r = 0; r < R; ++r) y[r] *= kk;
      else for (int64_t r = 0; r < R; ++r) y[r * inner] *= kk;
    } else {
      for (int64_t r = 0; r < R; ++r) {
        float* yr = y + r * inner;
        for (int64_t i = 0; i < nb; ++i) yr[i] *= k[i];
      }
    }
  }
}
NEMU_SIMD_DISPATCH(softmax_block,
                   (const float* x, float* y, int64_t R, int64_t inner, int64_t nb, bool log),
                   (x, y, R, inner, nb, log))

using SMF = SoftmaxF;
void softmax_exec(const Instr& in, OpCtx& ctx) {
  const int64_t outer = in.ip[SMF::outer], R = in.ip[SMF::R], inner = in.ip[SMF::inner];
  const bool log = in.ip[SMF::log] != 0;
  const DType dt = field_dtype(in, SMF::out_dtype);
  const float* X = ctx.operand(in, 0);
  float* Y = ctx.operand(in, 1);
  const int64_t nblk = ceil_div(inner, kBlk);
  parallel_chunks(outer * nblk, R * std::min(inner, kBlk) * 8, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t o = t / nblk, ib = (t % nblk) * kBlk, nb = std::min(kBlk, inner - ib);
      const int64_t base = o * R * inner + ib;
      softmax_block(X + base, Y + base, R, inner, nb, log);
      if (dt != DType::F32) {
        if (inner == 1) round_row(Y + base, 1, R, dt);
        else for (int64_t r = 0; r < R; ++r) round_row(Y + base + r * inner, 1, nb, dt);
      }
    }
  });
}
Cost softmax_cost(const Instr& in, const CoreSpec& s) {
  const int64_t outer = in.ip[SMF::outer], R = in.ip[SMF::R], inner = in.ip[SMF::inner];
  const bool log = in.ip[SMF::log] != 0;
  // VectorE: per chunk the max reduce (N) and the normalising tensor_scalar (max(MIN_II, N)), per partition tile
  // the reciprocal of the [P,1] sums (softmax) ...
  Tiled t = tiled(s, outer * inner, R, [&](int64_t N) { return N + min_ii(s, N); });
  const int64_t ptiles = t.ptiles, chunks = t.instructions;
  if (!log) t.cycles += min_ii(s, 8.0) * ptiles;
  t.instructions = 2 * chunks + (log ? 0 : ptiles);
  const int64_t n = outer * R * inner;  // two passes over the input, one write
  Cost c = vcost(t, dtype_bytes_of(in, SMF::in_dtype, 2 * n) + dtype_bytes_of(in, SMF::out_dtype, n), n * 4);
  // ... and ScalarE: per chunk exp(x - max) with the row sum accumulated (activation_reduce, max(MIN_II, N) + MIN_II),
  // log-softmax's Ln of the [P,1] sums (MIN_II). The three passes depend on each other: aux is serial.
  const Tiled e = tiled(s, outer * inner, R, [&](int64_t N) { return min_ii(s, N) + s.min_ii; });
  c.aux_engine = Engine::Scalar;
  c.aux_cycles = e.cycles + (log ? static_cast<double>(s.min_ii) * ptiles : 0.0);
  c.aux_instructions = e.instructions + (log ? ptiles : 0);
  c.aux_serial = true;
  return c;
}

// ---------------- LayerNorm ----------------
using LNF = LayerNormF;
void ln_check(const Instr& in, const int64_t* numel, const CoreSpec& spec) {
  const int64_t rows = in.ip[LNF::rows], D = in.ip[LNF::D];
  const bool hw = in.ip[LNF::has_weight] != 0, hb = in.ip[LNF::has_bias] != 0;
  check_range("LayerNorm", "rows", rows, 0, kMaxExtent);
  check_range("LayerNorm", "D", D, 0, kMaxExtent);
  const int64_t all = checked_mul(rows, D, "LayerNorm", "rows*D");
  if (D < 1) fail("LayerNorm: D = " + std::to_string(D) + " must be >= 1");
  const int expect = 2 + hw + hb;
  if (in.n_operands != expect)
    fail("LayerNorm: " + std::to_string(in.n_operands) + " operands, expected " + std::to_string(expect) +
         " (In, [weight], [bias], Out)");
  check_fits("LayerNorm", 0, "input [rows,D]", all, numel);
  int j = 1;
  if (hw) check_fits("LayerNorm", j++, "weight [D]", D, numel);
  if (hb) check_fits("LayerNorm", j++, "bias [D]", D, numel);
  check_fits("LayerNorm", j, "output [rows,D]", all, numel);
  check_dtype("LayerNorm", in.ip[LNF::in_dtype]);
  check_dtype("LayerNorm", in.ip[LNF::out_dtype]);
}

NEMU_ALWAYS_INLINE void ln_row_body(const float* x, float* y, const float* w, const float* b, int64_t D, float eps) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= D; i += 4) { s0 += x[i]; s1 += x[i + 1]; s2 += x[i + 2]; s3 += x[i + 3]; }
  for (; i < D; ++i) s0 += x[i];
  const double mean = ((s0 + s1) + (s2 + s3)) / static_cast<double>(D);
  double v0 = 0, v1 = 0, v2 = 0, v3 = 0;
  i = 0;
  for (; i + 4 <= D; i += 4) {
    const double d0 = x[i] - mean, d1 = x[i + 1] - mean, d2 = x[i + 2] - mean, d3 = x[i + 3] - mean;
    v0 += d0 * d0; v1 += d1 * d1; v2 += d2 * d2; v3 += d3 * d3;
  }
  for (; i < D; ++i) { const double d = x[i] - mean; v0 += d * d; }
  const double var = ((v0 + v1) + (v2 + v3)) / static_cast<double>(D);
  const float rstd = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)));
  const float m = static_cast<float>(mean);
  if (w && b) for (int64_t k = 0; k < D; ++k) y[k] = (x[k] - m) * rstd * w[k] + b[k];
  else if (w) for (int64_t k = 0; k < D; ++k) y[k] = (x[k] - m) * rstd * w[k];
  else if (b) for (int64_t k = 0; k < D; ++k) y[k] = (x[k] - m) * rstd + b[k];
  else for (int64_t k = 0; k < D; ++k) y[k] = (x[k] - m) * rstd;
}
NEMU_SIMD_DISPATCH(ln_row,
                   (const float* x, float* y, const float* w, const float* b, int64_t D, float eps),
                   (x, y, w, b, D, eps))

void ln_exec(const Instr& in, OpCtx& ctx) {
  const int64_t rows = in.ip[LNF::rows], D = in.ip[LNF::D];
  const bool hw = in.ip[LNF::has_weight] != 0, hb = in.ip[LNF::has_bias] != 0;
  const DType dt = field_dtype(in, LNF::out_dtype);
  const float eps = static_cast<float>(in.fp[LNF::eps]);
  int j = 0;
  const float* X = ctx.operand(in, j++);
  const float* W = hw ? ctx.operand(in, j++) : nullptr;
  const float* B = hb ? ctx.operand(in, j++) : nullptr;
  float* Y = ctx.operand(in, j);
  parallel_chunks(rows, D * 4, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      ln_row(X + r * D, Y + r * D, W, B, D, eps);
      round_row(Y + r * D, 1, D, dt);
    }
  });
}
Cost ln_cost(const Instr& in, const CoreSpec& s) {
  const int64_t rows = in.ip[LNF::rows], D = in.ip[LNF::D];
  const int n_affine = (in.ip[LNF::has_weight] != 0) + (in.ip[LNF::has_bias] != 0);
  Tiled t = tiled(s, rows, D, [&](int64_t N) { return 2 * min_ii(s, N) + n_affine * min_ii(s, 2.0 * N); });
  t.cycles += (min_ii(s, 13.0 * (6.0 * t.chunks / 3.0)) + s.min_ii) * t.ptiles;
  t.instructions = t.instructions * (2 + n_affine) + 2 * t.ptiles;
  const int64_t n = rows * D;  // stats and normalise passes read the input, each affine pass re-reads the output
  return vcost(t, dtype_bytes_of(in, LNF::in_dtype, 2 * n) + dtype_bytes_of(in, LNF::out_dtype, n * (1 + 2 * n_affine)),
               n * (5 + 2 * n_affine));
}

// ---------------- BatchNorm (inference) ----------------
using BNF = BatchNormF;
void bn_check(const Instr& in, const int64_t* numel, const CoreSpec& spec) {
  const int64_t N = in.ip[BNF::N], C = in.ip[BNF::C], HW = in.ip[BNF::HW];
  const bool hw = in.ip[BNF::has_weight] != 0, hb = in.ip[BNF::has_bias] != 0;
  check_range("BatchNorm", "N", N, 0, kMaxExtent);
  check_range("BatchNorm", "HW", HW, 0, kMaxExtent);
  const int64_t all = checked_mul(checked_mul(N, C, "BatchNorm", "N*C"), HW, "BatchNorm", "N*C*HW");
  const int expect = 4 + hw + hb;
  if (in.n_operands != expect)
    fail("BatchNorm: " + std::to_string(in.n_operands) + " operands, expected " + std::to_string(expect) +
         " (In, mean, var, [weight], [bias], Out)");
  check_fits("BatchNorm", 0, "input [N,C,HW]", all, numel);
  check_fits("BatchNorm", 1, "mean [C]", C, numel);
  check_fits("BatchNorm", 2, "var [C]", C, numel);
  int j = 3;
  if (hw) check_fits("BatchNorm", j++, "weight [C]", C, numel);
  if (hb) check_fits("BatchNorm", j++, "bias [C]", C, numel);
  check_fits("BatchNorm", j, "output [N,C,HW]", all, numel);
  check_dtype("BatchNorm", in.ip[BNF::in_dtype]);
  check_dtype("BatchNorm", in.ip[BNF::out_dtype]);
}

NEMU_ALWAYS_INLINE void affine_row_body(const float* x, float* y, int64_t n, float a, float b) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * a + b;
}
NEMU_SIMD_DISPATCH(affine_row, (const float* x, float* y, int64_t n, float a, float b), (x, y, n, a, b))

void bn_exec(const Instr& in, OpCtx& ctx) {
  const int64_t N = in.ip[BNF::N], C = in.ip[BNF::C], HW = in.ip[BNF::HW];
  const bool hw = in.ip[BNF::has_weight] != 0, hb = in.ip[BNF::has_bias] != 0;
  const DType dt = field_dtype(in, BNF::out_dtype);
  const float eps = static_cast<float>(in.fp[BNF::eps]);
  const float* X = ctx.operand(in, 0);
  const float* M = ctx.operand(in, 1);
  const float* V = ctx.operand(in, 2);
  int j = 3;
  const float* W = hw ? ctx.operand(in, j++) : nullptr;
  const float* B = hb ? ctx.operand(in, j++) : nullptr;
  float* Y = ctx.operand(in, j);
  parallel_chunks(N * C, HW, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t c = t % C;
      // torch batch_norm_cpu_inference: alpha = w / sqrt(var + eps), beta = b - mean * alpha
      const float invstd = 1.0f / std::sqrt(V[c] + eps);
      const float alpha = invstd * (W ? W[c] : 1.0f);
      const float beta = (B ? B[c] : 0.0f) - M[c] * alpha;
      affine_row(X + t * HW, Y + t * HW, HW, alpha, beta);
      round_row(Y + t * HW, 1, HW, dt);
    }
  });
}
Cost bn_cost(const Instr& in, const CoreSpec& s) {
  const int64_t N = in.ip[BNF::N], C = in.ip[BNF::C], HW = in.ip[BNF::HW];
  Tiled t = tiled(s, C, N * HW, [&](int64_t n) { return min_ii(s, n); });
  t.cycles += 4.0 * s.min_ii * t.ptiles;
  t.instructions += 4 * t.ptiles;
  const int64_t n = N * C * HW;  // + four fp32 per-channel parameters
  return vcost(t, dtype_bytes_of(in, BNF::in_dtype, n) + dtype_bytes_of(in, BNF::out_dtype, n) + C * 16, n * 2);
}

// ---------------- Pool2d ----------------
using PF = Pool2dF;
void pool_check(const Instr& in, const int64_t* numel, const CoreSpec& spec) {
  const char* op = "Pool2d";
  const int64_t NC = in.ip[PF::NC], H = in.ip[PF::H], W = in.ip[PF::W], kh = in.ip[PF::kh], kw = in.ip[PF::kw];
  const int64_t sh = in.ip[PF::sh], sw = in.ip[PF::sw], ph = in.ip[PF::ph], pw = in.ip[PF::pw];
  const int64_t OH = in.ip[PF::OH], OW = in.ip[PF::OW], kind = in.ip[PF::kind], dh = in.ip[PF::dh], dw = in.ip[PF::dw];
  check_range(op, "kernel height", kh, 1, 1 << 20);
  check_range(op, "kernel width", kw, 1, 1 << 20);
  check_range(op, "stride height", sh, 1, 1 << 20);
  check_range(op, "stride width", sw, 1, 1 << 20);
  check_range(op, "dilation height", dh, 1, 1 << 20);
  check_range(op, "dilation width", dw, 1, 1 << 20);
  check_range(op, "padding height", ph, 0, kh);
  check_range(op, "padding width", pw, 0, kw);
  check_range(op, "kind", kind, 0, 1);
  check_range(op, "divisor_override", in.ip[PF::divisor_override], 0, std::numeric_limits<int32_t>::max());
  check_range(op, "H", H, 1, 1 << 24);
  check_range(op, "W", W, 1, 1 << 24);
  check_range(op, "OH", OH, 0, 1 << 24);
  check_range(op, "OW", OW, 0, 1 << 24);
  check_range(op, "NC", NC, 0, kMaxExtent);
  const int64_t in_n = checked_mul(checked_mul(NC, H, op, "NC*H"), W, op, "NC*H*W");
  // the work (every output visits its window, clipped to the input) must stay finite in practice
  const __int128 work = static_cast<__int128>(NC) * OH * OW * std::min(kh, H) * std::min(kw, W);
  if (work > (static_cast<__int128>(1) << 44)) fail(std::string(op) + ": NC*OH*OW*kh*kw is too large");
  const int64_t out_n = checked_mul(checked_mul(NC, OH, op, "NC*OH"), OW, op, "NC*OH*OW");
  check_fits(op, 0, "input [NC,H,W]", in_n, numel);
  check_fits(op, 1, "output [NC,OH,OW]", out_n, numel);
  check_dtype(op, in.ip[PF::in_dtype]);
  check_dtype(op, in.ip[PF::out_dtype]);
}

void pool_plane(const Instr& in, const float* x, float* y) {
  const int64_t H = in.ip[PF::H], W = in.ip[PF::W], kh = in.ip[PF::kh], kw = in.ip[PF::kw], sh = in.ip[PF::sh];
  const int64_t sw = in.ip[PF::sw], ph = in.ip[PF::ph], pw = in.ip[PF::pw], OH = in.ip[PF::OH], OW = in.ip[PF::OW];
  const int64_t kind = in.ip[PF::kind], dov = in.ip[PF::divisor_override], dh = in.ip[PF::dh], dw = in.ip[PF::dw];
  const bool cip = in.ip[PF::count_include_pad] != 0;
  if (kind == 0) {
    for (int64_t oh = 0; oh < OH; ++oh) {
      int64_t hs = oh * sh - ph;
      const int64_t he = std::min(hs + (kh - 1) * dh + 1, H);
      while (hs < 0) hs += dh;
      for (int64_t ow = 0; ow < OW; ++ow) {
        int64_t ws = ow * sw - pw;
        const int64_t we = std::min(ws + (kw - 1) * dw + 1, W);
        while (ws < 0) ws += dw;
        float m = -std::numeric_limits<float>::infinity();
        for (int64_t h = hs; h < he; h += dh) {
          const float* xr = x + h * W;
          for (int64_t w = ws; w < we; w += dw) {
            const float v = xr[w];
            if (v > m || v != v) m = v;
          }
        }
        y[oh * OW + ow] = m;
      }
    }
  } else {
    for (int64_t oh = 0; oh < OH; ++oh) {
      int64_t hs = oh * sh - ph;
      int64_t he = std::min(hs + kh, H + ph);
      const int64_t hsize = he - hs;
      hs = std::max<int64_t>(hs, 0);
      he = std::min(he, H);
      for (int64_t ow = 0; ow < OW; ++ow) {
        int64_t ws = ow * sw - pw;
        int64_t we = std::min(ws + kw, W + pw);
        const int64_t pool = hsize * (we - ws);
        ws = std::max<int64_t>(ws, 0);
        we = std::min(we, W);
        float sum = 0;
        for (int64_t h = hs; h < he; ++h)
          for (int64_t w = ws; w < we; ++w) sum += x[h * W + w];
        int64_t div;
        if (dov) div = dov;
        else if (cip) div = pool;
        else div = (he - hs) * (we - ws);
        y[oh * OW + ow] = sum / static_cast<float>(div);
      }
    }
  }
}

void pool_exec(const Instr& in, OpCtx& ctx) {
  const int64_t NC = in.ip[PF::NC], H = in.ip[PF::H], W = in.ip[PF::W], kh = in.ip[PF::kh], kw = in.ip[PF::kw];
  const int64_t OH = in.ip[PF::OH], OW = in.ip[PF::OW];
  const DType dt = field_dtype(in, PF::out_dtype);
  const float* X = ctx.operand(in, 0);
  float* Y = ctx.operand(in, 1);
  parallel_chunks(NC, OH * OW * kh * kw, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      pool_plane(in, X + c * H * W, Y + c * OH * OW);
      round_row(Y + c * OH * OW, 1, OH * OW, dt);
    }
  });
}
Cost pool_cost(const Instr& in, const CoreSpec& s) {
  const int64_t NC = in.ip[PF::NC], H = in.ip[PF::H], W = in.ip[PF::W], kh = in.ip[PF::kh], kw = in.ip[PF::kw];
  const int64_t OH = in.ip[PF::OH], OW = in.ip[PF::OW];
  const bool avg = in.ip[PF::kind] == 1;
  const bool uniform = in.ip[PF::divisor_override] != 0 || in.ip[PF::count_include_pad] != 0;
  const int64_t taps = kh * kw;
  Tiled t = tiled(s, NC, OH * OW, [&](int64_t N) {
    double c = min_ii(s, N) + (taps - 1) * min_ii(s, 2.0 * N);
    if (avg) c += uniform ? min_ii(s, N) : min_ii(s, 2.0 * N);
    return c;
  });
  t.instructions *= taps + (avg ? 1 : 0);
  const int64_t on = NC * OH * OW;
  return vcost(t, dtype_bytes_of(in, PF::in_dtype, NC * H * W) + dtype_bytes_of(in, PF::out_dtype, on), on * taps);
}

// ---------------- VecTranspose ----------------
using VTF = VecTransposeF;
constexpr int64_t kBankEdge = 32;  // VectorE reshape banks are 32x32 blocks (NKI transpose)
void vt_check(const Instr& in, const int64_t* numel, const CoreSpec& spec) {
  check_range("VecTranspose", "P", in.ip[VTF::P], 0, kMaxExtent);
  check_range("VecTranspose", "F", in.ip[VTF::F], 0, kMaxExtent);
  const int64_t n = checked_mul(in.ip[VTF::P], in.ip[VTF::F], "VecTranspose", "P*F");
  check_fits("VecTranspose", 0, "input [P,F]", n, numel);
  check_fits("VecTranspose", 1, "output [F,P]", n, numel);
  check_dtype("VecTranspose", in.ip[VTF::in_dtype]);
}
void vt_exec(const Instr& in, OpCtx& ctx) {
  const int64_t P = in.ip[VTF::P], F = in.ip[VTF::F];
  const float* X = ctx.operand(in, 0);
  float* Y = ctx.operand(in, 1);
  constexpr int64_t B = 32;
  const int64_t nbp = ceil_div(P, B), nbf = ceil_div(F, B);
  parallel_chunks(nbp * nbf, B * B, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t p0 = (t / nbf) * B, f0 = (t % nbf) * B;
      const int64_t pe = std::min(P, p0 + B), fe = std::min(F, f0 + B);
      for (int64_t f = f0; f < fe; ++f)
        for (int64_t p = p0; p < pe; ++p) Y[f * P + p] = X[p * F + f];
    }
  });
}
Cost vt_cost(const Instr& in, const CoreSpec& s) {
  const int64_t P = in.ip[VTF::P], F = in.ip[VTF::F];
  Tiled t;
  t.ptiles = ceil_div(P, s.partitions);
  t.instructions = t.ptiles * ceil_div(F, kBankEdge);
  t.cycles = t.instructions * min_ii(s, static_cast<double>(kBankEdge));
  if (P * F == 0) t = Tiled{};
  return vcost(t, dtype_bytes_of(in, VTF::in_dtype, 2 * P * F), 0);
}

// ---------------- Scan ----------------
void scan_check(const Instr& in, const int64_t* numel, const CoreSpec& spec) {
  ori_check(in, numel, "Scan", false, 0);
  const int64_t a = in.ip[ScanF::alu];
  if (a != static_cast<int64_t>(Alu::Add) && a != static_cast<int64_t>(Alu::Mul) && a != static_cast<int64_t>(Alu::Max) &&
      a != static_cast<int64_t>(Alu::Min))
    fail("Scan: alu code " + std::to_string(a) + " is not add/mul/max/min");
  check_dtype("Scan", in.ip[ScanF::in_dtype]);
  check_dtype("Scan", in.ip[ScanF::out_dtype]);
}
void scan_exec(const Instr& in, OpCtx& ctx) {
  const int64_t outer = in.ip[ScanF::outer], R = in.ip[ScanF::R], inner = in.ip[ScanF::inner];
  const Alu op = static_cast<Alu>(in.ip[ScanF::alu]);
  const DType dt = field_dtype(in, ScanF::out_dtype);
  const float* X = ctx.operand(in, 0);
  float* Y = ctx.operand(in, 1);
  parallel_chunks(outer * inner, R, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t o = t / inner, i = t % inner;
      const float* x = X + o * R * inner + i;
      float* y = Y + o * R * inner + i;
      if (op == Alu::Add || op == Alu::Mul) {  // torch accumulates cumsum/cumprod of float in double
        double acc = op == Alu::Add ? 0.0 : 1.0;
        for (int64_t r = 0; r < R; ++r) {
          acc = op == Alu::Add ? acc + x[r * inner] : acc * x[r * inner];
          y[r * inner] = static_cast<float>(acc);
        }
      } else {
        const bool mx = op == Alu::Max;
        float acc = R > 0 ? x[0] : 0.f;
        for (int64_t r = 0; r < R; ++r) {
          const float v = x[r * inner];
          if (v != v || (mx ? v >= acc : v <= acc)) acc = (acc != acc) ? acc : v;
          y[r * inner] = acc;
        }
      }
      if (dt != DType::F32) round_row(y, inner, R, dt);
    }
  });
}
Cost scan_cost(const Instr& in, const CoreSpec& s) {
  const int64_t outer = in.ip[ScanF::outer], R = in.ip[ScanF::R], inner = in.ip[ScanF::inner];
  Tiled t = tiled(s, outer * inner, R, [&](int64_t N) { return min_ii(s, 2.0 * N); });
  const int64_t n = outer * R * inner;
  return vcost(t, dtype_bytes_of(in, ScanF::in_dtype, n) + dtype_bytes_of(in, ScanF::out_dtype, n), n);
}

}  // namespace

void register_vector_engine_ops() {
  register_builtin(Op::TensorTensor, tt_exec, tt_check, tt_cost);
  register_builtin(Op::TensorScalar, ts_exec, ts_check, ts_cost);
  register_builtin(Op::TensorReduce, reduce_exec, reduce_check, reduce_cost);
  register_builtin(Op::Softmax, softmax_exec, softmax_check, softmax_cost);
  register_builtin(Op::LayerNorm, ln_exec, ln_check, ln_cost);
  register_builtin(Op::BatchNorm, bn_exec, bn_check, bn_cost);
  register_builtin(Op::Pool2d, pool_exec, pool_check, pool_cost);
  register_builtin(Op::TensorCopy, copy_exec, copy_check, copy_cost);
  register_builtin(Op::VecTranspose, vt_exec, vt_check, vt_cost);
  register_builtin(Op::Scan, scan_exec, scan_check, scan_cost);
}

}  // namespace nemu
