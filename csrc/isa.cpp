// Instruction encoding, strided-view helpers and the op registry.
#include "isa.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <memory>
#include <shared_mutex>
#include <string>

#include "checked.h"

namespace nemu {

const char* engine_name(Engine e) {
  static const char* names[kNumEngines] = {"TensorE", "VectorE", "ScalarE", "GpSimdE", "DMA"};
  return names[static_cast<int>(e)];
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
  // Checked arithmetic throughout: a shape or stride near 2^63 must not wrap the reach back into the buffer.
  int64_t last = v.offset, count = 1;
  std::string shape = "[";
  for (int d = 0; d < ndim; ++d) {
    if (v.shape[d] < 0) fail(who + ": negative extent in dim " + std::to_string(d));
    if (v.stride[d] < 0) fail(who + ": negative stride in dim " + std::to_string(d));
    count = checked_mul(count, v.shape[d], who, "view element count");
    if (v.shape[d] > 0) last = checked_add(last, checked_mul(v.shape[d] - 1, v.stride[d], who, "view extent"), who, "view reach");
    shape += (d ? "," : "") + std::to_string(v.shape[d]);
  }
  shape += "]";
  if (count > 0 && last >= numel)
    fail(who + ": view of shape " + shape + " at offset " + std::to_string(v.offset) + " reaches element " +
         std::to_string(last) + " of a buffer of " + std::to_string(numel) + " elements");
}

// ---- the op registry ----
// Definitions live in stable heap nodes (Programs keep OpDef pointers); the table grows only by
// registration, which takes the lock; lookups at load time take it shared.
namespace {

struct Registry {
  std::shared_mutex mu;
  std::vector<std::unique_ptr<OpDef>> by_code;  // index = op code
  std::map<std::string, int32_t> by_name;
};

Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: Programs may outlive static destructors
  return *r;
}

std::vector<std::string> split_operands(const char* list) {
  std::vector<std::string> out;
  std::string cur;
  for (const char* c = list; ; ++c) {
    if (*c == ',' || *c == 0) {
      out.push_back(cur);
      cur.clear();
      if (*c == 0) break;
    } else {
      cur += *c;
    }
  }
  return out;
}

void set_operand_counts(OpDef& d) {
  d.max_operands = static_cast<int>(d.operands.size());
  d.min_operands = 0;
  for (const auto& o : d.operands)
    if (o.empty() || o.back() != '?') ++d.min_operands;
}

// The built-in schema, expanded from op_schema.h.
OpDef builtin_schema(Op op) {
  OpDef d;
  int ints = 0, reals = 0;
  auto add = [&](const char* name, bool real, int base) {
    d.fields.push_back(FieldDef{name, real, real ? reals++ : base + ints++});
  };
#define NEMU_I(name) add(#name, false, base);
#define NEMU_R(name) add(#name, true, base);
#define NEMU_CASE(Name, code_, engine_, operands_, views_, writes_) \
  case Op::Name: {                                                   \
    const int base = (views_) ? kViewWords : 0;                      \
    d.name = #Name;                                                  \
    d.code = code_;                                                  \
    d.engine = Engine::engine_;                                      \
    d.operands = split_operands(operands_);                          \
    d.views = views_;                                                \
    d.writes = writes_;                                              \
    NEMU_FIELDS_##Name(NEMU_I, NEMU_R)                               \
    break;                                                           \
  }
  switch (op) { NEMU_BUILTIN_OPS(NEMU_CASE) }
#undef NEMU_CASE
#undef NEMU_I
#undef NEMU_R
  set_operand_counts(d);
  return d;
}

bool same_schema(const OpDef& a, const OpDef& b) {
  if (a.name != b.name || a.engine != b.engine || a.operands != b.operands || a.views != b.views ||
      a.writes != b.writes || a.fields.size() != b.fields.size())
    return false;
  for (size_t i = 0; i < a.fields.size(); ++i)
    if (a.fields[i].name != b.fields[i].name || a.fields[i].real != b.fields[i].real || a.fields[i].slot != b.fields[i].slot)
      return false;
  return true;
}

void validate_schema(const OpDef& d) {
  if (d.name.empty()) fail("op registration: empty name");
  const std::string who = "op " + d.name;
  if (d.operands.empty() || d.operands.size() > static_cast<size_t>(kMaxOperands))
    fail(who + ": needs 1.." + std::to_string(kMaxOperands) + " operands");
  if (d.views < 0 || d.views > 4 || d.views > static_cast<int>(d.operands.size()))
    fail(who + ": views must be in [0, min(4, operands)]");
  if (d.writes != 0 && d.writes != 1) fail(who + ": writes must be 0 or 1");
  if (!d.exec || !d.check || !d.cost) fail(who + ": exec, check and cost functions are required");
  std::map<std::string, int> seen;
  for (const auto& f : d.fields) {
    if (f.name.empty() || seen.count(f.name)) fail(who + ": field names must be unique and non-empty");
    seen[f.name] = 1;
    const int lo = f.real ? 0 : (d.views ? kViewWords : 0), hi = f.real ? kNumFParams : kNumIParams;
    if (f.slot < lo || f.slot >= hi)
      fail(who + ": field " + f.name + " slot " + std::to_string(f.slot) + " outside [" + std::to_string(lo) + ", " +
           std::to_string(hi) + ")");
  }
}

}  // namespace

