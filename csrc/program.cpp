#include "program.h"

#include "dep_check.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>

#include "checked.h"

#include "thread_pool.h"

namespace nemu {

std::unique_ptr<float[], void (*)(void*)> alloc_floats(int64_t n, const char* what) {
  if (n < 0) fail(std::string(what) + ": negative size " + std::to_string(n));
  // n * 4 rounded up to 64 bytes, without wrapping
  if (n > (INT64_MAX - 64) / static_cast<int64_t>(sizeof(float)))
    fail(std::string(what) + ": " + std::to_string(n) + " floats overflow the address space");
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(n, 16)) * sizeof(float);
  const size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) fail(std::string(what) + ": cannot allocate " + std::to_string(rounded) + " bytes");
  std::memset(p, 0, rounded);
  return {static_cast<float*>(p), std::free};
}

int64_t max_arena_bytes() {
  if (const char* env = std::getenv("NEMU_MAX_ARENA_BYTES")) {
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(env, &end, 10);
    if (errno || end == env || *end || v <= 0)
      fail(std::string("NEMU_MAX_ARENA_BYTES must be a positive number of bytes, got '") + env + "'");
    return v;
  }
  int64_t limit = int64_t{64} << 30;
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page > 0 && !mul_overflows(pages, page)) limit = std::min<int64_t>(limit, int64_t{pages} * page / 2);
  return limit;
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

static std::string buf_where(size_t b) { return "buffer " + std::to_string(b); }

