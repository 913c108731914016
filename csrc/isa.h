// The emulated instruction set: the contract between the compiler (neuron_emu/compiler) and the
// engine kernels. A program is a flat table of fixed-width int64 rows (kInstrWords each); the
// same table is executed by Program::run and, one row at a time, by the kernel-level API.
//
// Every buffer holds fp32 storage (values rounded to the emulated dtype where a `*_dtype`
// parameter says so). Operands are buffer ids; where an op takes strided views, the shared
// iteration shape and each operand's (offset, strides) are encoded in ip[] by the "view layout".
#pragma once
#include <cstdint>
#include <cstring>

#include "common.h"

namespace nemu {

constexpr int kMaxOperands = 6;
constexpr int kNumIParams = 48;
constexpr int kNumFParams = 4;
constexpr int kInstrWords = 64;
constexpr int kMaxDims = 6;

// Row layout (int64 words): [0] op, [1] src (source-op index, -1 none), [2] n_operands,
// [3..8] operand buffer ids, [9..56] ip[0..47], [57..60] fp[0..3] (bit-cast doubles),
// [61] dep_begin, [62] dep_count (into the program's dependency list), [63] reserved (0).
struct Instr {
  int32_t op = 0;
  int32_t src = -1;
  int32_t n_operands = 0;
  int32_t operand[kMaxOperands] = {-1, -1, -1, -1, -1, -1};
  int64_t ip[kNumIParams] = {};
  double fp[kNumFParams] = {};
  int64_t dep_begin = 0, dep_count = 0;
};

Instr decode_instr(const int64_t* row);  // no validation; see Program / check functions
void encode_instr(const Instr& in, int64_t* row);

enum class Op : int32_t {
  // ---- TensorE ----
  // MatMul: operands A, B, [bias], Out.  Out[b] (M x N) = alpha * opA(A[b]) @ opB(B[b]) (+ beta*bias[N]) (+ Out if accumulate)
  //  ip: 0 batch, 1 M, 2 K, 3 N, 4 a_off, 5 a_bstride, 6 transA, 7 lda, 8 b_off, 9 b_bstride, 10 transB, 11 ldb,
  //      12 out_off, 13 out_bstride (ldc = N), 14 in_dtype (rounding of A and B), 15 a_prerounded, 16 b_prerounded,
  //      17 has_bias, 18 bias_off, 19 out_dtype, 20 accumulate, 21 stationary_side (0: A rows, 1: B columns)
  //  fp: 0 alpha, 1 beta
  MatMul = 1,
  // Conv2d: operands X [N,C,H,W], W [O,C/g,kh,kw], [bias O], Out [N,O,OH,OW], all contiguous.
  //  ip: 0 N, 1 C, 2 H, 3 W, 4 O, 5 kh, 6 kw, 7 sh, 8 sw, 9 ph, 10 pw, 11 dh, 12 dw, 13 groups,
  //      14 in_dtype, 15 w_prerounded, 16 has_bias, 17 out_dtype, 18 OH, 19 OW
  Conv2d = 2,
  // Transpose through identity on TensorE: operands In [P,F] (P <= 128), Out [F,P]. ip: 0 P, 1 F, 2 in_dtype
  Transpose = 3,

  // ---- VectorE ----
  // TensorTensor: operands A, B, Out; view layout over 3 operands; ip[40] alu, ip[41] out_dtype
  TensorTensor = 10,
  // TensorScalar: operands A, Out; view layout over 2 operands; Out = (A alu0 fp0) alu1 fp1
  //  ip[40] alu0, ip[41] out_dtype, ip[42] reverse0 (fp0 alu0 A), ip[43] alu1 (-1 none), ip[44] reverse1
  TensorScalar = 11,
  // TensorReduce: operands In [outer,R,inner] contiguous, Out [outer,inner]. ip: 0 outer, 1 R, 2 inner, 3 reduce op, 4 out_dtype
  TensorReduce = 12,
  // Softmax: operands In, Out, both [outer,R,inner] contiguous, along R. ip: 0 outer, 1 R, 2 inner, 3 log, 4 out_dtype
  Softmax = 13,
  // LayerNorm: operands In [rows,D], [weight D], [bias D], Out [rows,D]. ip: 0 rows, 1 D, 2 has_weight, 3 has_bias, 4 out_dtype; fp0 eps
  //  (operand order: In, weight if has_weight, bias if has_bias, Out)
  LayerNorm = 14,
  // BatchNorm (inference): operands In [N,C,HW], mean C, var C, [weight C], [bias C], Out.
  //  ip: 0 N, 1 C, 2 HW, 3 has_weight, 4 has_bias, 5 out_dtype; fp0 eps
  BatchNorm = 15,
  // Pool2d: operands In [NC,H,W], Out [NC,OH,OW]. ip: 0 NC, 1 H, 2 W, 3 kh, 4 kw, 5 sh, 6 sw, 7 ph, 8 pw, 9 OH, 10 OW,
  //  11 kind (0 max, 1 avg), 12 count_include_pad, 13 divisor_override (0 none), 14 out_dtype, 15 dh, 16 dw
  Pool2d = 16,
  // TensorCopy (copy/cast): operands In, Out; view layout over 2 operands; ip[41] out_dtype
  TensorCopy = 17,
  // VecTranspose (32x32-block reshape banks): operands In [P,F], Out [F,P]; ip: 0 P, 1 F
  VecTranspose = 18,
  // Scan: operands In [outer,R,inner], Out same; ip: 0 outer, 1 R, 2 inner, 3 alu (add/mul/max/min), 4 out_dtype
  Scan = 19,

