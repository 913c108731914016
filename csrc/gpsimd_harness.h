// GpSimd harness: runs a per-emulated-core function over the partitions each GpSimd core owns.
//
// Model (neuron-hardware.md 1.1 GpSimdE): spec.gpsimd_cores (8) processors, each a 512-bit SIMD machine
// (16 fp32 lanes) wired to spec.partitions / gpsimd_cores (16) SBUF partitions. Data rows are mapped onto
// partitions round-robin in tiles of spec.partitions rows: row r lives on partition r % P (tile r / P), so
// core c owns rows {t*P + [c*16, c*16+16)} for every tile t. gpsimd_run() runs a core function on every
// emulated core (host threads run them concurrently when the work is large enough, thread_pool.h; exceptions
// thrown by a core function, e.g. nemu::fail on a bad index, are rethrown after all cores finish).
// gpsimd_cost() is the matching cost: GPSIMD_START + the slowest core's cycles, where a core streaming E
// elements through its lanes takes ceil(E / lanes) cycles.
//
// Usage (custom operators included):
//   exec: gpsimd_run(ctx.spec, rows, work_elems, [&](const GpSimdCore& core) {
//           core.for_each_run([&](int64_t row_begin, int64_t row_end) { ... });
//         });
//   cost: gpsimd_cost(spec, rows, [&](int64_t row_begin, int64_t row_end) { return elements in those rows; });
#pragma once

#include <algorithm>
#include <exception>
#include <string>

#include "common.h"
#include "simd.h"
#include "thread_pool.h"

namespace nemu {


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

inline GpSimdCore gpsimd_core(const CoreSpec& s, int c, int64_t rows) {
  const int per = std::max(1, s.partitions / s.gpsimd_cores);
  GpSimdCore core;
  core.core = c;
  core.partitions = s.partitions;
  core.part_begin = std::min(c * per, s.partitions);
  core.part_end = c == s.gpsimd_cores - 1 ? s.partitions : std::min((c + 1) * per, s.partitions);
  core.rows = rows;
  return core;
}

inline void require_gpsimd(const CoreSpec& s) {
  if (s.gpsimd_cores <= 0 || s.gpsimd_cores > 256 || s.gpsimd_lanes <= 0)
    fail("GpSimd engine: this NeuronCore generation has no GpSimd cores");
}

// Runs core_fn(const GpSimdCore&) on every emulated core; `work` (elements touched in total) decides
// whether host threads are used.
template <class F>
void gpsimd_run(const CoreSpec& s, int64_t rows, int64_t work, F&& core_fn) {
  require_gpsimd(s);
  const int nc = s.gpsimd_cores;
  std::exception_ptr err[256];
  auto one = [&](int c) {
    try {
      core_fn(static_cast<const GpSimdCore&>(gpsimd_core(s, c, rows)));
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
}

// GPSIMD_START + the slowest core; elements(row_begin, row_end) counts what a core streams for its rows.
template <class F>
Cost gpsimd_cost(const CoreSpec& s, int64_t rows, F&& elements) {
  require_gpsimd(s);
  double slowest = 0;
  for (int c = 0; c < s.gpsimd_cores; ++c) {
    int64_t n = 0;
    gpsimd_core(s, c, rows).for_each_run([&](int64_t b, int64_t e) { n += elements(b, e); });
    slowest = std::max(slowest, static_cast<double>(ceil_div(n, s.gpsimd_lanes)));
  }
  Cost cost;
  cost.engine = Engine::GpSimd;
  cost.cycles = s.gpsimd_start + slowest;
  cost.instructions = 1;
  return cost;
}

}  // namespace nemu
