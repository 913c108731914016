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
#include "dtype_convert.h"
#include "native_gemm.h"

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
            s.dma_engines > 0 && s.dma_bytes_per_ns_per_engine > 0 && s.dma_fixed_ns >= 0 &&
            s.dep_overhead_cycles >= 0 && s.dma_desc_half_bytes >= 0 && s.sbuf_bytes > 0 && s.host_bytes_per_ns > 0;
  for (int e = 0; e < kNumEngines - 1; ++e) ok = ok && (s.clock_ghz[e] > 0 || (e == 3 && s.gpsimd_cores == 0));
  if (!ok) fail("CoreSpec is not filled in (build it with neuron_emu.hardware.core_spec)");
}

double host_transfer_ns(const CoreSpec& s, int64_t bytes) {
  return bytes > 0 ? s.dma_fixed_ns + static_cast<double>(bytes) / s.host_bytes_per_ns : 0.0;
}

static std::string where(int64_t i, const Instr& in, const OpDef* d) {
  return "instruction " + std::to_string(i) + " (" + (d ? d->name : ("op " + std::to_string(in.op))) + ")";
}

static std::string buf_where(size_t b) { return "buffer " + std::to_string(b); }

// A 16-bit constant holds element patterns, not floats: only an operand that reads it as such may name it —
// a TensorE input marked prerounded whose dtype it stores exactly (tensor_engine.cpp), or DmaLoad (cost only).
static void check_half_operand(int64_t i, const Instr& in, const OpDef* def, int j, DType store) {
  bool ok = in.op == static_cast<int32_t>(Op::DmaLoad);
  if (in.op == static_cast<int32_t>(Op::MatMul) && j < 2)
    ok = in.ip[j == 0 ? MatMulF::a_prerounded : MatMulF::b_prerounded] == 1 &&
         half_storage(static_cast<DType>(in.ip[MatMulF::in_dtype])) == store;
  if (in.op == static_cast<int32_t>(Op::Conv2d) && j == 1)
    ok = in.ip[Conv2dF::w_prerounded] == 1 && half_storage(static_cast<DType>(in.ip[Conv2dF::in_dtype])) == store;
  if (!ok)
    fail(where(i, in, def) + ": operand " + std::to_string(j) + " is buffer " + std::to_string(in.operand[j]) +
         ", a constant stored in " + dtype_name(store) + "; only a prerounded TensorE input of a matching dtype may read it");
}

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
    } else if (is_constant(d.kind)) {
      if (!d.const_data && d.numel > 0) fail(buf_where(b) + ": constant without data");
    } else {
      fail(buf_where(b) + ": unknown kind " + std::to_string(static_cast<int32_t>(d.kind)));
    }
  }
  arena_ = alloc_floats(arena_used, "arena");
  buf_ptrs_.resize(buffers_.size());
  buf_numel_.resize(buffers_.size());
  buf_store_.resize(buffers_.size());
  buf_tiny_.assign(buffers_.size(), 0);
  for (size_t b = 0; b < buffers_.size(); ++b) {
    const BufferDesc& d = buffers_[b];
    buf_ptrs_[b] = is_constant(d.kind) ? const_cast<float*>(d.const_data) : arena_.get() + d.arena_offset;
    buf_numel_[b] = d.numel;
    buf_store_[b] = buf_storage(d.kind);
    if (buf_store_[b] != DType::F32)
      buf_tiny_[b] = has_tiny_half(reinterpret_cast<const uint16_t*>(d.const_data), d.numel, buf_store_[b]);
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
    for (int j = 0; j < in.n_operands; ++j) {  // constants are read-only
      const BufKind k = buffers_[in.operand[j]].kind;
      if (operand_is_written(*def, in, j) && is_constant(k))
        fail(where(i, in, def) + ": writes constant buffer " + std::to_string(in.operand[j]));
      if (buf_storage(k) != DType::F32) check_half_operand(i, in, def, j, buf_storage(k));
    }
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
  for (const IoSpec& io : inputs) host_in_bytes_ += io.numel * io_dtype_size(static_cast<IoDType>(io.io_dtype));
  for (const IoSpec& io : outputs) host_out_bytes_ += io.numel * io_dtype_size(static_cast<IoDType>(io.io_dtype));
  host_ns_.assign(n_instr, 0.0);
  simulate(costs);
}

