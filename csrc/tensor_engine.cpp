// TensorE: MatMul, Conv2d (implicit GEMM) and Transpose (through identity).
//
// Numerics: inputs are rounded to in_dtype (bf16/fp16/tf32/fp8 round-to-nearest-even, see dtype_convert.cpp)
// into scratch, then an fp32 GEMM with fp32 accumulation runs on OpenBLAS (or MKL's sgemm, NEMU_SGEMM). A product of two values with
// <= 11-bit significands is exact in fp32, so this reproduces TensorE (fp32 PSUM accumulation) up to the
// summation order. Out is fp32 storage, optionally rounded to out_dtype at the end. In bf16/fp8/fp16 modes a
// native 16-bit GEMM (native_gemm.h) may run instead, on inputs rounded into 16-bit scratch and on constants the
// compiler stored in 16 bits (read in place): same exact products and fp32 accumulation (matmul_native).
//
// Cost: a pure function of the instruction and the core (matmul_cost etc.). A matmul is cut into TensorE tiles exactly as a compiler
// would issue nc_matmul: contraction K in tiles of spec.partitions (128 PE rows), the stationary free
// size in tiles of spec.pe_cols (128) and the moving free size in tiles of spec.moving_max (512, one PSUM
// bank). Each tile is one LoadStationary + MultiplyMoving pair (2 instructions) costing the NKI-ISA
// nc_matmul figure max(min(MM_INIT_LATENCY, n_stationary), n_moving) TensorE cycles, x fp32_matmul_factor
// for fp32 inputs (docs/reference/neuron-hardware.md 1.1, "Per-instruction formula").
//
// PSUM evacuation (docs/cost-model.md): TensorE writes PSUM only; every [stationary tile <= 128 partitions,
// moving tile <= 512] output block is copied to SBUF once (after its K accumulation passes, which PSUM does in
// place) by a ScalarE activation (bias fused) costing max(MIN_II, moving tile) ScalarE cycles; an accumulating
// matmul also reads the old output (2x). It is Cost.aux on ScalarE, pipelined with the matmul (8 PSUM banks).
//
// Threads: one pool (thread_pool.h) runs rounding, im2col and GEMM blocks; OpenBLAS itself is single-threaded.
#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>

#include "dtype_convert.h"
#include "isa.h"
#include "native_gemm.h"
#include "simd.h"
#include "thread_pool.h"

