// GpSimd harness: runs a per-emulated-core function over the partitions each GpSimd core owns.
//
// Model (neuron-hardware.md 1.1 GpSimdE): spec.gpsimd_cores (8) processors, each a 512-bit SIMD machine
// (16 fp32 lanes) wired to spec.partitions / gpsimd_cores (16) SBUF partitions. Data rows are mapped onto
// partitions round-robin in tiles of spec.partitions rows: row r lives on partition r % P (tile r / P), so
// core c owns rows {t*P + [c*16, c*16+16)} for every tile t. A core function processes its rows and returns
// its own cycle count; the instruction costs GPSIMD_START + the slowest core's cycles. Host threads run the
// cores concurrently when the work is large enough (thread_pool.h); exceptions thrown by a core function (e.g.
// nemu::fail on a bad index) are rethrown to the caller after all cores finish.
//
// Usage (custom operators included):
//   Cost c = gpsimd_run(ctx.spec, rows, work_elems, [&](const GpSimdCore& core) {
//     core.for_each_run([&](int64_t row_begin, int64_t row_end) { ... });
//     return gpsimd_lane_cycles(core.row_count() * elems_per_row);
//   });
#pragma once

#include <algorithm>
#include <exception>
#include <string>

#include "common.h"
#include "simd.h"
#include "thread_pool.h"

namespace nemu {

constexpr int kGpSimdLanes = 16;  // fp32 lanes of one 512-bit GpSimd core

// Cycles for one core streaming `elements` fp32 values through its 16 lanes.
inline double gpsimd_lane_cycles(int64_t elements) { return static_cast<double>(ceil_div(elements, kGpSimdLanes)); }

struct GpSimdCore {
  int core = 0;             // emulated core id in [0, gpsimd_cores)
  int partitions = 128;     // SBUF partitions
  int part_begin = 0, part_end = 0;  // partitions [part_begin, part_end) owned by this core
  int64_t rows = 0;         // data rows of the whole instruction
  // f(row_begin, row_end) for each contiguous run of data rows on this core's partitions.
  template <class F>
  void for_each_run(F&& f) const {
    for (int64_t t = 0; t * partitions < rows; ++t) {
      const int64_t b = t * partitions + part_begin, e = std::min<int64_t>(t * partitions + part_end, rows);
      if (b < e) f(b, e);
    }
  }
  int64_t row_count() const {
    int64_t n = 0;
    for_each_run([&](int64_t b, int64_t e) { n += e - b; });
    return n;
  }
};

// Runs core_fn(const GpSimdCore&) -> double (that core's cycles) on every emulated core. `work` (elements
// touched in total) decides whether host threads are used. Returns a GpSimd Cost with cycles =
// GPSIMD_START + max over cores; instructions = 1; bytes and flops are left to the caller.
template <class F>
Cost gpsimd_run(const CoreSpec& s, int64_t rows, int64_t work, F&& core_fn) {
  if (s.gpsimd_cores <= 0) fail("GpSimd engine: this NeuronCore generation has no GpSimd cores");
  const int ncores = s.gpsimd_cores;
  const int per = std::max(1, s.partitions / ncores);
  double cyc[256] = {};
  std::exception_ptr err[256];
  const int nc = std::min(ncores, 256);
  auto one = [&](int c) {
    GpSimdCore core;
    core.core = c;
    core.partitions = s.partitions;
    core.part_begin = std::min(c * per, s.partitions);
    core.part_end = c == nc - 1 ? s.partitions : std::min((c + 1) * per, s.partitions);
    core.rows = rows;
    try {
      cyc[c] = core_fn(static_cast<const GpSimdCore&>(core));
    } catch (...) {
      err[c] = std::current_exception();
    }
  };
  if (work >= kParallelThreshold) {
    parallel_for(nc, [&](int64_t c) { one(static_cast<int>(c)); });
  } else {
    for (int c = 0; c < nc; ++c) one(c);
  }
  for (int c = 0; c < nc; ++c)
    if (err[c]) std::rethrow_exception(err[c]);
  Cost cost;
  cost.engine = Engine::GpSimd;
  cost.cycles = s.gpsimd_start + *std::max_element(cyc, cyc + nc);
  cost.instructions = 1;
  return cost;
}

}  // namespace nemu