// The modelled timeline (docs/cost-model.md). Costs are a function of (instruction, core), so it is the same for
// every execution: computed once, here. Each instruction starts when its engine (and its aux engine) is free and
// its dependencies have ended. On top of the per-instruction costs it models:
//  * dependency overhead: a Vector/Scalar/GpSimd instruction that had to wait for a dependency cannot overlap
//    its predecessor in the engine pipeline and pays spec.dep_overhead_cycles (semaphore wait + pipeline fill);
//  * DMA overlap: a transfer occupies the DMA bandwidth for its byte time only; its descriptor latency
//    (Cost.latency_ns) delays its consumers but overlaps other transfers and all compute;
//  * SBUF capacity: the working set is every buffer from its first write (a weight: its DmaLoad) to its last use.
//    When it exceeds SBUF (spec.sbuf_bytes), the fraction f = 1 - SBUF / working set of it lives in device memory,
//    and an instruction's operand traffic (Cost.bytes) goes to HBM in that proportion: f x bytes are spilled /
//    reloaded by DMA at HBM rate, streamed in tiles alongside the instruction (it ends when both are done).
void Program::simulate(const std::vector<Cost>& costs) {
  const size_t n = instrs_.size(), nb = buffers_.size();
  start_ns_.assign(n, 0.0);
  end_ns_.assign(n, 0.0);
  cycles_.assign(n, 0.0);
  spills_.clear();
  memory_ = MemoryStats();
  engine_.assign(n, 0);
  aux_engine_.assign(n, -1);
  main_end_ns_.assign(n, 0.0);
  aux_start_ns_.assign(n, 0.0);
  aux_end_ns_.assign(n, 0.0);
  // bytes a buffer occupies: a weight what its DmaLoad moves, an activation its fp32 storage
  std::vector<double> size(nb, 0.0);
  std::vector<int64_t> last_use(nb, -1);
  for (size_t b = 0; b < nb; ++b) size[b] = static_cast<double>(buffers_[b].numel) * sizeof(float);
  for (size_t i = 0; i < n; ++i) {
    const Instr& in = instrs_[i];
    if (in.op == static_cast<int32_t>(Op::DmaLoad)) size[in.operand[0]] = static_cast<double>(in.ip[DmaLoadF::bytes]);
    for (int j = 0; j < in.n_operands; ++j) last_use[in.operand[j]] = static_cast<int64_t>(i);
  }
  const double cap = spec_.sbuf_bytes;
  std::vector<char> live(nb, 0);
  double working = 0;
  double engine_free[kNumEngines] = {};
  const int dma = static_cast<int>(Engine::Dma);

  for (size_t i = 0; i < n; ++i) {
    const int64_t ii = static_cast<int64_t>(i);
    const Instr& in = instrs_[i];
    const OpDef& def = *defs_[i];
    const Cost& c = costs[i];
    const int e = static_cast<int>(c.engine), a = static_cast<int>(c.aux_engine);
    const bool has_aux = c.aux_cycles > 0;
    const bool is_load = in.op == static_cast<int32_t>(Op::DmaLoad);
    const bool is_io = in.op == static_cast<int32_t>(Op::IoIn) || in.op == static_cast<int32_t>(Op::IoOut);
    for (int j = 0; j < in.n_operands; ++j) {  // outputs (and a loaded weight) join the working set
      const int32_t b = in.operand[j];
      if (!live[b] && (is_load || operand_is_written(def, in, j))) {
        live[b] = 1;
        working += size[b];
      }
    }
    double ready = 0;
    for (int64_t k = 0; k < in.dep_count; ++k) ready = std::max(ready, end_ns_[deps_[in.dep_begin + k]]);
    double start = std::max(engine_free[e], ready);
    if (has_aux) start = std::max(start, engine_free[a]);
    double overhead = 0;
    // waited for (or right behind) a dependency: cannot be pipelined behind its predecessor
    if (c.engine != Engine::Dma && c.engine != Engine::Tensor && in.dep_count > 0 && ready >= engine_free[e])
      overhead = spec_.dep_overhead_cycles / spec_.clock_ghz[e];
    const double main_ns = c.ns(spec_) + overhead;
    double end = start + c.span_ns(spec_) + overhead;
    const double f = working > cap ? 1.0 - cap / working : 0.0;
    if (f > 0 && c.engine != Engine::Dma && c.bytes > 0) {  // spill/reload traffic streams alongside
      // dma.cpp's formula, with descriptors of at least 2 KiB per partition: the compiler spills whole tiles at
      // the payload NKI-DMABW recommends, so a small instruction's share is not descriptor-bound
      const int64_t nbytes = static_cast<int64_t>(f * static_cast<double>(c.bytes));
      const double p = std::max(static_cast<double>(nbytes) / std::max(spec_.partitions, 1), 2048.0);
      const double rate = std::min(spec_.dma_engines * spec_.dma_bytes_per_ns_per_engine, spec_.hbm_bytes_per_ns);
      const double busy = static_cast<double>(nbytes) / (rate * p / (p + spec_.dma_desc_half_bytes));
      SpillEvent ev;
      ev.start_ns = std::max(engine_free[dma], start);
      engine_free[dma] = ev.start_ns + busy;
      ev.busy_end_ns = engine_free[dma];
      ev.end_ns = engine_free[dma] + spec_.dma_fixed_ns;
      ev.bytes = nbytes;
      ev.instr = ii;
      spills_.push_back(ev);
      modelled_.counters.add_dma(busy, nbytes);
      memory_.spill_bytes += nbytes;
      memory_.hbm_bytes += nbytes;
      end = std::max(end, ev.end_ns);
    }
    start_ns_[i] = start;
    end_ns_[i] = end;
    cycles_[i] = c.cycles;
    engine_[i] = e;
    main_end_ns_[i] = start + main_ns;
    engine_free[e] = c.engine == Engine::Dma ? start + c.ns(spec_) : (c.aux_serial ? end : start + main_ns);
    if (has_aux) {
      aux_engine_[i] = a;
      aux_start_ns_[i] = c.aux_serial ? start + main_ns : start;
      aux_end_ns_[i] = aux_start_ns_[i] + c.aux_ns(spec_);
      engine_free[a] = std::max(engine_free[a], aux_end_ns_[i]);
    }
    modelled_.counters.add(c, spec_);
    if (overhead > 0) {
      modelled_.counters.busy_ns[e] += overhead;
      modelled_.counters.busy_cycles[e] += spec_.dep_overhead_cycles;
    }
    if (is_load || is_io || (in.op == static_cast<int32_t>(Op::DmaCopy) &&
                             in.ip[DmaCopyF::queue] != static_cast<int64_t>(DmaQueue::SbufToSbuf)))
      memory_.hbm_bytes += c.bytes;
    memory_.working_set_peak_bytes = std::max(memory_.working_set_peak_bytes, working);
    for (int j = 0; j < in.n_operands; ++j) {  // dead after its last use
      const int32_t b = in.operand[j];
      if (last_use[b] == ii && live[b]) {
        live[b] = 0;
        working -= size[b];
      }
    }
    modelled_.latency_ns = std::max(modelled_.latency_ns, end);
  }
  memory_.sbuf_peak_bytes = std::min(memory_.working_set_peak_bytes, cap);
  // One call = copy the inputs over the host link, run, copy the outputs back (the runtime does them in turn).
  memory_.device_ns = modelled_.latency_ns;
  memory_.host_in_ns = host_transfer_ns(spec_, host_in_bytes_);
  memory_.host_out_ns = host_transfer_ns(spec_, host_out_bytes_);
  memory_.host_bytes = host_in_bytes_ + host_out_bytes_;
  modelled_.latency_ns += memory_.host_in_ns + memory_.host_out_ns;
}

RunStats Program::run(void* const* inputs, void* const* outputs) {
  std::lock_guard<std::mutex> lk(mu_);
  CpuClaim busy;  // this thread occupies a CPU for the whole run (thread_pool.h)
  OpCtx ctx{buf_ptrs_.data(), buf_numel_.data(), static_cast<int>(buf_ptrs_.size()), spec_, scratch_.get(),
            inputs, outputs, n_inputs_, n_outputs_, nullptr, buf_store_.data(), buf_tiny_.data()};
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