namespace nemu {

namespace {

using i128 = __int128;
constexpr int64_t kMaxDim = (int64_t{1} << 31) - 1;   // OpenBLAS blasint is int32 here

std::string s(int64_t v) { return std::to_string(v); }


DType dtype_param(const Instr& in, int k, const char* op, const char* what) {
  const int64_t v = in.ip[k];
  if (v < 0 || v >= kNumDTypes) fail(std::string(op) + ": field " + what + " has unknown dtype code " + s(v));
  return static_cast<DType>(v);
}

void check_flag(const Instr& in, int k, const char* op, const char* what) {
  if (in.ip[k] != 0 && in.ip[k] != 1) fail(std::string(op) + ": field " + what + " must be 0 or 1, got " + s(in.ip[k]));
}

void check_range(int64_t v, int64_t lo, int64_t hi, const char* op, const char* what) {
  if (v < lo || v > hi) fail(std::string(op) + ": " + what + " = " + s(v) + " outside [" + s(lo) + ", " + s(hi) + "]");
}

// Element range [first, last] touched by `batch` matrices of rows x cols (row pitch ld) at off + b*bstride.
// Returns false when nothing is touched.
bool span(int64_t off, int64_t batch, int64_t bstride, int64_t rows, int64_t ld, int64_t cols, i128& first, i128& last) {
  if (batch <= 0 || rows <= 0 || cols <= 0) return false;
  first = off;
  last = static_cast<i128>(off) + static_cast<i128>(batch - 1) * bstride + static_cast<i128>(rows - 1) * ld + (cols - 1);
  return true;
}

std::string mat_shape(int64_t batch, int64_t rows, int64_t cols, int64_t ld, int64_t off, int64_t bstride) {
  return "[" + s(batch) + " x " + s(rows) + " x " + s(cols) + "] (ld " + s(ld) + ", offset " + s(off) +
         ", batch stride " + s(bstride) + ")";
}

void check_inside(const char* op, const char* operand, bool any, i128 last, int64_t numel, const std::string& shape) {
  if (any && last >= numel)
    fail(std::string(op) + ": operand " + operand + " of shape " + shape + " reaches element " +
         std::to_string(static_cast<long long>(std::min<i128>(last, INT64_MAX))) + " of a buffer of " + s(numel) + " elements");
}

// Sum over all (stationary tile, moving tile) pairs of max(min(L, s_t), m_t), times the K tile count.
double tile_cycles(int64_t stationary, int64_t moving, int64_t k, const CoreSpec& sp, int64_t& tiles) {
  tiles = 0;
  if (stationary <= 0 || moving <= 0 || k <= 0) return 0;
  const int64_t pc = std::max<int32_t>(sp.pe_cols, 1), mm = std::max<int32_t>(sp.moving_max, 1);
  const int64_t nk = ceil_div(k, std::max<int32_t>(sp.partitions, 1));
  const int64_t L = sp.mm_init_latency;
  const int64_t s_full = stationary / pc, s_rem = stationary % pc;
  const int64_t m_full = moving / mm, m_rem = moving % mm;
  const int64_t s_sizes[2] = {pc, s_rem}, s_counts[2] = {s_full, s_rem ? 1 : 0};
  const int64_t m_sizes[2] = {mm, m_rem}, m_counts[2] = {m_full, m_rem ? 1 : 0};
  double cyc = 0;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) {
      const int64_t n = s_counts[i] * m_counts[j];
      if (n == 0) continue;
      cyc += static_cast<double>(n) * static_cast<double>(std::max(std::min(L, s_sizes[i]), m_sizes[j]));
      tiles += n;
    }
  tiles *= nk;
  return cyc * static_cast<double>(nk);
}

// ScalarE cycles to evacuate the [stationary x moving] output of one matmul from PSUM (see the header comment).
double evac_cycles(int64_t stationary, int64_t moving, const CoreSpec& sp, int64_t& instrs) {
  instrs = 0;
  if (stationary <= 0 || moving <= 0) return 0;
  const int64_t pc = std::max<int32_t>(sp.pe_cols, 1), mm = std::max<int32_t>(sp.moving_max, 1);
  const int64_t s_tiles = ceil_div(stationary, pc), m_full = moving / mm, m_rem = moving % mm;
  const double per_s = static_cast<double>(m_full) * std::max<double>(sp.min_ii, mm) +
                       (m_rem ? std::max<double>(sp.min_ii, m_rem) : 0.0);
  instrs = s_tiles * (m_full + (m_rem ? 1 : 0));
  return per_s * static_cast<double>(s_tiles);
}

// NKI-ISA nc_transpose on TensorE: max(P, min(64, F)) cycles for one [P, F<=128] tile; F beyond 128 (the output's
// partition count) is issued as ceil(F/128) tiles, each an identity matmul (LS + MM: two instructions).
double transpose_cycles(int64_t P, int64_t F, const CoreSpec& sp, int64_t& tiles) {
  tiles = 0;
  if (P <= 0 || F <= 0) return 0;
  const int64_t tf = std::max<int32_t>(sp.partitions, 1), L = sp.mm_init_latency;
  const int64_t full = F / tf, rem = F % tf;
  tiles = full + (rem ? 1 : 0);
  return static_cast<double>(full) * static_cast<double>(std::max(P, std::min(L, tf))) +
         (rem ? static_cast<double>(std::max(P, std::min(L, rem))) : 0.0);
}

void add_evacuation(Cost& c, int64_t stationary, int64_t moving, int64_t times, bool acc, const CoreSpec& sp) {
  int64_t n = 0;
  const double cyc = evac_cycles(stationary, moving, sp, n);
  c.aux_engine = Engine::Scalar;
  c.aux_cycles = cyc * static_cast<double>(times) * (acc ? 2.0 : 1.0);
  c.aux_instructions = n * times;
}

// Rounding of GEMM inputs/outputs: round_array splits large ranges over the thread pool (inside a parallel
// region, e.g. per-matrix batches, it runs on the calling thread). ~0.35 ms per 1M bf16 values on one thread.
inline void round_values(const float* src, float* dst, int64_t n, DType d) { round_array(src, dst, n, d); }

// Round `rows` rows of `cols` (source pitch ld) into a packed destination (pitch cols).
void round_rows(const float* src, int64_t ld, float* dst, int64_t rows, int64_t cols, DType d) {
  if (ld == cols || rows == 1) {
    round_values(src, dst, rows * cols, d);
    return;
  }
  for (int64_t r = 0; r < rows; ++r) round_values(src + r * ld, dst + r * cols, cols, d);
}

inline int64_t pad16(int64_t n) { return (n + 15) / 16 * 16; }

inline void sgemm_serial(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                         const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (SgemmFn f = native_sgemm()) {  // MKL's sgemm where it is the faster one (native_gemm.h, NEMU_SGEMM)
    f(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // One row or one column of C is a matrix-vector product: OpenBLAS's sgemm does not forward those to its
  // gemv kernels, which stream the matrix once (1x512x512: 65 -> ~20 us). Same fp32 products and sums.
  if (M == 1 && K > 0) {  // C[0, :] = a^T op(B), i.e. y = op(B)^T a
    const float* a = A;
    const int inca = ta ? static_cast<int>(lda) : 1;
    if (tb)  // B is [N, K]: y = B a
      scipy_cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(N), static_cast<int>(K), alpha, B,
                        static_cast<int>(ldb), a, inca, beta, C, 1);
    else     // B is [K, N]: y = B^T a
      scipy_cblas_sgemv(CblasRowMajor, CblasTrans, static_cast<int>(K), static_cast<int>(N), alpha, B,
                        static_cast<int>(ldb), a, inca, beta, C, 1);
    return;
  }
  if (N == 1 && K > 0) {  // C[:, 0] = op(A) b
    const int incb = tb ? 1 : static_cast<int>(ldb);
    if (ta)  // A is [K, M]: y = A^T b
      scipy_cblas_sgemv(CblasRowMajor, CblasTrans, static_cast<int>(K), static_cast<int>(M), alpha, A,
                        static_cast<int>(lda), B, incb, beta, C, static_cast<int>(ldc));
    else     // A is [M, K]: y = A b
      scipy_cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(M), static_cast<int>(K), alpha, A,
                        static_cast<int>(lda), B, incb, beta, C, static_cast<int>(ldc));
    return;
  }
  scipy_cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(M),
                    static_cast<int>(N), static_cast<int>(K), alpha, A, static_cast<int>(lda), B, static_cast<int>(ldb),
                    beta, C, static_cast<int>(ldc));
}

// One thread pool (thread_pool.h): OpenBLAS runs single-threaded (set at registration) and GEMMs are
// split here by column or row blocks of C, so no second pool spins beside ours.
constexpr double kGemmParallelWork = 1 << 18;  // multiply-adds below which one thread is faster

// A GEMM split over the pool by columns (N >= M) or rows in 16-aligned chunks, or run whole when small or already
// on a worker: `run(m, n, A, B, C)` computes one block single-threaded.
template <class T, class Run>
void split_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
                float* C, int64_t ldc, Run&& run) {
  const int nt = num_threads();
  if (nt <= 1 || in_parallel() || static_cast<double>(M) * N * K < kGemmParallelWork) {
    run(M, N, A, B, C);
    return;
  }
  const bool by_cols = N >= M;
  const int64_t extent = by_cols ? N : M;
  const int64_t chunk = ((extent + nt - 1) / nt + 15) & ~int64_t{15};
  parallel_for(nt, [&](int64_t t) {
    const int64_t lo = t * chunk, n = std::min(chunk, extent - lo);
    if (n <= 0) return;
    if (by_cols)
      run(M, n, A, tb ? B + lo * ldb : B + lo, C + lo);
    else
      run(n, N, ta ? A + lo : A + lo * lda, B, C + lo * ldc);
  });
}

inline void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                  const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  split_gemm(ta, tb, M, N, K, A, lda, B, ldb, C, ldc,
             [&](int64_t m, int64_t n, const float* a, const float* b, float* c) {
               sgemm_serial(ta, tb, m, n, K, alpha, a, lda, b, ldb, beta, c, ldc);
             });
}

// Out rows (rows x cols, contiguous) = / += beta * bias[cols]
void init_rows(float* out, int64_t rows, int64_t cols, const float* bias, float beta, bool accumulate) {
  for (int64_t r = 0; r < rows; ++r) {
    float* o = out + r * cols;
    if (bias) {
      if (accumulate)
        for (int64_t c = 0; c < cols; ++c) o[c] += beta * bias[c];
      else
        for (int64_t c = 0; c < cols; ++c) o[c] = beta * bias[c];
    } else if (!accumulate) {
      std::memset(o, 0, static_cast<size_t>(cols) * sizeof(float));
    }
  }
}

