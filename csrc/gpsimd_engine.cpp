// GpSimd kernels on the gpsimd_harness.h harness: Iota, Select, Gather.
//
// Cost mapping (NKI-ISA iota / affine_select: GPSIMD_START + N, reference neuron-hardware.md 1.1): each op
// runs once through gpsimd_run(), which charges GPSIMD_START + the slowest emulated core. A core streams
// its elements through 16 fp32 lanes (ceil(elements / 16) cycles), and owns 16 partitions, so for data
// laid out as [128, N] each core needs N cycles: cost = GPSIMD_START + N.
//  * Iota / Select (elementwise): numel elements laid out as [P, F = ceil(numel / P)] (row r = elements
//    [r*F, r*F + F)).
//  * Gather: the n output rows are the data rows (row i on partition i % 128), D elements each.
// bytes = elements read + written * 4.
#include <cmath>
#include <string>

#include "gpsimd_harness.h"
#include "strided.h"

namespace nemu {
namespace {

// ---------------- Iota ----------------
void iota_check(const Instr& in, const int64_t* numel, const CoreSpec& spec) {
  if (in.ip[0] < 0) fail("Iota: negative numel " + std::to_string(in.ip[0]));
  check_fits("Iota", 0, "output", in.ip[0], numel);
}
Cost iota_exec(const Instr& in, OpCtx& ctx) {
  const int64_t n = in.ip[0];
  float* O = ctx.operand(in, 0);
  const double a = in.fp[0], b = in.fp[1];
  const int64_t F = std::max<int64_t>(1, ceil_div(n, ctx.spec.partitions));
  const int64_t rows = ceil_div(n, F);
  Cost c = gpsimd_run(ctx.spec, rows, n, [&](const GpSimdCore& core) {
    int64_t cnt = 0;
    core.for_each_run([&](int64_t rb, int64_t re) {
      const int64_t e = std::min(re * F, n);
      for (int64_t i = rb * F; i < e; ++i) O[i] = static_cast<float>(a + b * static_cast<double>(i));
      cnt += e - rb * F;
    });
    return gpsimd_lane_cycles(cnt);
  });
  c.bytes = n * 4;
  c.flops = n * 2;
  return c;
}

// ---------------- Select ----------------
void select_check(const Instr& in, const int64_t* numel, const CoreSpec& spec) {
  check_views(in, 4, numel, "Select");
  check_dtype("Select", in.ip[41]);
}
NEMU_ALWAYS_INLINE void select_row_body(const float* c, int64_t sc, const float* a, int64_t sa, const float* b, int64_t sb,
                                        float* o, int64_t so, int64_t n) {
  if (sc == 1 && sa == 1 && sb == 1 && so == 1) {
    for (int64_t i = 0; i < n; ++i) o[i] = c[i] != 0.f ? a[i] : b[i];
  } else {
    for (int64_t i = 0; i < n; ++i) o[i * so] = c[i * sc] != 0.f ? a[i * sa] : b[i * sb];
  }
}
NEMU_SIMD_DISPATCH(select_row,
                   (const float* c, int64_t sc, const float* a, int64_t sa, const float* b, int64_t sb, float* o,
                    int64_t so, int64_t n),
                   (c, sc, a, sa, b, sb, o, so, n))
Cost select_exec(const Instr& in, OpCtx& ctx) {
  const auto p = make_plan<4>(in);
  const float* C = ctx.operand(in, 0);
  const float* A = ctx.operand(in, 1);
  const float* B = ctx.operand(in, 2);
  float* O = ctx.operand(in, 3);
  const DType dt = static_cast<DType>(in.ip[41]);
  const int64_t n = p.numel;
  const int64_t F = std::max<int64_t>(1, ceil_div(n, ctx.spec.partitions));
  const int64_t rows = n > 0 ? ceil_div(n, F) : 0;
  Cost c = gpsimd_run(ctx.spec, rows, n, [&](const GpSimdCore& core) {
    int64_t cnt = 0;
    core.for_each_run([&](int64_t rb, int64_t re) {
      const int64_t e = std::min(re * F, n);
      for_rows_in_range(p, rb * F, e, [&](const int64_t* off, int64_t m, const int64_t* st) {
        select_row(C + off[0], st[0], A + off[1], st[1], B + off[2], st[2], O + off[3], st[3], m);
        round_row(O + off[3], st[3], m, dt);
      });
      cnt += e - rb * F;
    });
    return gpsimd_lane_cycles(cnt);
  });
  c.bytes = n * 16;
  c.flops = n;
  return c;
}

// ---------------- Gather ----------------
void gather_check(const Instr& in, const int64_t* numel, const CoreSpec& spec) {
  const int64_t n = in.ip[0], rows = in.ip[1], D = in.ip[2];
  const int64_t tab = checked_mul(rows, D, "Gather", "rows*D");
  const int64_t out = checked_mul(n, D, "Gather", "n*D");
  check_fits("Gather", 0, "table [rows,D]", tab, numel);
  check_fits("Gather", 1, "index [n]", n, numel);
  check_fits("Gather", 2, "output [n,D]", out, numel);
}
Cost gather_exec(const Instr& in, OpCtx& ctx) {
  const int64_t n = in.ip[0], rows = in.ip[1], D = in.ip[2];
  const float* T = ctx.operand(in, 0);
  const float* I = ctx.operand(in, 1);
  float* O = ctx.operand(in, 2);
  Cost c = gpsimd_run(ctx.spec, n, n * D, [&](const GpSimdCore& core) {
    int64_t cnt = 0;
    core.for_each_run([&](int64_t rb, int64_t re) {
      for (int64_t i = rb; i < re; ++i) {
        const float v = I[i];
        if (!(v >= 0.f && v < static_cast<float>(rows)) || v != std::floor(v)) {
          char buf[64];
          std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
          fail(std::string("Gather: index ") + buf + " at position " + std::to_string(i) +
               " is out of range for a table of " + std::to_string(rows) + " rows");
        }
        const int64_t r = static_cast<int64_t>(v);
        std::memcpy(O + i * D, T + r * D, static_cast<size_t>(D) * sizeof(float));
      }
      cnt += (re - rb) * D;
    });
    return gpsimd_lane_cycles(cnt);
  });
  c.bytes = (n * D * 2 + n) * 4;
  c.flops = 0;
  return c;
}

}  // namespace

void register_gpsimd_engine_ops() {
  register_op(Op::Iota, "Iota", Engine::GpSimd, 1, 1, iota_exec, iota_check);
  register_op(Op::Select, "Select", Engine::GpSimd, 4, 4, select_exec, select_check);
  register_op(Op::Gather, "Gather", Engine::GpSimd, 3, 3, gather_exec, gather_check);
}

}  // namespace nemu
