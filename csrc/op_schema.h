// The instruction set's one definition: every built-in op's code, engine, operands and named
// parameter fields. C++ kernels read parameters through the generated slot enums
// (in.ip[MatMulF::M], in.fp[MatMulF::alpha]); Python reads the same table from _C.op_schema() and
// encodes instructions by field name (neuron_emu/isa.py), so a field added, removed or reordered
// here changes both sides at once. Ops registered at run time bring the same description (isa.h OpDef).
#pragma once

namespace nemu {

// X(Name, code, Engine, "operands", views, writes)
//   operands: comma-separated names; "name?" is optional (present when its has_<name> field is 1)
//   views:    leading operands addressed through the shared view layout (isa.h); 0 for none
//   writes:   1 when the last operand is written, 0 when the op writes no buffer
#define NEMU_BUILTIN_OPS(X)                                      \
  X(MatMul, 1, Tensor, "A,B,bias?,Out", 0, 1)                    \
  X(Conv2d, 2, Tensor, "X,W,bias?,Out", 0, 1)                    \
  X(Transpose, 3, Tensor, "In,Out", 0, 1)                        \
  X(TensorTensor, 10, Vector, "A,B,Out", 3, 1)                   \
  X(TensorScalar, 11, Vector, "A,Out", 2, 1)                     \
  X(TensorReduce, 12, Vector, "In,Out", 0, 1)                    \
  X(Softmax, 13, Vector, "In,Out", 0, 1)                         \
  X(LayerNorm, 14, Vector, "In,weight?,bias?,Out", 0, 1)         \
  X(BatchNorm, 15, Vector, "In,mean,var,weight?,bias?,Out", 0, 1) \
  X(Pool2d, 16, Vector, "In,Out", 0, 1)                          \
  X(TensorCopy, 17, Vector, "In,Out", 2, 1)                      \
  X(VecTranspose, 18, Vector, "In,Out", 0, 1)                    \
  X(Scan, 19, Vector, "In,Out", 0, 1)                            \
  X(VecSelect, 20, Vector, "Cond,A,B,Out", 4, 1)                 \
  X(Activation, 30, Scalar, "In,Out", 2, 1)                      \
  X(Iota, 40, GpSimd, "Out", 0, 1)                               \
  X(Select, 41, GpSimd, "Cond,A,B,Out", 4, 1)                    \
  X(Gather, 42, GpSimd, "Table,Index,Out", 0, 1)                 \
  X(DmaCopy, 50, Dma, "In,Out", 2, 1)                            \
  X(DmaLoad, 51, Dma, "Const", 0, 0)                             \
  X(IoIn, 52, Dma, "Out", 0, 1)                                  \
  X(IoOut, 53, Dma, "In", 0, 0)                                 \
  X(DmaGather, 54, Dma, "Table,Index,Out", 0, 1)

// NEMU_FIELDS_<Name>(INT, REAL): integer fields INT(name) and real fields REAL(name), in slot order.
// Conventions: *_dtype fields hold an emulated DType code (common.h); in_dtype is the element type the
// inputs are stored in (it decides rounding on TensorE and the bytes charged elsewhere); out_dtype is
// the type results are rounded to.

// Out[b] (M x N) = alpha * opA(A[b]) @ opB(B[b]) (+ beta * bias[N]) (+ Out if accumulate); ldc = N.
// stationary_side: 0 = A rows are the stationary operand, 1 = B columns.
// pe_transpose: bit 0 / bit 1 = A / B holds K on the SBUF free axis (a row-wise op produced it), so TensorE first
// transposes it through PSUM (cost only: the values are the same).
#define NEMU_FIELDS_MatMul(INT, REAL)                                                                       \
  INT(batch) INT(M) INT(K) INT(N) INT(a_off) INT(a_bstride) INT(transA) INT(lda) INT(b_off) INT(b_bstride) INT(transB) INT(ldb) \
  INT(out_off) INT(out_bstride) INT(in_dtype) INT(a_prerounded) INT(b_prerounded) INT(has_bias) INT(bias_off)         \
  INT(out_dtype) INT(accumulate) INT(stationary_side) INT(pe_transpose) REAL(alpha) REAL(beta)
// X [N,C,H,W], W [O,C/groups,kh,kw], bias [O], Out [N,O,OH,OW], all contiguous.
#define NEMU_FIELDS_Conv2d(INT, REAL)                                                                    \
  INT(N) INT(C) INT(H) INT(W) INT(O) INT(kh) INT(kw) INT(sh) INT(sw) INT(ph) INT(pw) INT(dh) INT(dw) INT(groups) INT(in_dtype) \
  INT(w_prerounded) INT(has_bias) INT(out_dtype) INT(OH) INT(OW)
// In [P,F] (P <= partitions) -> Out [F,P] through the identity matmul.
#define NEMU_FIELDS_Transpose(INT, REAL) INT(P) INT(F) INT(in_dtype)
#define NEMU_FIELDS_TensorTensor(INT, REAL) INT(alu) INT(in_dtype) INT(out_dtype)
// Out = (A alu0 scalar0) alu1 scalar1; reverse0/1 swap the operands; alu1 = -1 for none.
#define NEMU_FIELDS_TensorScalar(INT, REAL) \
  INT(alu0) INT(reverse0) INT(alu1) INT(reverse1) INT(in_dtype) INT(out_dtype) REAL(scalar0) REAL(scalar1)
// In [outer,R,inner] -> Out [outer,inner], reduced along R.
#define NEMU_FIELDS_TensorReduce(INT, REAL) INT(outer) INT(R) INT(inner) INT(reduce_op) INT(in_dtype) INT(out_dtype)
// In and Out [outer,R,inner], normalised along R.
#define NEMU_FIELDS_Softmax(INT, REAL) INT(outer) INT(R) INT(inner) INT(log) INT(in_dtype) INT(out_dtype)
#define NEMU_FIELDS_LayerNorm(INT, REAL) INT(rows) INT(D) INT(has_weight) INT(has_bias) INT(in_dtype) INT(out_dtype) REAL(eps)
// Inference batch norm over In [N,C,HW].
#define NEMU_FIELDS_BatchNorm(INT, REAL) \
  INT(N) INT(C) INT(HW) INT(has_weight) INT(has_bias) INT(in_dtype) INT(out_dtype) REAL(eps)
// In [NC,H,W] -> Out [NC,OH,OW]; kind 0 max, 1 avg; divisor_override 0 = none.
#define NEMU_FIELDS_Pool2d(INT, REAL)                                                                   \
  INT(NC) INT(H) INT(W) INT(kh) INT(kw) INT(sh) INT(sw) INT(ph) INT(pw) INT(dh) INT(dw) INT(OH) INT(OW) INT(kind)          \
  INT(count_include_pad) INT(divisor_override) INT(in_dtype) INT(out_dtype)
#define NEMU_FIELDS_TensorCopy(INT, REAL) INT(in_dtype) INT(out_dtype)
// In [P,F] -> Out [F,P] through VectorE's 32x32 reshape banks.
#define NEMU_FIELDS_VecTranspose(INT, REAL) INT(P) INT(F) INT(in_dtype)
// Inclusive scan along R of In [outer,R,inner]; alu is add, mul, max or min.
#define NEMU_FIELDS_Scan(INT, REAL) INT(outer) INT(R) INT(inner) INT(alu) INT(in_dtype) INT(out_dtype)
// Out = func(In * scale + bias); param is the function's parameter (negative slope, alpha).
#define NEMU_FIELDS_Activation(INT, REAL) INT(func) INT(in_dtype) INT(out_dtype) REAL(scale) REAL(bias) REAL(param)
// Out[i] = start + step * i for i < numel.
#define NEMU_FIELDS_Iota(INT, REAL) INT(numel) REAL(start) REAL(step)
#define NEMU_FIELDS_Select(INT, REAL) INT(in_dtype) INT(out_dtype)
// Out [n,D] = Table [rows,D] at the rows named by Index [n] (fp32 holding integers).
#define NEMU_FIELDS_Gather(INT, REAL) INT(n) INT(rows) INT(D) INT(in_dtype)
// Select on VectorE (a predicated copy) for cores without GpSimd (NeuronCore-v1): Out = Cond != 0 ? A : B.
#define NEMU_FIELDS_VecSelect(INT, REAL) INT(in_dtype) INT(out_dtype)
// Gather by DMA with indirect addressing (one descriptor per row): same layout as Gather.
#define NEMU_FIELDS_DmaGather(INT, REAL) INT(n) INT(rows) INT(D) INT(in_dtype)
// elem_bytes: element size the transfer is charged for.
#define NEMU_FIELDS_DmaCopy(INT, REAL) INT(queue) INT(elem_bytes)
// Cost only: constants are resident in host memory shared by the emulated HBM and SBUF.
#define NEMU_FIELDS_DmaLoad(INT, REAL) INT(bytes) INT(queue)
// Host <-> device transfer of model input/output io_index with conversion from/to io_dtype (IoDType).
#define NEMU_FIELDS_IoIn(INT, REAL) INT(io_index) INT(io_dtype) INT(numel)
#define NEMU_FIELDS_IoOut(INT, REAL) INT(io_index) INT(io_dtype) INT(numel)

}  // namespace nemu