// ============================== MatMul ==============================

struct MM {
  int64_t batch, M, K, N, a_off, a_bs, ta, lda, b_off, b_bs, tb, ldb, o_off, o_bs;
  DType in_dt, out_dt;
  bool a_pre, b_pre, has_bias, acc;
  int64_t bias_off, stationary, pe_transpose;
  int64_t a_rows() const { return ta ? K : M; }
  int64_t a_cols() const { return ta ? M : K; }
  int64_t b_rows() const { return tb ? N : K; }
  int64_t b_cols() const { return tb ? K : N; }
  bool round_a() const { return in_dt != DType::F32 && !a_pre; }
  bool round_b() const { return in_dt != DType::F32 && !b_pre; }
  int64_t a_mats() const { return a_bs == 0 ? 1 : batch; }
  int64_t b_mats() const { return b_bs == 0 ? 1 : batch; }
};

using MF = MatMulF;
MM mm_params(const Instr& in) {
  MM p;
  p.batch = in.ip[MF::batch]; p.M = in.ip[MF::M]; p.K = in.ip[MF::K]; p.N = in.ip[MF::N];
  p.a_off = in.ip[MF::a_off]; p.a_bs = in.ip[MF::a_bstride]; p.ta = in.ip[MF::transA]; p.lda = in.ip[MF::lda];
  p.b_off = in.ip[MF::b_off]; p.b_bs = in.ip[MF::b_bstride]; p.tb = in.ip[MF::transB]; p.ldb = in.ip[MF::ldb];
  p.o_off = in.ip[MF::out_off]; p.o_bs = in.ip[MF::out_bstride];
  p.in_dt = static_cast<DType>(in.ip[MF::in_dtype]); p.a_pre = in.ip[MF::a_prerounded]; p.b_pre = in.ip[MF::b_prerounded];
  p.has_bias = in.ip[MF::has_bias]; p.bias_off = in.ip[MF::bias_off]; p.out_dt = static_cast<DType>(in.ip[MF::out_dtype]);
  p.acc = in.ip[MF::accumulate]; p.stationary = in.ip[MF::stationary_side]; p.pe_transpose = in.ip[MF::pe_transpose];
  return p;
}

// NeuronCore-v1's TensorE has no fp32 inputs (hardware.py): refuse such a program at load.
void check_fp32_supported(const char* op, int64_t in_dtype, const CoreSpec& spec) {
  if (in_dtype == static_cast<int64_t>(DType::F32) && !spec.has_fp32_matmul)
    fail(std::string(op) + ": in_dtype fp32 is not supported by the TensorE of NeuronCore-v" + s(spec.generation) +
         " (use bf16 or fp16)");
}

void matmul_check(const Instr& in, const int64_t* numel, const CoreSpec& spec) {
  const char* op = "MatMul";
  check_flag(in, MF::transA, op, "transA");
  check_flag(in, MF::transB, op, "transB");
  check_flag(in, MF::a_prerounded, op, "a_prerounded");
  check_flag(in, MF::b_prerounded, op, "b_prerounded");
  check_flag(in, MF::has_bias, op, "has_bias");
  check_flag(in, MF::accumulate, op, "accumulate");
  check_flag(in, MF::stationary_side, op, "stationary_side");
  check_range(in.ip[MF::pe_transpose], 0, 3, op, "pe_transpose");
  dtype_param(in, MF::in_dtype, op, "in_dtype");
  dtype_param(in, MF::out_dtype, op, "out_dtype");
  check_fp32_supported(op, in.ip[MF::in_dtype], spec);
  const MM p = mm_params(in);
  const int expect = 3 + (p.has_bias ? 1 : 0);
  if (in.n_operands != expect)
    fail(std::string(op) + ": " + s(in.n_operands) + " operands but has_bias=" + s(p.has_bias) + " needs " + s(expect) +
         " (A, B, " + (p.has_bias ? "bias, " : "") + "Out)");
  check_range(p.batch, 0, kMaxDim, op, "batch");
  check_range(p.M, 0, kMaxDim, op, "M");
  check_range(p.K, 0, kMaxDim, op, "K");
  check_range(p.N, 0, kMaxDim, op, "N");
  for (auto [k, name] : {std::pair<int, const char*>{MF::a_off, "a_off"}, {MF::a_bstride, "a_bstride"}, {MF::b_off, "b_off"},
                         {MF::b_bstride, "b_bstride"}, {MF::out_off, "out_off"}, {MF::out_bstride, "out_bstride"},
                         {MF::bias_off, "bias_off"}})
    check_range(in.ip[k], 0, INT64_MAX / 4, op, name);
  check_range(p.lda, std::max<int64_t>(1, p.a_cols()), kMaxDim, op, p.ta ? "lda (>= M for transA)" : "lda (>= K)");
  check_range(p.ldb, std::max<int64_t>(1, p.b_cols()), kMaxDim, op, p.tb ? "ldb (>= K for transB)" : "ldb (>= N)");
  // With a zero extent the buffers bound nothing, yet scratch (batch*M*K, batch*K*N) and cost (2*batch*M*N*K flops)
  // multiply the others: bound the products themselves.
  const i128 big = i128(1) << 40;
  if (i128(p.batch) * p.M * p.K > big || i128(p.batch) * p.K * p.N > big || i128(p.batch) * p.M * p.N > big ||
      i128(p.batch) * p.M * p.N * p.K > (i128(1) << 52))
    fail(std::string(op) + ": problem too large (batch " + s(p.batch) + ", M " + s(p.M) + ", K " + s(p.K) + ", N " + s(p.N) + ")");
  if (p.batch > 1 && p.o_bs < p.M * p.N)
    fail(std::string(op) + ": out batch stride " + s(p.o_bs) + " < M*N = " + s(p.M * p.N) + " (batches of Out would overlap)");

  const int out_j = in.n_operands - 1;
  i128 af = 0, al = 0, bf = 0, bl = 0, of = 0, ol = 0, cf = 0, cl = 0;
  const bool any_mm = p.M > 0 && p.N > 0 && p.K > 0;
  const bool a_any = any_mm && span(p.a_off, p.batch, p.a_bs, p.a_rows(), p.lda, p.a_cols(), af, al);
  const bool b_any = any_mm && span(p.b_off, p.batch, p.b_bs, p.b_rows(), p.ldb, p.b_cols(), bf, bl);
  const bool o_any = span(p.o_off, p.batch, p.o_bs, p.M, p.N, p.N, of, ol);
  const bool c_any = p.has_bias && span(p.bias_off, 1, 0, 1, p.N, p.N, cf, cl);
  check_inside(op, "0 (A)", a_any, al, numel[0], mat_shape(p.batch, p.a_rows(), p.a_cols(), p.lda, p.a_off, p.a_bs));
  check_inside(op, "1 (B)", b_any, bl, numel[1], mat_shape(p.batch, p.b_rows(), p.b_cols(), p.ldb, p.b_off, p.b_bs));
  if (p.has_bias) check_inside(op, "2 (bias)", c_any, cl, numel[2], "[" + s(p.N) + "] at offset " + s(p.bias_off));
  check_inside(op, out_j == 3 ? "3 (Out)" : "2 (Out)", o_any, ol, numel[out_j],
               mat_shape(p.batch, p.M, p.N, p.N, p.o_off, p.o_bs));
  // Out must not overlap an input living in the same buffer (the GEMM would read what it writes).
  auto overlap = [&](int j, bool any, i128 f, i128 l, const char* name) {
    if (any && o_any && in.operand[j] == in.operand[out_j] && !(l < of || ol < f))
      fail(std::string(op) + ": Out overlaps operand " + name + " in buffer " + s(in.operand[j]));
  };
  overlap(0, a_any, af, al, "A");
  overlap(1, b_any, bf, bl, "B");
  if (p.has_bias) overlap(2, c_any, cf, cl, "bias");
}

