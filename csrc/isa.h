// The emulated instruction set: the contract between the compiler (neuron_emu/compiler) and the
// engine kernels. A program is a flat table of fixed-width int64 rows (kInstrWords each); the
// same table is executed by Program::run and, one row at a time, by the kernel-level API.
//
// Every buffer holds fp32 storage (values rounded to the emulated dtype where a `*_dtype`
// parameter says so). Operands are buffer ids; where an op takes strided views, the shared
// iteration shape and each operand's (offset, strides) are encoded in ip[] by the "view layout".
// Which parameter lives in which slot is defined once, in op_schema.h.
#pragma once
#include <cstdint>
#include <cstring>

#include <string>
#include <vector>

#include "common.h"
#include "op_schema.h"

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

// Op codes of the built-in instructions (op_schema.h); ops registered at run time get codes from
// kFirstRuntimeOp up, and an artifact names the ops it uses so codes are resolved by name at load.
enum class Op : int32_t {
#define NEMU_OP_CODE(Name, code, engine, operands, views, writes) Name = code,
  NEMU_BUILTIN_OPS(NEMU_OP_CODE)
#undef NEMU_OP_CODE
};
constexpr int32_t kFirstRuntimeOp = 64;

// Parameter slots of each built-in op: <Name>F::<field> indexes ip[] (integers) or fp[] (reals).
// Ops with views keep ip[0 .. kViewWords) for the view layout; their own fields follow it.
constexpr int kViewWords = 7 + 7 * 4;
#define NEMU_SLOT(name) name,
#define NEMU_NO_SLOT(name)
#define NEMU_OP_FIELDS(Name, code, engine, operands, views, writes)                                     \
  struct Name##F {                                                                                    \
    enum : int { kIntBase_ = ((views) ? kViewWords : 0) - 1, NEMU_FIELDS_##Name(NEMU_SLOT, NEMU_NO_SLOT) kIntEnd }; \
    enum : int { kRealBase_ = -1, NEMU_FIELDS_##Name(NEMU_NO_SLOT, NEMU_SLOT) kRealEnd };             \
  };                                                                                                  \
  static_assert(Name##F::kIntEnd <= kNumIParams && Name##F::kRealEnd <= kNumFParams, #Name " has too many fields");
NEMU_BUILTIN_OPS(NEMU_OP_FIELDS)
#undef NEMU_OP_FIELDS
#undef NEMU_SLOT
#undef NEMU_NO_SLOT

enum class Alu : int32_t {
  Add = 0, Sub, Mul, Div, Max, Min, Pow, Eq, Ne, Lt, Le, Gt, Ge, And, Or, Xor, Fmod, Remainder, FloorDiv,
  Atan2, Hypot, Copysign, FMax, FMin,  // FMax/FMin: NaN-ignoring (torch.fmax/fmin)
  kCount
};

enum class ActFunc : int32_t {
  Identity = 0, Relu, Gelu, GeluTanh, Sigmoid, Tanh, Exp, Log, Silu, Sqrt, Rsqrt, Reciprocal,
  Abs, Square, Erf, Sin, Cos, Softplus, Sign, Floor, Ceil, Round, Log1p, Expm1, LogicalNot,
  Hardsigmoid, Hardswish, Mish, Elu, LeakyRelu, Trunc,
  Tan, Sinh, Cosh, Asin, Acos, Atan, Asinh, Acosh, Atanh, Log2, Log10, Exp2, Erfc, Lgamma, IsNan, IsInf, Signbit,
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
struct OpDef;
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
  const OpDef* def = nullptr;  // the op being executed (run-time ops find their library entry points here)
  // Per buffer, the element storage: F32, or BF16/FP16 for a constant the compiler stored cast (only TensorE
  // inputs marked prerounded may be such a buffer; Program checks it at load). nullptr: all fp32.
  const DType* buf_store = nullptr;
  // Per 16-bit buffer: whether it holds a value a native GEMM's FTZ/DAZ could change (has_tiny_half).
  const uint8_t* buf_tiny = nullptr;
  float* operand(const Instr& in, int j) const { return buf[in.operand[j]]; }
  DType store(const Instr& in, int j) const { return buf_store ? buf_store[in.operand[j]] : DType::F32; }
  bool tiny(const Instr& in, int j) const { return buf_tiny && buf_tiny[in.operand[j]]; }
};

// Computes the op's results (never its cost).
using ExecFn = void (*)(const Instr&, OpCtx&);
// The op's cost on a core: a pure function of the instruction and the core, called by Program (once per
// instruction at load) and by the kernel-level API alike, so execution and cost cannot drift apart.
using CostFn = Cost (*)(const Instr&, const CoreSpec&);
// Validate params against operand sizes and the core's capabilities; throw std::invalid_argument naming
// op/operand/shape. Runs once at program load (and before each kernel-level call), never per execution.
using CheckFn = void (*)(const Instr&, const int64_t* operand_numel, const CoreSpec& spec);
using ScratchFn = int64_t (*)(const Instr&);  // scratch floats needed (0 if none)

struct FieldDef {
  std::string name;
  bool real = false;  // fp[] slot, else ip[] slot
  int slot = 0;
};

struct OpDef {
  // the schema: what Python encodes and the validator reads
  std::string name;
  int32_t code = 0;
  Engine engine = Engine::Vector;
  std::vector<std::string> operands;  // "name?" optional
  int min_operands = 0, max_operands = 0;
  int views = 0;                      // leading operands addressed by the view layout
  int writes = 1;                     // 1: the last operand is written; 0: no buffer written
  std::vector<FieldDef> fields;
  // the kernels
  ExecFn exec = nullptr;
  CheckFn check = nullptr;
  CostFn cost = nullptr;
  ScratchFn scratch = nullptr;
  const void* user = nullptr;         // run-time ops: their library's entry points
};

// Built-in ops: attach kernels to the schema of op_schema.h (called once per op from module init).
void register_builtin(Op op, ExecFn exec, CheckFn check, CostFn cost, ScratchFn scratch = nullptr);
// Run-time ops: a full definition; gets the next free code (>= kFirstRuntimeOp), or the existing code
// when an identical schema of that name is already registered (re-loading a library is harmless).
// Throws if the name is taken by a different schema.
int32_t register_runtime_op(OpDef def);
const OpDef* find_op(int32_t op);             // nullptr if unknown
const OpDef* find_op(const std::string& name);  // nullptr if unknown
std::vector<const OpDef*> all_ops();
// Whether operand j of `in` is written (the schema's `writes`: the last operand, when the op writes).
bool operand_is_written(const OpDef& def, const Instr& in, int j);
// A DMA transfer of `bytes` between HBM and SBUF spread over the partitions (dma.cpp's cost formula); the
// program model charges SBUF spills and reloads with it.
Cost hbm_transfer_cost(const CoreSpec& s, int64_t bytes);
// Registration hooks, one per engine file; called once from module init.
void register_tensor_engine_ops();
void register_vector_engine_ops();
void register_scalar_engine_ops();
void register_gpsimd_engine_ops();
void register_dma_ops();
void register_dma_gather_op();     // v1: gathers without GpSimd
void register_vector_select_op();  // v1: selects without GpSimd

}  // namespace nemu
