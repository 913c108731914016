// ScalarE kernel: Activation, out = func(in * scale + bias) (param: LeakyRelu slope / Elu alpha), torch semantics.
//
// Cost mapping (NKI-ISA `activation`, reference neuron-hardware.md 1.1): elementwise, numel elements laid out
// as [partitions, F = ceil(numel/partitions)], F cut into instructions of at most spec.free_tile elements per
// partition; each instruction costs max(MIN_II, N) ScalarE cycles (the multiply-add of scale/bias is free in
// the pipeline). bytes = elements read and written at their dtypes' sizes; flops ~ 1 per element (+2 for a
// non-trivial scale/bias).
// Math: exp / sigmoid / silu / gelu(erf) use the vectorisable fast_expf / erf_as of strided.h (the same
// accuracy class as torch's vectorised CPU kernels); the rest use std:: math.
// No FP-exception semantics are relied on; this lets GCC if-convert and vectorise the math loops (clamps, floor).
#pragma GCC optimize("no-trapping-math")
#include <cmath>

#include "strided.h"

namespace nemu {
namespace {

#define AI inline __attribute__((always_inline))

template <class Fn>
AI void un_loop(const float* x, int64_t sx, float* y, int64_t sy, int64_t n, float sc, float bi, bool affine, Fn fn) {
  if (sx == 1 && sy == 1) {
    if (affine) for (int64_t i = 0; i < n; ++i) y[i] = fn(x[i] * sc + bi);
    else for (int64_t i = 0; i < n; ++i) y[i] = fn(x[i]);
  } else {
    if (affine) for (int64_t i = 0; i < n; ++i) y[i * sy] = fn(x[i * sx] * sc + bi);
    else for (int64_t i = 0; i < n; ++i) y[i * sy] = fn(x[i * sx]);
  }
}

AI float softplus1(float v) { return v > 20.f ? v : std::log1p(std::exp(v)); }

NEMU_ALWAYS_INLINE void act_row_body(int func, const float* x, int64_t sx, float* y, int64_t sy, int64_t n, float sc, float bi,
                                     float prm) {
  const bool aff = !(sc == 1.f && bi == 0.f);
#define CASE(F, EXPR) \
  case ActFunc::F: un_loop(x, sx, y, sy, n, sc, bi, aff, [prm](float v) { (void)prm; return EXPR; }); break;
  switch (static_cast<ActFunc>(func)) {
    CASE(Identity, v)
    CASE(Relu, v < 0.f ? 0.f : v)
    CASE(Gelu, v * 0.5f * (1.f + erf_as(v * 0.70710678118654752440f)))
    CASE(GeluTanh, 0.5f * v * (1.f + tanh_fast(0.7978845608028654f * (v + 0.044715f * v * v * v))))
    CASE(Sigmoid, 1.f / (1.f + fast_expf(-v)))
    CASE(Tanh, tanh_fast(v))
    CASE(Exp, fast_expf(v))
    CASE(Log, std::log(v))
    CASE(Silu, v / (1.f + fast_expf(-v)))
    CASE(Sqrt, std::sqrt(v))
    CASE(Rsqrt, 1.f / std::sqrt(v))
    CASE(Reciprocal, 1.f / v)
    CASE(Abs, std::fabs(v))
    CASE(Square, v * v)
    CASE(Erf, std::erf(v))
    CASE(Sin, std::sin(v))
    CASE(Cos, std::cos(v))
    CASE(Softplus, softplus1(v))
    CASE(Sign, static_cast<float>((v > 0.f) - (v < 0.f)))
    CASE(Floor, std::floor(v))
    CASE(Ceil, std::ceil(v))
    CASE(Round, std::nearbyint(v))
    CASE(Log1p, std::log1p(v))
    CASE(Expm1, std::expm1(v))
    CASE(LogicalNot, v == 0.f ? 1.f : 0.f)
    CASE(Hardsigmoid, std::min(std::max(v + 3.f, 0.f), 6.f) / 6.f)
    CASE(Hardswish, v * std::min(std::max(v + 3.f, 0.f), 6.f) / 6.f)
    CASE(Mish, v * tanh_fast(std::log1p(std::exp(v))))
    CASE(Elu, v > 0.f ? v : prm * std::expm1(v))
    CASE(LeakyRelu, v > 0.f ? v : v * prm)
    CASE(Trunc, std::trunc(v))
    CASE(Tan, std::tan(v))
    CASE(Sinh, std::sinh(v))
    CASE(Cosh, std::cosh(v))
    CASE(Asin, std::asin(v))
    CASE(Acos, std::acos(v))
    CASE(Atan, std::atan(v))
    CASE(Asinh, std::asinh(v))
    CASE(Acosh, std::acosh(v))
    CASE(Atanh, std::atanh(v))
    CASE(Log2, std::log2(v))
    CASE(Log10, std::log10(v))
    CASE(Exp2, std::exp2(v))
    CASE(Erfc, std::erfc(v))
    CASE(Lgamma, std::lgamma(v))
    CASE(IsNan, std::isnan(v) ? 1.f : 0.f)
    CASE(IsInf, std::isinf(v) ? 1.f : 0.f)
    CASE(Signbit, std::signbit(v) ? 1.f : 0.f)
    default: break;
  }
#undef CASE
}
NEMU_SIMD_DISPATCH(act_row,
                   (int func, const float* x, int64_t sx, float* y, int64_t sy, int64_t n, float sc, float bi, float prm),
                   (func, x, sx, y, sy, n, sc, bi, prm))

using AF = ActivationF;
void act_check(const Instr& in, const int64_t* numel, const CoreSpec& spec) {
  check_views(in, 2, numel, "Activation");
  check_range("Activation", "activation function code", in.ip[AF::func], 0, static_cast<int64_t>(ActFunc::kCount) - 1);
  check_dtype("Activation", in.ip[AF::in_dtype]);
  check_dtype("Activation", in.ip[AF::out_dtype]);
}

void act_exec(const Instr& in, OpCtx& ctx) {
  const auto p = make_plan<2>(in);
  const float* X = ctx.operand(in, 0);
  float* Y = ctx.operand(in, 1);
  const int func = static_cast<int>(in.ip[AF::func]);
  const DType dt = field_dtype(in, AF::out_dtype);
  const float sc = static_cast<float>(in.fp[AF::scale]), bi = static_cast<float>(in.fp[AF::bias]);
  const float prm = static_cast<float>(in.fp[AF::param]);
  for_each_row(p, [&](const int64_t* off, int64_t n, const int64_t* st) {
    act_row(func, X + off[0], st[0], Y + off[1], st[1], n, sc, bi, prm);
    round_row(Y + off[1], st[1], n, dt);
  });
}

Cost act_cost(const Instr& in, const CoreSpec& s) {
  const int64_t n = view_numel(in);
  const Tiled t = tiled_elementwise(s, n, [&](int64_t N) { return min_ii(s, N); });
  const bool affine = !(static_cast<float>(in.fp[AF::scale]) == 1.f && static_cast<float>(in.fp[AF::bias]) == 0.f);
  Cost c;
  c.engine = Engine::Scalar;
  c.cycles = t.cycles;
  c.instructions = t.instructions;
  c.bytes = dtype_bytes_of(in, AF::in_dtype, n) + dtype_bytes_of(in, AF::out_dtype, n);
  c.flops = n * (affine ? 3 : 1);
  return c;
}

}  // namespace

void register_scalar_engine_ops() {
  register_builtin(Op::Activation, act_exec, act_check, act_cost);
}

}  // namespace nemu