  // ---- ScalarE ----
  // Activation: operands In, Out; view layout over 2 operands; Out = func(In*fp0 + fp1); ip[40] func, ip[41] out_dtype; fp2 func param
  Activation = 30,

  // ---- GpSimd ----
  // Iota: operands Out (numel ip0). Out[i] = fp0 + fp1 * i
  Iota = 40,
  // Select: operands Cond, A, B, Out; view layout over 4 operands; Out = Cond != 0 ? A : B; ip[41] out_dtype
  Select = 41,
  // Gather rows: operands Table [rows,D], Index [n] (fp32 holding integers), Out [n,D]. ip: 0 n, 1 rows, 2 D
  Gather = 42,

  // ---- DMA ----
  // DmaCopy: operands In, Out; view layout over 2 operands; ip[40] queue (DmaQueue), ip[42] element bytes counted
  DmaCopy = 50,
  // DmaLoad: cost only (constants are resident in host memory shared by the emulated HBM and SBUF).
  //  operands In (the constant); ip: 0 bytes, ip[40] queue
  DmaLoad = 51,
  // IoIn / IoOut: host <-> device transfer of a model input/output with dtype conversion. Operand: the fp32 buffer.
  //  ip: 0 io index, 1 io dtype (IoDType), 2 numel
  IoIn = 52,
  IoOut = 53,
};

enum class Alu : int32_t {
  Add = 0, Sub, Mul, Div, Max, Min, Pow, Eq, Ne, Lt, Le, Gt, Ge, And, Or, Xor, Fmod, Remainder, FloorDiv,
  kCount
};

enum class ActFunc : int32_t {
  Identity = 0, Relu, Gelu, GeluTanh, Sigmoid, Tanh, Exp, Log, Silu, Sqrt, Rsqrt, Reciprocal,
  Abs, Square, Erf, Sin, Cos, Softplus, Sign, Floor, Ceil, Round, Log1p, Expm1, LogicalNot,
  Hardsigmoid, Hardswish, Mish, Elu, LeakyRelu, Trunc,
  kCount
};

enum class ReduceOp : int32_t { Sum = 0, Max, Min, Mean, Prod, ArgMax, ArgMin, Any, All, kCount };

enum class DmaQueue : int32_t { HbmToSbuf = 0, SbufToHbm = 1, SbufToSbuf = 2, HbmToHbm = 3 };

// Host-side element types of model inputs/outputs (converted by IoIn/IoOut).
enum class IoDType : int32_t { F32 = 0, F64 = 1, F16 = 2, BF16 = 3, I64 = 4, I32 = 5, I16 = 6, I8 = 7, U8 = 8, Bool = 9 };
int io_dtype_size(IoDType d);

// ---- strided views ("view layout"): ip[0] ndim, ip[1..6] shape, then for operand j:
//      ip[7+7j] offset, ip[8+7j .. 13+7j] strides (elements, >= 0). Up to 4 operands (ip[0..34]).
struct View {
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t offset = 0;
  int64_t stride[kMaxDims] = {};
};
View view_of(const Instr& in, int j);
int64_t view_numel(const Instr& in);
// Throws (naming the op and operand) unless the view of operand j stays inside a buffer of `numel` elements.
void check_view(const Instr& in, int j, int64_t numel, const char* opname);

// ---- execution context and op registry ----
struct OpCtx {
  float* const* buf;          // buffer base pointers, indexed by buffer id
  const int64_t* buf_numel;   // their sizes (elements)
  int n_bufs;
  const CoreSpec& spec;
  float* scratch;             // at least scratch_floats(instr) floats, 64-byte aligned
  // IoIn / IoOut: host pointers for this call
  void* const* io_in;
  void* const* io_out;
  int n_io_in, n_io_out;
  float* operand(const Instr& in, int j) const { return buf[in.operand[j]]; }
};

using ExecFn = Cost (*)(const Instr&, OpCtx&);
// Validate params against operand sizes and the core's capabilities; throw std::invalid_argument naming
// op/operand/shape. Runs once at program load (and before each kernel-level call), never per execution.
using CheckFn = void (*)(const Instr&, const int64_t* operand_numel, const CoreSpec& spec);
using ScratchFn = int64_t (*)(const Instr&);  // scratch floats needed (0 if none)

struct OpDef {
  const char* name = nullptr;
  Engine engine = Engine::Vector;
  int min_operands = 0, max_operands = 0;
  ExecFn exec = nullptr;
  CheckFn check = nullptr;
  ScratchFn scratch = nullptr;
};

void register_op(Op op, const OpDef& def);
inline void register_op(Op op, const char* name, Engine engine, int min_operands, int max_operands, ExecFn exec,
                        CheckFn check, ScratchFn scratch = nullptr) {
  register_op(op, OpDef{name, engine, min_operands, max_operands, exec, check, scratch});
}
const OpDef* find_op(int32_t op);  // nullptr if unknown
// Registration hooks, one per engine file; called once from module init.
void register_tensor_engine_ops();
void register_vector_engine_ops();
void register_scalar_engine_ops();
void register_gpsimd_engine_ops();
void register_dma_ops();

}  // namespace nemu