// Scratch: the fp32 path's rounded or widened copies of A and B, or the native path's 16-bit copies,
// whichever is larger (the native path falls back to the fp32 one when an input is tiny).
int64_t matmul_scratch(const Instr& in) {
  const MM p = mm_params(in);
  const DType hs = half_storage(p.in_dt);
  const bool lowp = p.in_dt != DType::F32;
  const int64_t na = p.a_mats() * p.M * p.K, nb = p.b_mats() * p.K * p.N;
  int64_t fp32 = 0;
  if (lowp && (!p.a_pre || hs != DType::F32)) fp32 += pad16(na);  // rounded, or widened from 16-bit storage
  if (lowp && (!p.b_pre || hs != DType::F32)) fp32 += pad16(nb);
  const int64_t half = native_gemm(hs) ? pad16(ceil_div(na, 2)) + pad16(ceil_div(nb, 2)) : 0;
  return std::max(fp32, half);
}

// An operand a row-wise op produced holds K on the SBUF free axis, but TensorE contracts over the partition axis
// (NKI-ISA nc_matmul): it is first transposed on TensorE, [<=128 rows of it, K] -> [K, rows] per tile, and each
// result copied from PSUM to SBUF on ScalarE (as the NKI fused-attention tutorial does with its softmax output).
void add_operand_transposes(Cost& c, const MM& p, const CoreSpec& sp) {
  const int64_t pc = std::max<int32_t>(sp.partitions, 1);
  for (int j = 0; j < 2; ++j) {
    if (!(p.pe_transpose & (int64_t{1} << j))) continue;
    const int64_t rows = j == 0 ? p.M : p.N, mats = j == 0 ? p.a_mats() : p.b_mats();
    const int64_t slabs[2] = {rows / pc, rows % pc ? 1 : 0}, sizes[2] = {pc, rows % pc};
    for (int k = 0; k < 2; ++k) {
      if (slabs[k] == 0) continue;
      int64_t tiles = 0, evac = 0;
      const double te = transpose_cycles(sizes[k], p.K, sp, tiles);
      const double ev = evac_cycles(p.K, sizes[k], sp, evac);  // [K, rows] in PSUM: K on partitions
      const double n = static_cast<double>(slabs[k] * mats);
      c.cycles += te * n;
      c.instructions += 2 * tiles * slabs[k] * mats;
      c.aux_cycles += ev * n;
      c.aux_instructions += evac * slabs[k] * mats;
    }
  }
}

Cost matmul_cost(const Instr& in, const CoreSpec& sp) {
  const MM p = mm_params(in);
  Cost c;
  c.engine = Engine::Tensor;
  const int64_t st = p.stationary == 0 ? p.M : p.N, mv = p.stationary == 0 ? p.N : p.M;
  int64_t tiles = 0;
  double cyc = tile_cycles(st, mv, p.K, sp, tiles);
  if (p.in_dt == DType::F32) cyc *= sp.fp32_matmul_factor;
  c.cycles = cyc * static_cast<double>(p.batch);
  c.instructions = 2 * tiles * p.batch;
  c.flops = 2 * p.M * p.N * p.K * p.batch;
  const int64_t ie = dtype_bytes(p.in_dt), oe = dtype_bytes(p.out_dt);
  c.bytes = p.batch * ((p.M * p.K + p.K * p.N) * ie + p.M * p.N * oe * (p.acc ? 2 : 1) + (p.has_bias ? p.N * 4 : 0));
  if (p.K > 0) add_evacuation(c, st, mv, p.batch, p.acc, sp);
  add_operand_transposes(c, p, sp);
  return c;
}

// One operand of a GEMM: base pointer, row pitch, batch stride.
template <class T>
struct Mat {
  const T* p;
  int64_t ld, bs;
};

// 16-bit operand j (A: 0, B: 1) for the native path: the stored-cast constant itself, or the fp32 values
// rounded into 16-bit scratch (packed). Sets `tiny` when a value could meet FTZ/DAZ (has_tiny_half).
Mat<uint16_t> half_operand(const MM& p, const Instr& in, const OpCtx& ctx, int j, DType hs, uint16_t*& sc, bool& tiny) {
  const bool a = j == 0;
  const int64_t off = a ? p.a_off : p.b_off, ld = a ? p.lda : p.ldb, bs = a ? p.a_bs : p.b_bs;
  const int64_t rows = a ? p.a_rows() : p.b_rows(), cols = a ? p.a_cols() : p.b_cols(), mats = a ? p.a_mats() : p.b_mats();
  if (ctx.store(in, j) == hs) {
    tiny = tiny || ctx.tiny(in, j);
    return {reinterpret_cast<const uint16_t*>(ctx.operand(in, j)) + off, ld, bs};
  }
  const float* src = ctx.operand(in, j) + off;
  uint16_t* dst = sc;
  for (int64_t i = 0; i < mats; ++i) {
    if (ld == cols || rows == 1) {
      tiny = round_to_half(src + i * bs, dst + i * rows * cols, rows * cols, p.in_dt) || tiny;
    } else {
      for (int64_t r = 0; r < rows; ++r)
        tiny = round_to_half(src + i * bs + r * ld, dst + i * rows * cols + r * cols, cols, p.in_dt) || tiny;
    }
  }
  sc += 2 * pad16(ceil_div(mats * rows * cols, 2));
  return {dst, cols, bs == 0 ? 0 : rows * cols};
}