Program::Program(const CoreSpec& spec, const int64_t* rows, int64_t n_instr, const int64_t* deps, int64_t n_deps,
                 std::vector<BufferDesc> buffers, int64_t arena_floats, std::vector<IoSpec> inputs,
                 std::vector<IoSpec> outputs, bool check_deps)
    : spec_(spec), deps_(deps, deps + n_deps), buffers_(std::move(buffers)),
      n_inputs_(static_cast<int>(inputs.size())), n_outputs_(static_cast<int>(outputs.size())) {
  check_spec(spec_);
  if (n_instr < 0 || n_deps < 0) fail("negative instruction or dependency count");
  if (inputs.size() > (1u << 20) || outputs.size() > (1u << 20)) fail("too many inputs/outputs");
  for (size_t k = 0; k < inputs.size() + outputs.size(); ++k) {
    const bool in = k < inputs.size();
    const IoSpec& io = in ? inputs[k] : outputs[k - inputs.size()];
    const std::string who = std::string(in ? "input " : "output ") + std::to_string(in ? k : k - inputs.size());
    if (io.numel < 0) fail(who + ": negative numel " + std::to_string(io.numel));
    if (io.io_dtype < 0 || io.io_dtype > static_cast<int32_t>(IoDType::Bool))
      fail(who + ": unknown io dtype code " + std::to_string(io.io_dtype));
  }
  if (arena_floats < 0) fail("arena_floats: negative arena size " + std::to_string(arena_floats));
  const int64_t limit = max_arena_bytes();
  if (arena_floats > limit / static_cast<int64_t>(sizeof(float)))
    fail("arena_floats: " + std::to_string(arena_floats) + " floats exceed the arena limit of " + std::to_string(limit) +
         " bytes (NEMU_MAX_ARENA_BYTES)");
  int64_t arena_used = 0;  // what the buffers need; the allocation never exceeds it, whatever arena_floats says
  for (size_t b = 0; b < buffers_.size(); ++b) {
    const BufferDesc& d = buffers_[b];
    if (d.numel < 0) fail(buf_where(b) + ": negative numel " + std::to_string(d.numel));
    if (d.kind == BufKind::Intermediate) {
      if (d.arena_offset < 0 || d.arena_offset > arena_floats || d.numel > arena_floats - d.arena_offset)
        fail(buf_where(b) + ": arena_offset/numel [" + std::to_string(d.arena_offset) + ", +" + std::to_string(d.numel) +
             ") outside the arena of " + std::to_string(arena_floats) + " floats");
      arena_used = std::max(arena_used, d.arena_offset + d.numel);
    } else if (d.kind == BufKind::Constant) {
      if (!d.const_data && d.numel > 0) fail(buf_where(b) + ": constant without data");
    } else {
      fail(buf_where(b) + ": unknown kind " + std::to_string(static_cast<int32_t>(d.kind)));
    }
  }
  arena_ = alloc_floats(arena_used, "arena");
  buf_ptrs_.resize(buffers_.size());
  buf_numel_.resize(buffers_.size());
  for (size_t b = 0; b < buffers_.size(); ++b) {
    const BufferDesc& d = buffers_[b];
    buf_ptrs_[b] = d.kind == BufKind::Constant ? const_cast<float*>(d.const_data) : arena_.get() + d.arena_offset;
    buf_numel_[b] = d.numel;
  }
  std::vector<int64_t> io_seen_in(inputs.size(), -1), io_seen_out(outputs.size(), -1);
  int64_t scratch = 0;
  std::vector<Cost> costs;  // each instruction's cost on this core, from its op's cost function
  instrs_.reserve(n_instr);
  defs_.reserve(n_instr);
  for (int64_t i = 0; i < n_instr; ++i) {
    const int64_t* row = rows + i * kInstrWords;
    Instr in = decode_instr(row);
    // the op (when its word is a valid code) names the instruction in every error below
    const OpDef* def = row[0] == static_cast<int32_t>(row[0]) ? find_op(in.op) : nullptr;
    // 32-bit fields must hold their whole word: a value that wraps to a valid op or buffer id is not that id
    for (int w = 0; w < 3 + kMaxOperands; ++w)
      if (row[w] != static_cast<int32_t>(row[w]))
        fail(where(i, in, def) + ": word " + std::to_string(w) + " (" +
             (w == 0 ? "op" : w == 1 ? "src" : w == 2 ? "n_operands" : "operand " + std::to_string(w - 3)) + ") = " +
             std::to_string(row[w]) + " is not a 32-bit value");
    if (row[kInstrWords - 1] != 0)
      fail(where(i, in, def) + ": reserved word " + std::to_string(kInstrWords - 1) + " is " +
           std::to_string(row[kInstrWords - 1]) + ", must be 0");
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
    if (in.dep_begin < 0 || in.dep_count < 0 || in.dep_begin > n_deps || in.dep_count > n_deps - in.dep_begin)
      fail(where(i, in, def) + ": dep_begin/dep_count [" + std::to_string(in.dep_begin) + ", +" +
           std::to_string(in.dep_count) + ") outside the dependency table of " + std::to_string(n_deps));
    for (int64_t k = 0; k < in.dep_count; ++k) {
      const int64_t d = deps_[in.dep_begin + k];
      if (d < 0 || d >= i) fail(where(i, in, def) + ": depends on instruction " + std::to_string(d) + " (not earlier)");
    }
    const bool is_in = in.op == static_cast<int32_t>(Op::IoIn), is_out = in.op == static_cast<int32_t>(Op::IoOut);
    if (is_in || is_out) {
      const int lim = is_in ? n_inputs_ : n_outputs_;
      const int64_t idx = in.ip[IoInF::io_index];
      if (idx < 0 || idx >= lim)
        fail(where(i, in, def) + ": io_index " + std::to_string(idx) + " but the header declares " + std::to_string(lim) +
             (is_in ? " input(s)" : " output(s)"));
    }
    try {
      def->check(in, numel, spec_);
      costs.push_back(def->cost(in, spec_));  // e.g. an engine this core lacks is refused here, at load
      if (def->scratch) {
        const int64_t need = def->scratch(in);
        if (need < 0 || need > limit / static_cast<int64_t>(sizeof(float)))
          fail("scratch of " + std::to_string(need) + " floats exceeds the limit of " + std::to_string(limit) +
               " bytes (NEMU_MAX_ARENA_BYTES)");
        scratch = std::max(scratch, need);
      }
    } catch (const std::invalid_argument& e) {
      fail(where(i, in, def) + ": " + e.what());
    }
    if (is_in || is_out) {  // the header sizes the host tensors: the transfer must match it exactly
      const int64_t idx = in.ip[IoInF::io_index];
      const IoSpec& io = is_in ? inputs[idx] : outputs[idx];
      const char* what = is_in ? "input " : "output ";
      std::vector<int64_t>& seen = is_in ? io_seen_in : io_seen_out;
      if (in.ip[IoInF::numel] != io.numel)
        fail(where(i, in, def) + ": numel " + std::to_string(in.ip[IoInF::numel]) + " but the header's " + what +
             std::to_string(idx) + " has " + std::to_string(io.numel) + " elements");
      if (in.ip[IoInF::io_dtype] != io.io_dtype)
        fail(where(i, in, def) + ": io_dtype " + std::to_string(in.ip[IoInF::io_dtype]) + " but the header's " + what +
             std::to_string(idx) + " has io dtype " + std::to_string(io.io_dtype));
      if (seen[idx] >= 0)
        fail(where(i, in, def) + ": " + what + std::to_string(idx) + " is already transferred by instruction " +
             std::to_string(seen[idx]));
      seen[idx] = i;
    }
    instrs_.push_back(in);
    defs_.push_back(def);
  }
  for (size_t k = 0; k < io_seen_in.size(); ++k)
    if (io_seen_in[k] < 0) fail("input " + std::to_string(k) + " has no IoIn instruction");
  for (size_t k = 0; k < io_seen_out.size(); ++k)
    if (io_seen_out[k] < 0) fail("output " + std::to_string(k) + " has no IoOut instruction (it would be left unwritten)");
  if (check_deps) check_dependencies(instrs_, defs_, deps_, buffers_);
  scratch_ = alloc_floats(scratch, "scratch");
  host_ns_.assign(n_instr, 0.0);
  simulate(costs);
}

