// Shared helpers for the VectorE / ScalarE / GpSimdE / DMA kernels:
//  * StridedPlan: iteration over the "view layout" (isa.h) of K operands. Unit dims are dropped and
//    dims that are contiguous in every operand are merged, so a same-shape contiguous op becomes one
//    1-D row. The kernel callback sees rows of the innermost dim: f(off[K], n, inner_stride[K]).
//  * for_each_row(): runs the rows, split by element ranges over the thread pool above kParallelThreshold.
//  * Cost helpers: the tiling rule shared by all on-chip engines (rows on the 128 partitions, the free
//    axis cut into instructions of at most spec.free_tile elements per partition).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <string>

#include "checked.h"
#include "dtype_convert.h"
#include "isa.h"
#include "simd.h"
#include "thread_pool.h"

namespace nemu {

template <int K>
struct StridedPlan {
  int ndim = 1;
  int64_t shape[kMaxDims] = {1};
  int64_t stride[K][kMaxDims] = {};
  int64_t offset[K] = {};
  int64_t numel = 0;
};

template <int K>
inline StridedPlan<K> make_plan(const Instr& in) {
  StridedPlan<K> p;
  const int nd = static_cast<int>(std::min<int64_t>(std::max<int64_t>(in.ip[0], 0), kMaxDims));
  View v[K];
  for (int j = 0; j < K; ++j) {
    v[j] = view_of(in, j);
    p.offset[j] = v[j].offset;
  }
  p.numel = view_numel(in);
  int64_t sh[kMaxDims], st[K][kMaxDims];
  int n = 0;
  for (int d = 0; d < nd; ++d) {
    if (v[0].shape[d] == 1) continue;
    sh[n] = v[0].shape[d];
    for (int j = 0; j < K; ++j) st[j][n] = v[j].stride[d];
    ++n;
  }
  int m = 0;
  for (int d = 0; d < n; ++d) {
    bool merge = m > 0;
    for (int j = 0; j < K && merge; ++j) merge = p.stride[j][m - 1] == st[j][d] * sh[d];
    if (merge) {
      p.shape[m - 1] *= sh[d];
      for (int j = 0; j < K; ++j) p.stride[j][m - 1] = st[j][d];
    } else {
      p.shape[m] = sh[d];
      for (int j = 0; j < K; ++j) p.stride[j][m] = st[j][d];
      ++m;
    }
  }
  if (m == 0) {
    m = 1;
    p.shape[0] = 1;
    for (int j = 0; j < K; ++j) p.stride[j][0] = 1;
  }
  p.ndim = m;
  return p;
}

// Rows covering the linear (row-major) element range [b, e) of the plan.
template <int K, class F>
inline void for_rows_in_range(const StridedPlan<K>& p, int64_t b, int64_t e, F&& f) {
  if (b >= e) return;
  const int L = p.ndim - 1;
  int64_t idx[kMaxDims], off[K], inner_st[K];
  int64_t r = b;
  for (int d = L; d >= 0; --d) {
    idx[d] = r % p.shape[d];
    r /= p.shape[d];
  }
  for (int j = 0; j < K; ++j) {
    off[j] = p.offset[j];
    for (int d = 0; d <= L; ++d) off[j] += idx[d] * p.stride[j][d];
    inner_st[j] = p.stride[j][L];
  }
  const int64_t inner = p.shape[L];
  while (b < e) {
    const int64_t n = std::min(inner - idx[L], e - b);
    f(static_cast<const int64_t*>(off), n, static_cast<const int64_t*>(inner_st));
    b += n;
    if (b >= e) break;
    idx[L] += n;
    for (int j = 0; j < K; ++j) off[j] += n * p.stride[j][L];
    for (int d = L; d > 0 && idx[d] == p.shape[d]; --d) {
      idx[d] = 0;
      for (int j = 0; j < K; ++j) off[j] += p.stride[j][d - 1] - p.shape[d] * p.stride[j][d];
      ++idx[d - 1];
    }
  }
}

// Run `f` over every row of the plan, in parallel for large views (each thread a contiguous element range).
template <int K, class F>
inline void for_each_row(const StridedPlan<K>& p, F&& f) {
  const int64_t n = p.numel;
  if (n <= 0) return;
  if (n < kParallelThreshold) {
    for_rows_in_range(p, 0, n, f);
    return;
  }
  parallel_ranges(n, [&](int64_t b, int64_t e) { for_rows_in_range(p, b, e, f); });
}

// Parallel loop over [0, n) items of `work_per_item` elements each; `f(begin, end)` gets a chunk.
template <class F>
inline void parallel_chunks(int64_t n, int64_t work_per_item, F&& f) {
  if (n <= 0) return;
  if (n * std::max<int64_t>(work_per_item, 1) < kParallelThreshold) {
    f(int64_t{0}, n);
    return;
  }
  parallel_ranges(n, f);
}

// Round a (possibly strided) row to an emulated dtype in place.
inline void round_row(float* o, int64_t so, int64_t n, DType d) {
  if (d == DType::F32) return;
  if (so == 1) {
    round_array(o, o, n, d);
  } else {
    for (int64_t i = 0; i < n; ++i) o[i * so] = round_to(o[i * so], d);
  }
}

// ---- argument checking ----
inline void check_fits(const char* op, int j, const char* what, int64_t need, const int64_t* numel) {
  if (need > numel[j])
    fail(std::string(op) + " operand " + std::to_string(j) + " (" + what + "): needs " + std::to_string(need) +
         " elements, buffer has " + std::to_string(numel[j]));
}
inline DType check_dtype(const char* op, int64_t code) {
  if (code < 0 || code >= kNumDTypes) fail(std::string(op) + ": unknown out_dtype code " + std::to_string(code));
  return static_cast<DType>(code);
}
inline void check_range(const char* op, const char* what, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi)
    fail(std::string(op) + ": " + what + " " + std::to_string(v) + " not in [" + std::to_string(lo) + ", " +
         std::to_string(hi) + "]");
}
// Checks the k views, and bounds the work: the iteration count may not exceed the elements of the written
// (last) operand's buffer, so zero strides cannot turn a small artifact into an endless loop.
inline void check_views(const Instr& in, int k, const int64_t* numel, const char* op) {
  for (int j = 0; j < k; ++j) check_view(in, j, numel[j], op);
  const int64_t n = view_numel(in);
  if (k > 0 && n > numel[k - 1])
    fail(std::string(op) + ": view of " + std::to_string(n) + " elements writes a buffer of " +
         std::to_string(numel[k - 1]) + " elements");
}
inline DType field_dtype(const Instr& in, int slot) { return static_cast<DType>(in.ip[slot]); }
// Bytes of n elements stored in the dtype of field `slot` (checked at load).
inline int64_t dtype_bytes_of(const Instr& in, int slot, int64_t n) { return n * dtype_bytes(field_dtype(in, slot)); }

