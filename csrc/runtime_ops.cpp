#include "runtime_ops.h"

#include "nemu_op_abi.h"

namespace nemu {
namespace {

struct LibraryEntry {
  nemu_check_fn check;
  nemu_cost_fn cost;
  nemu_exec_fn exec;
};

// Check and cost run at load without an execution context: find the definition by code.
const OpDef& def_of(const Instr& in) {
  const OpDef* d = find_op(in.op);
  if (!d || !d->user) fail("op code " + std::to_string(in.op) + " is not a registered library op");
  return *d;
}
const LibraryEntry& entry_of(const OpDef& d) { return *static_cast<const LibraryEntry*>(d.user); }
nemu_instr abi_instr(const Instr& in) { return nemu_instr{in.n_operands, in.ip, in.fp}; }

void library_check(const Instr& in, const int64_t* numel, const CoreSpec&) {
  const OpDef& d = def_of(in);
  const nemu_instr ai = abi_instr(in);
  char err[512] = {0};
  if (entry_of(d).check(&ai, numel, err, sizeof err) != 0) fail(d.name + ": " + (err[0] ? err : "check failed"));
}

Cost library_cost(const Instr& in, const CoreSpec& s) {
  const OpDef& d = def_of(in);
  const nemu_instr ai = abi_instr(in);
  const nemu_core core{s.generation, s.partitions, s.gpsimd_cores, s.gpsimd_lanes, s.gpsimd_start,
                       s.clock_ghz[static_cast<int>(d.engine)]};
  const nemu_cost c = entry_of(d).cost(&ai, &core);
  if (!(c.cycles >= 0) || c.instructions < 0 || c.bytes < 0 || c.flops < 0)
    fail(d.name + ": the cost function returned a negative or NaN cost");
  Cost out;
  out.engine = d.engine;
  out.cycles = c.cycles;
  out.instructions = c.instructions;
  out.bytes = c.bytes;
  out.flops = c.flops;
  return out;
}

void library_exec(const Instr& in, OpCtx& ctx) {
  const OpDef& d = *ctx.def;
  const nemu_instr ai = abi_instr(in);
  float* ops[kMaxOperands];
  int64_t numel[kMaxOperands];
  for (int j = 0; j < in.n_operands; ++j) {
    ops[j] = ctx.operand(in, j);
    numel[j] = ctx.buf_numel[in.operand[j]];
  }
  char err[512] = {0};
  if (entry_of(d).exec(&ai, ops, numel, err, sizeof err) != 0) fail(d.name + ": " + (err[0] ? err : "exec failed"));
}

}  // namespace

int32_t register_library_op(const std::string& name, Engine engine, const std::vector<std::string>& operands,
                            const std::vector<std::string>& ints, const std::vector<std::string>& reals, int writes,
                            uintptr_t check_fn, uintptr_t cost_fn, uintptr_t exec_fn) {
  if (!check_fn || !cost_fn || !exec_fn) fail("op " + name + ": check, cost and exec functions are required");
  OpDef d;
  d.name = name;
  d.engine = engine;
  d.operands = operands;
  d.views = 0;  // ABI v1: operands are whole buffers
  d.writes = writes;
  for (size_t k = 0; k < ints.size(); ++k) d.fields.push_back(FieldDef{ints[k], false, static_cast<int>(k)});
  for (size_t k = 0; k < reals.size(); ++k) d.fields.push_back(FieldDef{reals[k], true, static_cast<int>(k)});
  d.exec = library_exec;
  d.check = library_check;
  d.cost = library_cost;
  // Never freed: a Program may hold the definition for the life of the process.
  d.user = new LibraryEntry{reinterpret_cast<nemu_check_fn>(check_fn), reinterpret_cast<nemu_cost_fn>(cost_fn),
                            reinterpret_cast<nemu_exec_fn>(exec_fn)};
  return register_runtime_op(std::move(d));
}

}  // namespace nemu
