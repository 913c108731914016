// Instruction encoding, strided-view helpers and the op registry.
#include "isa.h"

#include <string>

namespace nemu {

const char* engine_name(Engine e) {
  static const char* names[kNumEngines] = {"TensorE", "VectorE", "ScalarE", "GpSimdE", "DMA"};
  return names[static_cast<int>(e)];
}

const char* dtype_name(DType d) {
  static const char* names[kNumDTypes] = {"fp32", "bf16", "fp16", "tf32", "fp8_e4m3", "fp8_e5m2"};
  return names[static_cast<int>(d)];
}

DType dtype_from_int(int64_t v) {
  if (v < 0 || v >= kNumDTypes) fail("unknown emulated dtype code " + std::to_string(v));
  return static_cast<DType>(v);
}

int io_dtype_size(IoDType d) {
  switch (d) {
    case IoDType::F32: case IoDType::I32: return 4;
    case IoDType::F64: case IoDType::I64: return 8;
    case IoDType::F16: case IoDType::BF16: case IoDType::I16: return 2;
    case IoDType::I8: case IoDType::U8: case IoDType::Bool: return 1;
  }
  fail("unknown io dtype code " + std::to_string(static_cast<int>(d)));
}

Instr decode_instr(const int64_t* row) {
  Instr in;
  in.op = static_cast<int32_t>(row[0]);
  in.src = static_cast<int32_t>(row[1]);
  in.n_operands = static_cast<int32_t>(row[2]);
  for (int j = 0; j < kMaxOperands; ++j) in.operand[j] = static_cast<int32_t>(row[3 + j]);
  for (int j = 0; j < kNumIParams; ++j) in.ip[j] = row[9 + j];
  for (int j = 0; j < kNumFParams; ++j) std::memcpy(&in.fp[j], &row[57 + j], sizeof(double));
  in.dep_begin = row[61];
  in.dep_count = row[62];
  return in;
}

void encode_instr(const Instr& in, int64_t* row) {
  std::memset(row, 0, sizeof(int64_t) * kInstrWords);
  row[0] = in.op;
  row[1] = in.src;
  row[2] = in.n_operands;
  for (int j = 0; j < kMaxOperands; ++j) row[3 + j] = in.operand[j];
  for (int j = 0; j < kNumIParams; ++j) row[9 + j] = in.ip[j];
  for (int j = 0; j < kNumFParams; ++j) std::memcpy(&row[57 + j], &in.fp[j], sizeof(double));
  row[61] = in.dep_begin;
  row[62] = in.dep_count;
}

View view_of(const Instr& in, int j) {
  View v;
  v.ndim = static_cast<int>(in.ip[0]);
  for (int d = 0; d < v.ndim && d < kMaxDims; ++d) {
    v.shape[d] = in.ip[1 + d];
    v.stride[d] = in.ip[8 + 7 * j + d];
  }
  v.offset = in.ip[7 + 7 * j];
  return v;
}

int64_t view_numel(const Instr& in) {
  int64_t n = 1;
  for (int d = 0; d < in.ip[0] && d < kMaxDims; ++d) n *= in.ip[1 + d];
  return n;
}

void check_view(const Instr& in, int j, int64_t numel, const char* opname) {
  const int64_t ndim = in.ip[0];
  const std::string who = std::string(opname) + " operand " + std::to_string(j);
  if (ndim < 0 || ndim > kMaxDims) fail(who + ": ndim " + std::to_string(ndim) + " not in [0, 6]");
  View v = view_of(in, j);
  if (v.offset < 0) fail(who + ": negative offset " + std::to_string(v.offset));
  int64_t last = v.offset, count = 1;
  std::string shape = "[";
  for (int d = 0; d < ndim; ++d) {
    if (v.shape[d] < 0) fail(who + ": negative extent in dim " + std::to_string(d));
    if (v.stride[d] < 0) fail(who + ": negative stride in dim " + std::to_string(d));
    count *= v.shape[d];
    if (v.shape[d] > 0) last += (v.shape[d] - 1) * v.stride[d];
    shape += (d ? "," : "") + std::to_string(v.shape[d]);
  }
  shape += "]";
  if (count > 0 && last >= numel)
    fail(who + ": view of shape " + shape + " at offset " + std::to_string(v.offset) + " reaches element " +
         std::to_string(last) + " of a buffer of " + std::to_string(numel) + " elements");
}

static OpDef g_ops[64];

void register_op(Op op, const OpDef& def) {
  const int i = static_cast<int>(op);
  if (i <= 0 || i >= 64) fail("op code out of range");
  g_ops[i] = def;
}

const OpDef* find_op(int32_t op) {
  if (op <= 0 || op >= 64 || g_ops[op].exec == nullptr) return nullptr;
  return &g_ops[op];
}

}  // namespace nemu