// ---- cost helpers ----
// Instructions and cycles of an op over `rows` independent partition rows of `free` elements each:
// rows go onto the partitions (ceil(rows / P) partition tiles), the free axis is cut into instructions of
// at most spec.free_tile elements; `per_instr(N)` is the cost of one instruction of N elements per partition.
struct Tiled {
  int64_t ptiles = 0, chunks = 0, instructions = 0;
  double cycles = 0;
};
template <class F>
inline Tiled tiled(const CoreSpec& s, int64_t rows, int64_t free, F&& per_instr) {
  Tiled t;
  if (rows <= 0 || free <= 0) return t;
  t.ptiles = ceil_div(rows, s.partitions);
  const int64_t tile = s.free_tile;
  t.chunks = ceil_div(free, tile);
  const int64_t full = free / tile, rem = free % tile;
  double per_tile = static_cast<double>(full) * per_instr(tile) + (rem ? per_instr(rem) : 0.0);
  t.cycles = per_tile * static_cast<double>(t.ptiles);
  t.instructions = t.chunks * t.ptiles;
  return t;
}
// Elementwise ops don't care about layout: numel elements are laid out as [P, ceil(numel / P)].
template <class F>
inline Tiled tiled_elementwise(const CoreSpec& s, int64_t numel, F&& per_instr) {
  if (numel <= 0) return Tiled{};
  const int64_t rows = std::min<int64_t>(numel, s.partitions);
  return tiled(s, rows, ceil_div(numel, s.partitions), per_instr);
}
inline double min_ii(const CoreSpec& s, double n) { return std::max<double>(s.min_ii, n); }


// ---- vectorisable math (inlined into every NEMU_SIMD_DISPATCH variant, simd.h) ----
// expf, Cephes polynomial (|rel err| < 2e-7, like the SLEEF u10 exp torch uses), 2^n applied in two
// halves so results stay correct down into the denormals; NaN propagates, overflow -> inf.
inline __attribute__((always_inline)) float fast_expf(float x) {
  const bool nan = x != x;
  float xc = nan ? 0.f : x;
  xc = std::min(std::max(xc, -104.0f), 88.8f);
  const float fx = std::floor(xc * 1.44269504088896341f + 0.5f);
  float r = xc - fx * 0.693359375f;
  r = r - fx * -2.12194440e-4f;
  const float z = r * r;
  float y = ((((1.9875691500E-4f * r + 1.3981999507E-3f) * r + 8.3334519073E-3f) * r + 4.1665795894E-2f) * r +
             1.6666665459E-1f) * r + 5.0000001201E-1f;
  y = y * z + r + 1.0f;
  const int32_t n = static_cast<int32_t>(fx);
  const int32_t n1 = n / 2, n2 = n - n1;
  const int32_t b1 = (n1 + 127) << 23, b2 = (n2 + 127) << 23;
  float p1, p2;
  std::memcpy(&p1, &b1, 4);
  std::memcpy(&p2, &b2, 4);
  const float res = y * p1 * p2;
  return nan ? x : res;
}
// tanh: Cephes odd polynomial below |x| 0.625, 1 - 2 / (exp(2|x|) + 1) above (~2 ulp).
inline __attribute__((always_inline)) float tanh_fast(float v) {
  const float a = std::fabs(v);
  const float z = v * v;
  const float small =
      ((((-5.70498872745E-3f * z + 2.06390887954E-2f) * z - 5.37397155531E-2f) * z + 1.33314422036E-1f) * z -
       3.33332819422E-1f) * z * v + v;
  const float e = fast_expf(2.f * a);
  const float big = std::copysign(1.f - 2.f / (e + 1.f), v);
  return a < 0.625f ? small : big;
}
// erf as torch's vectorised CPU kernels compute it (Abramowitz-Stegun 7.1.26, |abs err| < 1.5e-7).
inline __attribute__((always_inline)) float erf_as(float x) {
  const float ax = std::fabs(x);
  const float t = 1.0f / (0.3275911f * ax + 1.0f);
  const float r = (((1.061405429f * t + -1.453152027f) * t + 1.421413741f) * t + -0.284496736f) * t + 0.254829592f;
  const float e = fast_expf(-(x * x));
  const float v = 1.0f - r * t * e;
  return std::copysign(v, x);
}

}  // namespace nemu