// hgemm: the native GEMM split over the pool like sgemm (each call single-threaded in the library).
void hgemm(HalfGemmFn g, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda,
           const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  split_gemm(ta, tb, M, N, K, A, lda, B, ldb, C, ldc,
             [&](int64_t m, int64_t n, const uint16_t* a, const uint16_t* b, float* c) {
               g(ta, tb, m, n, K, 1.f, a, lda, b, ldb, beta, c, ldc);
             });
}

// Many small matrices (attention heads): one matrix per thread; otherwise each GEMM is split.
bool parallel_batches(const MM& p) {
  return p.batch > 1 && static_cast<double>(p.M) * p.N * p.K < 4 * kGemmParallelWork &&
         static_cast<double>(p.batch) * p.M * p.N * p.K >= kGemmParallelWork;
}

// Native path (alpha == 1, K > 0): 16-bit inputs straight into the library's low-precision GEMM with fp32
// accumulation, the same exact products as the fp32 path. Returns false (nothing written) when an input,
// the bias or the accumulated Out holds a value a native FTZ/DAZ could change: the fp32 path then runs.
bool matmul_native(const MM& p, const Instr& in, OpCtx& ctx, HalfGemmFn g, DType hs, float beta) {
  uint16_t* sc = reinterpret_cast<uint16_t*>(ctx.scratch);
  bool tiny = false;
  const Mat<uint16_t> A = half_operand(p, in, ctx, 0, hs, sc, tiny);
  const Mat<uint16_t> B = half_operand(p, in, ctx, 1, hs, sc, tiny);
  const float* bias = p.has_bias ? ctx.operand(in, 2) + p.bias_off : nullptr;
  float* O = ctx.operand(in, in.n_operands - 1) + p.o_off;
  for (int64_t c = 0; bias && !tiny && c < p.N; ++c) {
    const float v = beta * bias[c];
    tiny = has_tiny_f32(&v, 1);
  }
  for (int64_t b = 0; p.acc && !tiny && b < p.batch; ++b) tiny = has_tiny_f32(O + b * p.o_bs, p.M * p.N);
  if (tiny) return false;
  parallel_for_if(parallel_batches(p), p.batch, [&](int64_t b) {
    float* Ob = O + b * p.o_bs;
    float gemm_beta = p.acc ? 1.f : 0.f;
    if (bias) {
      init_rows(Ob, p.M, p.N, bias, beta, p.acc);
      gemm_beta = 1.f;
    }
    hgemm(g, p.ta, p.tb, p.M, p.N, p.K, A.p + b * A.bs, A.ld, B.p + b * B.bs, B.ld, gemm_beta, Ob, p.N);
    if (p.out_dt != DType::F32) round_values(Ob, Ob, p.M * p.N, p.out_dt);
  });
  return true;
}

// fp32 operand j for the fp32 path: as stored, rounded to in_dtype into scratch, or widened from 16-bit storage.
Mat<float> fp32_operand(const MM& p, const Instr& in, const OpCtx& ctx, int j, float*& sc) {
  const bool a = j == 0;
  const int64_t off = a ? p.a_off : p.b_off, ld = a ? p.lda : p.ldb, bs = a ? p.a_bs : p.b_bs;
  const int64_t rows = a ? p.a_rows() : p.b_rows(), cols = a ? p.a_cols() : p.b_cols(), mats = a ? p.a_mats() : p.b_mats();
  const DType st = ctx.store(in, j);
  const bool round = a ? p.round_a() : p.round_b();
  if (p.K == 0 || (st == DType::F32 && !round)) return {ctx.operand(in, j) + off, ld, bs};
  float* dst = sc;
  for (int64_t i = 0; i < mats; ++i) {
    if (st != DType::F32) {
      const uint16_t* src = reinterpret_cast<const uint16_t*>(ctx.operand(in, j)) + off + i * bs;
      if (ld == cols || rows == 1)
        widen_half(src, dst + i * rows * cols, rows * cols, st);
      else
        for (int64_t r = 0; r < rows; ++r) widen_half(src + r * ld, dst + i * rows * cols + r * cols, cols, st);
    } else {
      round_rows(ctx.operand(in, j) + off + i * bs, ld, dst + i * rows * cols, rows, cols, p.in_dt);
    }
  }
  sc += pad16(mats * rows * cols);
  return {dst, cols, bs == 0 ? 0 : rows * cols};
}

void matmul_exec(const Instr& in, OpCtx& ctx) {
  const MM p = mm_params(in);
  if (p.batch == 0 || p.M == 0 || p.N == 0) return;
  const float alpha = static_cast<float>(in.fp[MF::alpha]), beta = static_cast<float>(in.fp[MF::beta]);
  const DType hs = half_storage(p.in_dt);
  if (p.K > 0 && alpha == 1.f)
    if (HalfGemmFn g = native_gemm(hs))
      if (matmul_native(p, in, ctx, g, hs, beta)) return;
  const bool K0 = p.K == 0;
  float* sc = ctx.scratch;
  const Mat<float> A = fp32_operand(p, in, ctx, 0, sc);
  const Mat<float> B = fp32_operand(p, in, ctx, 1, sc);
  const float* bias = p.has_bias ? ctx.operand(in, 2) + p.bias_off : nullptr;
  float* O = ctx.operand(in, in.n_operands - 1) + p.o_off;
  parallel_for_if(parallel_batches(p), p.batch, [&](int64_t b) {
    float* Ob = O + b * p.o_bs;
    float blas_beta = p.acc ? 1.f : 0.f;
    if (bias || K0) {
      init_rows(Ob, p.M, p.N, bias, beta, p.acc);
      blas_beta = 1.f;
    }
    if (!K0) sgemm(p.ta, p.tb, p.M, p.N, p.K, alpha, A.p + b * A.bs, A.ld, B.p + b * B.bs, B.ld, blas_beta, Ob, p.N);
    if (p.out_dt != DType::F32) round_values(Ob, Ob, p.M * p.N, p.out_dt);
  });
}

// ============================== Conv2d ==============================

struct CV {
  int64_t N, C, H, W, O, kh, kw, sh, sw, ph, pw, dh, dw, g, OH, OW;
  DType in_dt, out_dt;
  bool w_pre, has_bias;
  int64_t Cg() const { return C / g; }
  int64_t Og() const { return O / g; }
  int64_t Kg() const { return Cg() * kh * kw; }  // GEMM contraction per group
  bool pointwise() const { return kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0; }
  bool round_x() const { return in_dt != DType::F32; }
  bool round_w() const { return in_dt != DType::F32 && !w_pre; }
};