// Each instruction starts when its engine is free and its dependencies have ended. Costs are a function of
// (instruction, core), so this timeline is the same for every execution: it is computed once, here.
void Program::simulate(const std::vector<Cost>& costs) {
  const size_t n = instrs_.size();
  start_ns_.assign(n, 0.0);
  end_ns_.assign(n, 0.0);
  cycles_.assign(n, 0.0);
  double engine_free[kNumEngines] = {};
  for (size_t i = 0; i < n; ++i) {
    const Instr& in = instrs_[i];
    const Cost& c = costs[i];
    const int e = static_cast<int>(c.engine);
    double start = engine_free[e];
    for (int64_t k = 0; k < in.dep_count; ++k) start = std::max(start, end_ns_[deps_[in.dep_begin + k]]);
    start_ns_[i] = start;
    end_ns_[i] = start + c.ns(spec_);
    cycles_[i] = c.cycles;
    engine_free[e] = end_ns_[i];
    modelled_.latency_ns = std::max(modelled_.latency_ns, end_ns_[i]);
    modelled_.counters.add(c, spec_);
  }
}

RunStats Program::run(void* const* inputs, void* const* outputs) {
  std::lock_guard<std::mutex> lk(mu_);
  CpuClaim busy;  // this thread occupies a CPU for the whole run (thread_pool.h)
  OpCtx ctx{buf_ptrs_.data(), buf_numel_.data(), static_cast<int>(buf_ptrs_.size()), spec_, scratch_.get(),
            inputs, outputs, n_inputs_, n_outputs_};
  const int64_t n = static_cast<int64_t>(instrs_.size());
  for (int64_t i = 0; i < n; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    ctx.def = defs_[i];
    defs_[i]->exec(instrs_[i], ctx);
    host_ns_[i] = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  }
  runs_ += 1;
  return modelled_;
}

}  // namespace nemu
