// GpSimd kernels on the gpsimd_harness.h harness: Iota, Select, Gather.
//
// Cost mapping (NKI-ISA iota / affine_select: GPSIMD_START + N, reference neuron-hardware.md 1.1): each op
// is charged by gpsimd_cost(): GPSIMD_START + the slowest emulated core. A core streams its elements
// through spec.gpsimd_lanes (16) fp32 lanes (ceil(elements / 16) cycles) and owns 16 partitions, so for data
// laid out as [128, N] each core needs N cycles: cost = GPSIMD_START + N.
//  * Iota / Select (elementwise): numel elements laid out as [P, F = ceil(numel / P)] (row r = elements
//    [r*F, r*F + F)).
//  * Gather: the n output rows are the data rows (row i on partition i % 128), D elements each.
// bytes = elements read + written, each charged at its dtype's size (fp32 for indices and conditions).
#include <cmath>
#include <string>

#include "gpsimd_harness.h"
#include "select_row.h"
#include "strided.h"

namespace nemu {
namespace {

// Rows of an elementwise op over n elements laid out as [P, F]: row r holds elements [r*F, min(r*F+F, n)).
struct FlatRows {
  int64_t n, F, rows;
  FlatRows(const CoreSpec& s, int64_t n_) : n(n_), F(std::max<int64_t>(1, ceil_div(n_, s.partitions))), rows(n_ > 0 ? ceil_div(n_, F) : 0) {}
  int64_t elements(int64_t rb, int64_t re) const { return std::max<int64_t>(0, std::min(re * F, n) - rb * F); }
};

// ---------------- Iota ----------------
using IF = IotaF;
void iota_check(const Instr& in, const int64_t* numel, const CoreSpec& spec) {
  if (in.ip[IF::numel] < 0) fail("Iota: negative numel " + std::to_string(in.ip[IF::numel]));
  check_fits("Iota", 0, "output", in.ip[IF::numel], numel);
}
void iota_exec(const Instr& in, OpCtx& ctx) {
  const FlatRows fr(ctx.spec, in.ip[IF::numel]);
  float* O = ctx.operand(in, 0);
  const double a = in.fp[IF::start], b = in.fp[IF::step];
  gpsimd_run(ctx.spec, fr.rows, fr.n, [&](const GpSimdCore& core) {
    core.for_each_run([&](int64_t rb, int64_t re) {
      const int64_t e = std::min(re * fr.F, fr.n);
      for (int64_t i = rb * fr.F; i < e; ++i) O[i] = static_cast<float>(a + b * static_cast<double>(i));
    });
  });
}
Cost iota_cost(const Instr& in, const CoreSpec& s) {
  const FlatRows fr(s, in.ip[IF::numel]);
  Cost c = gpsimd_cost(s, fr.rows, [&](int64_t b, int64_t e) { return fr.elements(b, e); });
  c.bytes = fr.n * 4;
  c.flops = fr.n * 2;
  return c;
}

// ---------------- Select ----------------
using SF = SelectF;
void select_check(const Instr& in, const int64_t* numel, const CoreSpec& spec) {
  check_views(in, 4, numel, "Select");
  check_dtype("Select", in.ip[SF::in_dtype]);
  check_dtype("Select", in.ip[SF::out_dtype]);
}
void select_exec(const Instr& in, OpCtx& ctx) {
  const auto p = make_plan<4>(in);
  const float* C = ctx.operand(in, 0);
  const float* A = ctx.operand(in, 1);
  const float* B = ctx.operand(in, 2);
  float* O = ctx.operand(in, 3);
  const DType dt = field_dtype(in, SF::out_dtype);
  const FlatRows fr(ctx.spec, p.numel);
  gpsimd_run(ctx.spec, fr.rows, fr.n, [&](const GpSimdCore& core) {
    core.for_each_run([&](int64_t rb, int64_t re) {
      const int64_t e = std::min(re * fr.F, fr.n);
      for_rows_in_range(p, rb * fr.F, e, [&](const int64_t* off, int64_t m, const int64_t* st) {
        select_row(C + off[0], st[0], A + off[1], st[1], B + off[2], st[2], O + off[3], st[3], m);
        round_row(O + off[3], st[3], m, dt);
      });
    });
  });
}
Cost select_cost(const Instr& in, const CoreSpec& s) {
  const FlatRows fr(s, view_numel(in));
  Cost c = gpsimd_cost(s, fr.rows, [&](int64_t b, int64_t e) { return fr.elements(b, e); });
  c.bytes = fr.n * 4 /* fp32 condition */ + dtype_bytes_of(in, SF::in_dtype, 2 * fr.n) + dtype_bytes_of(in, SF::out_dtype, fr.n);
  c.flops = fr.n;
  return c;
}

// ---------------- Gather ----------------
using GF = GatherF;
void gather_check(const Instr& in, const int64_t* numel, const CoreSpec& spec) {
  const int64_t n = in.ip[GF::n], rows = in.ip[GF::rows], D = in.ip[GF::D];
  for (auto [v, what] : {std::pair<int64_t, const char*>{n, "n"}, {rows, "rows"}, {D, "D"}})
    check_range("Gather", what, v, 0, int64_t{1} << 40);  // each bounded: with D = 0 the buffers bound neither n nor rows
  const int64_t tab = checked_mul(rows, D, "Gather", "rows*D");
  const int64_t out = checked_mul(n, D, "Gather", "n*D");
  check_fits("Gather", 0, "table [rows,D]", tab, numel);
  check_fits("Gather", 1, "index [n]", n, numel);
  check_fits("Gather", 2, "output [n,D]", out, numel);
  check_dtype("Gather", in.ip[GF::in_dtype]);
}
void gather_exec(const Instr& in, OpCtx& ctx) {
  const int64_t n = in.ip[GF::n], rows = in.ip[GF::rows], D = in.ip[GF::D];
  const float* T = ctx.operand(in, 0);
  const float* I = ctx.operand(in, 1);
  float* O = ctx.operand(in, 2);
  gpsimd_run(ctx.spec, n, n * D, [&](const GpSimdCore& core) {
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
    });
  });
}
Cost gather_cost(const Instr& in, const CoreSpec& s) {
  const int64_t n = in.ip[GF::n], D = in.ip[GF::D];
  Cost c = gpsimd_cost(s, n, [&](int64_t b, int64_t e) { return (e - b) * D; });
  c.bytes = dtype_bytes_of(in, GF::in_dtype, n * D * 2) + n * 4;
  c.flops = 0;
  return c;
}

}  // namespace

void register_gpsimd_engine_ops() {
  register_builtin(Op::Iota, iota_exec, iota_check, iota_cost);
  register_builtin(Op::Select, select_exec, select_check, select_cost);
  register_builtin(Op::Gather, gather_exec, gather_check, gather_cost);
}

}  // namespace nemu