using CF = Conv2dF;
CV cv_params(const Instr& in) {
  CV p;
  p.N = in.ip[CF::N]; p.C = in.ip[CF::C]; p.H = in.ip[CF::H]; p.W = in.ip[CF::W]; p.O = in.ip[CF::O];
  p.kh = in.ip[CF::kh]; p.kw = in.ip[CF::kw]; p.sh = in.ip[CF::sh]; p.sw = in.ip[CF::sw]; p.ph = in.ip[CF::ph];
  p.pw = in.ip[CF::pw]; p.dh = in.ip[CF::dh]; p.dw = in.ip[CF::dw]; p.g = in.ip[CF::groups];
  p.in_dt = static_cast<DType>(in.ip[CF::in_dtype]); p.w_pre = in.ip[CF::w_prerounded]; p.has_bias = in.ip[CF::has_bias];
  p.out_dt = static_cast<DType>(in.ip[CF::out_dtype]); p.OH = in.ip[CF::OH]; p.OW = in.ip[CF::OW];
  return p;
}

void conv_check(const Instr& in, const int64_t* numel, const CoreSpec& spec) {
  const char* op = "Conv2d";
  check_flag(in, CF::w_prerounded, op, "w_prerounded");
  check_flag(in, CF::has_bias, op, "has_bias");
  dtype_param(in, CF::in_dtype, op, "in_dtype");
  dtype_param(in, CF::out_dtype, op, "out_dtype");
  check_fp32_supported(op, in.ip[CF::in_dtype], spec);
  const CV p = cv_params(in);
  const int expect = 3 + (p.has_bias ? 1 : 0);
  if (in.n_operands != expect)
    fail(std::string(op) + ": " + s(in.n_operands) + " operands but has_bias=" + s(p.has_bias) + " needs " + s(expect) +
         " (X, W, " + (p.has_bias ? "bias, " : "") + "Out)");
  constexpr int64_t kBig = int64_t{1} << 24;
  check_range(p.N, 0, kBig, op, "N");
  check_range(p.C, 1, kBig, op, "C");
  check_range(p.H, 1, kBig, op, "H");
  check_range(p.W, 1, kBig, op, "W");
  check_range(p.O, 1, kBig, op, "O");
  check_range(p.kh, 1, 4096, op, "kh");
  check_range(p.kw, 1, 4096, op, "kw");
  check_range(p.sh, 1, 4096, op, "stride_h");
  check_range(p.sw, 1, 4096, op, "stride_w");
  check_range(p.ph, 0, 4096, op, "pad_h");
  check_range(p.pw, 0, 4096, op, "pad_w");
  check_range(p.dh, 1, 4096, op, "dilation_h");
  check_range(p.dw, 1, 4096, op, "dilation_w");
  check_range(p.g, 1, p.C, op, "groups");
  if (p.C % p.g || p.O % p.g)
    fail(std::string(op) + ": groups " + s(p.g) + " must divide C " + s(p.C) + " and O " + s(p.O));
  const int64_t eh = p.dh * (p.kh - 1) + 1, ew = p.dw * (p.kw - 1) + 1;
  if (p.H + 2 * p.ph < eh || p.W + 2 * p.pw < ew)
    fail(std::string(op) + ": dilated kernel " + s(eh) + "x" + s(ew) + " larger than padded input " + s(p.H + 2 * p.ph) +
         "x" + s(p.W + 2 * p.pw));
  const int64_t oh = (p.H + 2 * p.ph - eh) / p.sh + 1, ow = (p.W + 2 * p.pw - ew) / p.sw + 1;
  if (p.OH != oh || p.OW != ow)
    fail(std::string(op) + ": output size " + s(p.OH) + "x" + s(p.OW) + " does not match the computed " + s(oh) + "x" + s(ow));
  const i128 nx = i128(p.N) * p.C * p.H * p.W, nw = i128(p.O) * p.Cg() * p.kh * p.kw, no = i128(p.N) * p.O * oh * ow;
  const i128 ncol = i128(p.Kg()) * oh * ow;
  if (p.Kg() > kMaxDim || ncol > (i128(1) << 36) || nx > (i128(1) << 40) || no > (i128(1) << 40) || nw > (i128(1) << 40))
    fail(std::string(op) + ": problem too large");
  auto need = [&](int j, i128 n, const char* name, const std::string& shape) {
    if (n > numel[j])
      fail(std::string(op) + ": operand " + s(j) + " (" + name + ") of shape " + shape + " needs " +
           std::to_string(static_cast<long long>(n)) + " elements, buffer has " + s(numel[j]));
  };
  need(0, nx, "X", "[" + s(p.N) + "," + s(p.C) + "," + s(p.H) + "," + s(p.W) + "]");
  need(1, nw, "W", "[" + s(p.O) + "," + s(p.Cg()) + "," + s(p.kh) + "," + s(p.kw) + "]");
  if (p.has_bias) need(2, p.O, "bias", "[" + s(p.O) + "]");
  need(in.n_operands - 1, no, "Out", "[" + s(p.N) + "," + s(p.O) + "," + s(oh) + "," + s(ow) + "]");
  for (int j = 0; j < in.n_operands - 1; ++j)
    if (in.operand[j] == in.operand[in.n_operands - 1])
      fail(std::string(op) + ": Out shares buffer " + s(in.operand[j]) + " with operand " + s(j));
}

// Scratch of the fp32 path; the native path's 16-bit copies (conv_native) need at most half of each part.
int64_t conv_scratch(const Instr& in) {
  const CV p = cv_params(in);
  int64_t n = 0;
  if (p.round_x() && p.pointwise()) n += pad16(p.N * p.C * p.H * p.W);  // else im2col rounds as it copies
  if (p.round_w() || (p.in_dt != DType::F32 && half_storage(p.in_dt) != DType::F32)) n += pad16(p.O * p.Kg());  // or widened
  if (!p.pointwise()) n += pad16(p.Kg() * p.OH * p.OW);
  return n;
}

