#include "program.h"

#include "dep_check.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>

#include "thread_pool.h"

namespace nemu {

std::unique_ptr<float[], void (*)(void*)> alloc_floats(int64_t n) {
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(n, 16)) * sizeof(float);
  const size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, rounded);
  return {static_cast<float*>(p), std::free};
}

void check_spec(const CoreSpec& s) {
  bool ok = s.generation >= 1 && s.partitions > 0 && s.pe_cols > 0 && s.moving_max > 0 && s.free_tile > 0 &&
            s.mm_init_latency >= 0 && s.fp32_matmul_factor > 0 && s.min_ii >= 0 && s.gpsimd_cores >= 0 &&
            s.dma_engines > 0 && s.dma_bytes_per_ns_per_engine > 0 && s.dma_fixed_ns >= 0;
  for (int e = 0; e < kNumEngines - 1; ++e) ok = ok && (s.clock_ghz[e] > 0 || (e == 3 && s.gpsimd_cores == 0));
  if (!ok) fail("CoreSpec is not filled in (build it with neuron_emu.hardware.core_spec)");
}

static std::string where(int64_t i, const Instr& in, const OpDef* d) {
  return "instruction " + std::to_string(i) + " (" + (d ? d->name : ("op " + std::to_string(in.op))) + ")";
}

Program::Program(const CoreSpec& spec, const int64_t* rows, int64_t n_instr, const int64_t* deps, int64_t n_deps,
                 std::vector<BufferDesc> buffers, int64_t arena_floats, int n_inputs, int n_outputs,
                 bool check_deps)
    : spec_(spec), deps_(deps, deps + n_deps), buffers_(std::move(buffers)), n_inputs_(n_inputs),
      n_outputs_(n_outputs) {
  check_spec(spec_);
  if (arena_floats < 0) fail("negative arena size");
  for (size_t b = 0; b < buffers_.size(); ++b) {
    const BufferDesc& d = buffers_[b];
    if (d.numel < 0) fail("buffer " + std::to_string(b) + ": negative size");
    if (d.kind == BufKind::Intermediate) {
      if (d.arena_offset < 0 || d.arena_offset + d.numel > arena_floats)
        fail("buffer " + std::to_string(b) + ": [" + std::to_string(d.arena_offset) + ", +" + std::to_string(d.numel) +
             ") outside the arena of " + std::to_string(arena_floats) + " floats");
    } else if (d.kind == BufKind::Constant) {
      if (!d.const_data && d.numel > 0) fail("buffer " + std::to_string(b) + ": constant without data");
    } else {
      fail("buffer " + std::to_string(b) + ": unknown kind");
    }
  }
  arena_ = alloc_floats(arena_floats);
  buf_ptrs_.resize(buffers_.size());
  buf_numel_.resize(buffers_.size());
  for (size_t b = 0; b < buffers_.size(); ++b) {
    const BufferDesc& d = buffers_[b];
    buf_ptrs_[b] = d.kind == BufKind::Constant ? const_cast<float*>(d.const_data) : arena_.get() + d.arena_offset;
    buf_numel_[b] = d.numel;
  }
  int64_t scratch = 0;
  instrs_.reserve(n_instr);
  defs_.reserve(n_instr);
  for (int64_t i = 0; i < n_instr; ++i) {
    Instr in = decode_instr(rows + i * kInstrWords);
    const OpDef* def = find_op(in.op);
    if (!def) fail(where(i, in, def) + ": unknown op code " + std::to_string(in.op));
    if (in.n_operands < def->min_operands || in.n_operands > def->max_operands)
      fail(where(i, in, def) + ": " + std::to_string(in.n_operands) + " operands, expected " +
           std::to_string(def->min_operands) + ".." + std::to_string(def->max_operands));
    int64_t numel[kMaxOperands] = {};
    for (int j = 0; j < in.n_operands; ++j) {
      const int32_t b = in.operand[j];
      if (b < 0 || b >= static_cast<int32_t>(buffers_.size()))
        fail(where(i, in, def) + ": operand " + std::to_string(j) + " names buffer " + std::to_string(b) +
             " of " + std::to_string(buffers_.size()));
      numel[j] = buffers_[b].numel;
    }
    for (int j = 0; j < in.n_operands; ++j)  // constants are read-only
      if (operand_is_written(*def, in, j) && buffers_[in.operand[j]].kind == BufKind::Constant)
        fail(where(i, in, def) + ": writes constant buffer " + std::to_string(in.operand[j]));
    if (in.dep_begin < 0 || in.dep_count < 0 || in.dep_begin + in.dep_count > n_deps)
      fail(where(i, in, def) + ": dependency range outside the dependency table");
    for (int64_t k = 0; k < in.dep_count; ++k) {
      const int64_t d = deps_[in.dep_begin + k];
      if (d < 0 || d >= i) fail(where(i, in, def) + ": depends on instruction " + std::to_string(d) + " (not earlier)");
    }
    if (in.op == static_cast<int32_t>(Op::IoIn) || in.op == static_cast<int32_t>(Op::IoOut)) {
      const int lim = in.op == static_cast<int32_t>(Op::IoIn) ? n_inputs : n_outputs;
      const int64_t idx = in.ip[IoInF::io_index];
      if (idx < 0 || idx >= lim) fail(where(i, in, def) + ": io index " + std::to_string(idx));
    }
    try {
      def->check(in, numel, spec_);
      costs_.push_back(def->cost(in, spec_));  // e.g. an engine this core lacks is refused here, at load
    } catch (const std::invalid_argument& e) {
      fail(where(i, in, def) + ": " + e.what());
    }
    if (def->scratch) scratch = std::max(scratch, def->scratch(in));
    instrs_.push_back(in);
    defs_.push_back(def);
  }
  if (check_deps) check_dependencies(instrs_, deps_, buffers_);
  scratch_ = alloc_floats(scratch);
  start_ns_.assign(n_instr, 0.0);
  end_ns_.assign(n_instr, 0.0);
  cycles_.assign(n_instr, 0.0);
  host_ns_.assign(n_instr, 0.0);
}

RunStats Program::run(void* const* inputs, void* const* outputs) {
  std::lock_guard<std::mutex> lk(mu_);
  CpuClaim busy;  // this thread occupies a CPU for the whole run (thread_pool.h)
  OpCtx ctx{buf_ptrs_.data(), buf_numel_.data(), static_cast<int>(buf_ptrs_.size()), spec_, scratch_.get(),
            inputs, outputs, n_inputs_, n_outputs_};
  double engine_free[kNumEngines] = {};
  Counters counters;
  double latency = 0;
  const int64_t n = static_cast<int64_t>(instrs_.size());
  for (int64_t i = 0; i < n; ++i) {
    const Instr& in = instrs_[i];
    const auto t0 = std::chrono::steady_clock::now();
    ctx.def = defs_[i];
    defs_[i]->exec(in, ctx);
    const Cost& c = costs_[i];
    host_ns_[i] = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    const int e = static_cast<int>(c.engine);
    double start = engine_free[e];
    for (int64_t k = 0; k < in.dep_count; ++k) start = std::max(start, end_ns_[deps_[in.dep_begin + k]]);
    const double end = start + c.ns(spec_);
    start_ns_[i] = start;
    end_ns_[i] = end;
    cycles_[i] = c.cycles;
    engine_free[e] = end;
    latency = std::max(latency, end);
    counters.add(c, spec_);
  }
  last_.latency_ns = latency;
  last_.counters = counters;
  runs_ += 1;
  return last_;
}

}  // namespace nemu