void register_builtin(Op op, ExecFn exec, CheckFn check, CostFn cost, ScratchFn scratch) {
  OpDef d = builtin_schema(op);
  d.exec = exec;
  d.check = check;
  d.cost = cost;
  d.scratch = scratch;
  validate_schema(d);
  Registry& r = registry();
  std::unique_lock<std::shared_mutex> lk(r.mu);
  if (r.by_code.size() <= static_cast<size_t>(d.code)) r.by_code.resize(std::max<size_t>(d.code + 1, kFirstRuntimeOp));
  r.by_name[d.name] = d.code;
  r.by_code[d.code] = std::make_unique<OpDef>(std::move(d));
}

int32_t register_runtime_op(OpDef def) {
  set_operand_counts(def);
  validate_schema(def);
  Registry& r = registry();
  std::unique_lock<std::shared_mutex> lk(r.mu);
  auto it = r.by_name.find(def.name);
  if (it != r.by_name.end()) {
    OpDef& old = *r.by_code[it->second];
    if (!same_schema(old, def) || it->second < kFirstRuntimeOp)
      fail("op " + def.name + " is already registered with a different definition");
    old.exec = def.exec;  // a re-loaded library: the same op, its new entry points
    old.check = def.check;
    old.cost = def.cost;
    old.scratch = def.scratch;
    old.user = def.user;
    return it->second;
  }
  def.code = static_cast<int32_t>(std::max<size_t>(r.by_code.size(), kFirstRuntimeOp));
  r.by_code.resize(def.code + 1);
  r.by_name[def.name] = def.code;
  const int32_t code = def.code;
  r.by_code[code] = std::make_unique<OpDef>(std::move(def));
  return code;
}

const OpDef* find_op(int32_t op) {
  Registry& r = registry();
  std::shared_lock<std::shared_mutex> lk(r.mu);
  if (op <= 0 || static_cast<size_t>(op) >= r.by_code.size()) return nullptr;
  return r.by_code[op].get();
}

const OpDef* find_op(const std::string& name) {
  Registry& r = registry();
  std::shared_lock<std::shared_mutex> lk(r.mu);
  auto it = r.by_name.find(name);
  return it == r.by_name.end() ? nullptr : r.by_code[it->second].get();
}

std::vector<const OpDef*> all_ops() {
  Registry& r = registry();
  std::shared_lock<std::shared_mutex> lk(r.mu);
  std::vector<const OpDef*> out;
  for (const auto& d : r.by_code)
    if (d) out.push_back(d.get());
  return out;
}

bool operand_is_written(const OpDef& def, const Instr& in, int j) {
  return def.writes == 1 && j == in.n_operands - 1;
}

}  // namespace nemu