// Implicit-GEMM cost: per group, the weights [Og x Cg*kh*kw] are stationary (M = Og in tiles of 128 PE
// columns, contraction Cg*kh*kw in tiles of 128 partitions) and the output pixels of the whole batch stream
// as the moving side (N*OH*OW in tiles of 512). This is the weight-stationary schedule a compiler uses for
// convolutions; groups run back to back.
Cost conv_cost(const Instr& in, const CoreSpec& sp) {
  const CV p = cv_params(in);
  Cost c;
  c.engine = Engine::Tensor;
  int64_t tiles = 0;
  double cyc = tile_cycles(p.Og(), p.N * p.OH * p.OW, p.Kg(), sp, tiles);
  if (p.in_dt == DType::F32) cyc *= sp.fp32_matmul_factor;
  c.cycles = cyc * static_cast<double>(p.g);
  c.instructions = 2 * tiles * p.g;
  c.flops = 2 * p.N * p.O * p.OH * p.OW * p.Kg();
  const int64_t ie = dtype_bytes(p.in_dt);
  c.bytes = (p.N * p.C * p.H * p.W + p.O * p.Kg()) * ie + p.N * p.O * p.OH * p.OW * dtype_bytes(p.out_dt) +
            (p.has_bias ? p.O * 4 : 0);
  if (p.Kg() > 0) add_evacuation(c, p.Og(), p.N * p.OH * p.OW, p.g, false, sp);
  return c;
}

// One run of an im2col row: n source values at stride sw, rounded to `dt` as they are copied. fp32 col (the
// exact path): returns false. 16-bit col (native path): the bit patterns of half_storage(dt); returns whether a
// value is tiny (has_tiny_half).
bool copy_run(const float* src, int64_t sw, float* d, int64_t n, DType dt) {
  if (sw == 1 && dt != DType::F32) {
    round_array(src, d, n, dt);
    return false;
  }
  if (sw == 1)
    std::memcpy(d, src, static_cast<size_t>(n) * sizeof(float));
  else
    for (int64_t i = 0; i < n; ++i) d[i] = src[i * sw];
  if (dt != DType::F32) round_array(d, d, n, dt);
  return false;
}
bool copy_run(const float* src, int64_t sw, uint16_t* d, int64_t n, DType dt) {
  if (sw == 1) return round_to_half(src, d, n, dt);
  bool tiny = false;
  constexpr int64_t kRun = 256;
  float buf[kRun];
  for (int64_t i0 = 0; i0 < n; i0 += kRun) {
    const int64_t len = std::min(kRun, n - i0);
    for (int64_t i = 0; i < len; ++i) buf[i] = src[(i0 + i) * sw];
    tiny = round_to_half(buf, d + i0, len, dt) || tiny;
  }
  return tiny;
}

// col[(c*kh + i)*kw + j][oy*OW + ox] = x[c][oy*sh - ph + i*dh][ox*sw - pw + j*dw] (0 outside), rounded to `d`
// (in_dtype) as it is copied: one pass over the input instead of a rounding pass then a copy. T = float (exact
// path) or uint16_t (16-bit storage for the native GEMM, 0 is +0 in bf16 and fp16). Returns whether a copied
// value is tiny (16-bit col only).
template <class T>
bool im2col(const float* x, const CV& p, T* col, DType dt) {
  const int64_t rows = p.Kg(), plane = p.OH * p.OW;
  const bool par = rows * plane >= kParallelThreshold;
  std::atomic<bool> tiny{false};
  parallel_for_if(par, rows, [&](int64_t r) {
    const int64_t c = r / (p.kh * p.kw), i = (r / p.kw) % p.kh, j = r % p.kw;
    const float* xc = x + c * p.H * p.W;
    T* dst = col + r * plane;
    // valid ox range: 0 <= ox*sw - pw + j*dw < W
    const int64_t x0 = j * p.dw - p.pw;
    int64_t ox_lo = x0 >= 0 ? 0 : ceil_div(-x0, p.sw);
    int64_t ox_hi = x0 >= p.W ? 0 : ceil_div(p.W - x0, p.sw);  // exclusive
    ox_lo = std::min(ox_lo, p.OW);
    ox_hi = std::min(std::max(ox_hi, ox_lo), p.OW);
    bool t = false;
    for (int64_t oy = 0; oy < p.OH; ++oy) {
      T* d = dst + oy * p.OW;
      const int64_t iy = oy * p.sh - p.ph + i * p.dh;
      if (iy < 0 || iy >= p.H) {
        std::fill(d, d + p.OW, T(0));
        continue;
      }
      const float* srow = xc + iy * p.W + x0;
      std::fill(d, d + ox_lo, T(0));
      t = copy_run(srow + ox_lo * p.sw, p.sw, d + ox_lo, ox_hi - ox_lo, dt) || t;
      std::fill(d + ox_hi, d + p.OW, T(0));
    }
    if (t) tiny.store(true, std::memory_order_relaxed);
  });
  return tiny.load();
}

// Out[n, g*Og + o] = bias (or 0 with beta 0): the GEMM's starting value.
float conv_init(const CV& p, const float* bias, float* og, int64_t g) {
  if (!bias) return 0.f;
  const int64_t plane = p.OH * p.OW;
  for (int64_t o = 0; o < p.Og(); ++o) std::fill(og + o * plane, og + (o + 1) * plane, bias[g * p.Og() + o]);
  return 1.f;
}

// Native path (bf16/fp16/fp8 modes): weights as stored in 16 bits (or rounded into 16-bit scratch), input rounded
// into a 16-bit im2col (or, pointwise, a 16-bit copy of X), then the library's 16-bit GEMM with fp32
// accumulation: the same exact products as the fp32 path. Returns false when a weight, input or bias value could
// meet FTZ/DAZ (matmul_native); the fp32 path then recomputes every output (Out never aliases an input).
bool conv_native(const CV& p, const Instr& in, OpCtx& ctx, HalfGemmFn gemm, DType hs) {
  const float* X = ctx.operand(in, 0);
  const float* bias = p.has_bias ? ctx.operand(in, 2) : nullptr;
  float* O = ctx.operand(in, in.n_operands - 1);
  if (bias && has_tiny_f32(bias, p.O)) return false;
  uint16_t* sc = reinterpret_cast<uint16_t*>(ctx.scratch);
  const int64_t plane = p.OH * p.OW, Cg = p.Cg(), Og = p.Og(), Kg = p.Kg(), nw = p.O * Kg, nx = p.N * p.C * p.H * p.W;
  const uint16_t* Wt = sc;
  const DType ws = ctx.store(in, 1);
  if (ws == hs) {
    if (ctx.tiny(in, 1)) return false;
    Wt = reinterpret_cast<const uint16_t*>(ctx.operand(in, 1));
  } else if (ws != DType::F32 || round_to_half(ctx.operand(in, 1), sc, nw, p.in_dt)) {
    return false;
  } else {
    sc += 2 * pad16(ceil_div(nw, 2));
  }
  const uint16_t* X16 = sc;
  if (p.pointwise()) {  // the GEMM reads X itself
    if (round_to_half(X, sc, nx, p.in_dt)) return false;
    sc += 2 * pad16(ceil_div(nx, 2));
  }
  uint16_t* col = sc;
  for (int64_t n = 0; n < p.N; ++n) {
    for (int64_t g = 0; g < p.g; ++g) {
      const int64_t xo = (n * p.C + g * Cg) * p.H * p.W;
      const uint16_t* src = X16 + xo;
      if (!p.pointwise()) {
        if (im2col(X + xo, p, col, p.in_dt)) return false;
        src = col;
      }
      float* og = O + (n * p.O + g * Og) * plane;
      hgemm(gemm, false, false, Og, plane, Kg, Wt + g * Og * Kg, Kg, src, plane, conv_init(p, bias, og, g), og, plane);
    }
  }
  if (p.out_dt != DType::F32) round_values(O, O, p.N * p.O * plane, p.out_dt);
  return true;
}

void conv_exec(const Instr& in, OpCtx& ctx) {
  const CV p = cv_params(in);
  const DType hs = half_storage(p.in_dt);
  if (HalfGemmFn g = native_gemm(hs))
    if (conv_native(p, in, ctx, g, hs)) return;
  const float* X = ctx.operand(in, 0);
  const float* Wt = ctx.operand(in, 1);
  const float* bias = p.has_bias ? ctx.operand(in, 2) : nullptr;
  float* O = ctx.operand(in, in.n_operands - 1);
  float* sc = ctx.scratch;
  const int64_t nx = p.N * p.C * p.H * p.W;
  if (p.round_x() && p.pointwise()) {  // the GEMM reads X itself
    round_values(X, sc, nx, p.in_dt);
    X = sc;
    sc += pad16(nx);
  }
  if (ctx.store(in, 1) != DType::F32) {  // a constant stored cast: widen (its values are already rounded)
    widen_half(reinterpret_cast<const uint16_t*>(Wt), sc, p.O * p.Kg(), ctx.store(in, 1));
    Wt = sc;
    sc += pad16(p.O * p.Kg());
  } else if (p.round_w()) {
    round_values(Wt, sc, p.O * p.Kg(), p.in_dt);
    Wt = sc;
    sc += pad16(p.O * p.Kg());
  }
  float* col = sc;
  const int64_t plane = p.OH * p.OW, Cg = p.Cg(), Og = p.Og(), Kg = p.Kg();
  for (int64_t n = 0; n < p.N; ++n) {
    for (int64_t g = 0; g < p.g; ++g) {
      const float* xg = X + (n * p.C + g * Cg) * p.H * p.W;
      float* og = O + (n * p.O + g * Og) * plane;
      const float* src = xg;
      if (!p.pointwise()) {
        im2col(xg, p, col, p.round_x() ? p.in_dt : DType::F32);
        src = col;
      }
      sgemm(false, false, Og, plane, Kg, 1.f, Wt + g * Og * Kg, Kg, src, plane, conv_init(p, bias, og, g), og, plane);
    }
  }
  if (p.out_dt != DType::F32) round_values(O, O, p.N * p.O * plane, p.out_dt);
}

// ============================== Transpose ==============================

using TF = TransposeF;
void transpose_check(const Instr& in, const int64_t* numel, const CoreSpec& spec) {
  const char* op = "Transpose";
  if (in.n_operands != 2) fail(std::string(op) + ": needs 2 operands (In, Out), got " + s(in.n_operands));
  const int64_t P = in.ip[TF::P], F = in.ip[TF::F];
  check_range(P, 0, spec.partitions, op, "P (partitions of In)");
  check_range(F, 0, int64_t{1} << 40, op, "F");
  dtype_param(in, TF::in_dtype, op, "in_dtype");
  const int64_t n = P * F;
  if (n > numel[0])
    fail(std::string(op) + ": operand 0 (In) of shape [" + s(P) + "," + s(F) + "] needs " + s(n) +
         " elements, buffer has " + s(numel[0]));
  if (n > numel[1])
    fail(std::string(op) + ": operand 1 (Out) of shape [" + s(F) + "," + s(P) + "] needs " + s(n) +
         " elements, buffer has " + s(numel[1]));
  if (n > 0 && in.operand[0] == in.operand[1]) fail(std::string(op) + ": In and Out share buffer " + s(in.operand[0]));
}

// Cost: transpose_cycles (NKI-ISA nc_transpose on TensorE). flops = 0: the identity product does no useful arithmetic.
Cost transpose_cost(const Instr& in, const CoreSpec& spec) {
  const int64_t P = in.ip[TF::P], F = in.ip[TF::F];
  Cost c;
  c.engine = Engine::Tensor;
  int64_t tiles = 0;
  c.cycles = transpose_cycles(P, F, spec, tiles);
  c.instructions = 2 * tiles;
  c.bytes = 2 * P * F * dtype_bytes(static_cast<DType>(in.ip[TF::in_dtype]));
  add_evacuation(c, F, P, 1, false, spec);  // the [F, P] result lands in PSUM: F on partitions, P free
  return c;
}

void transpose_exec(const Instr& in, OpCtx& ctx) {
  const int64_t P = in.ip[TF::P], F = in.ip[TF::F];
  const DType d = static_cast<DType>(in.ip[TF::in_dtype]);
  const float* src = ctx.operand(in, 0);
  float* dst = ctx.operand(in, 1);
  constexpr int64_t B = 32;
  const bool par = P * F >= kParallelThreshold;
  parallel_for_if(par, ceil_div(F, B), [&](int64_t fb) {
    const int64_t f0 = fb * B, f1 = std::min(F, f0 + B);
    for (int64_t p0 = 0; p0 < P; p0 += B) {
      const int64_t p1 = std::min(P, p0 + B);
      for (int64_t f = f0; f < f1; ++f)
        for (int64_t p = p0; p < p1; ++p) dst[f * P + p] = src[p * F + f];
    }
  });
  if (d != DType::F32) round_array(dst, dst, P * F, d);
}

}  // namespace

void register_tensor_engine_ops() {
  scipy_openblas_set_num_threads(1);  // see sgemm(): parallelism comes from our thread pool only
  register_builtin(Op::MatMul, matmul_exec, matmul_check, matmul_cost, matmul_scratch);
  register_builtin(Op::Conv2d, conv_exec, conv_check, conv_cost, conv_scratch);
  register_builtin(Op::Transpose, transpose_exec, transpose_check, transpose_cost);
}

}  // namespace nemu
