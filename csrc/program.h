// A loaded program: validated instruction table + buffer plan, executed in one native call.
// At load, each instruction's cost (its op's cost function) places it on its engine's timeline (engines
// run concurrently, honouring dependencies); the run loop executes every instruction through its kernel.
#pragma once
#include <memory>
#include <mutex>
#include <vector>

#include "isa.h"

namespace nemu {

// ConstBF16/ConstFP16: a constant the compiler stored in its cast type (16-bit elements, half an fp32 copy's
// memory); only TensorE inputs marked prerounded read them, in place (native_gemm.h) or widened into scratch.
enum class BufKind : int32_t { Intermediate = 0, Constant = 1, ConstBF16 = 2, ConstFP16 = 3 };
inline bool is_constant(BufKind k) { return k == BufKind::Constant || k == BufKind::ConstBF16 || k == BufKind::ConstFP16; }
// Element storage of a buffer of kind k (F32 unless a 16-bit constant).
inline DType buf_storage(BufKind k) {
  return k == BufKind::ConstBF16 ? DType::BF16 : k == BufKind::ConstFP16 ? DType::FP16 : DType::F32;
}

struct BufferDesc {
  int64_t numel = 0;
  BufKind kind = BufKind::Intermediate;
  int64_t arena_offset = 0;          // Intermediate: offset (floats) in the arena
  const float* const_data = nullptr;  // Constant: read-only data owned by the caller (16-bit patterns for ConstBF16/FP16)
};

// A model input or output as the artifact's header declares it: the host tensor's element count and
// IoDType (isa.h). The header sizes the host tensors, so every IoIn/IoOut must agree with it exactly.
struct IoSpec {
  int64_t numel = 0;
  int32_t io_dtype = 0;
};

// A transfer the program model adds between SBUF and HBM when the working set exceeds SBUF.
struct SpillEvent {
  double start_ns = 0, end_ns = 0;
  double busy_end_ns = 0;  // end of its share of the DMA bandwidth; end_ns adds the completion latency
  int64_t bytes = 0;
  int64_t instr = 0;   // the instruction whose operands it moves
  int32_t buffer = -1;
  int32_t kind = 0;    // 0: the share of an instruction's operand traffic that goes to HBM (spill + reload)
};

// Device-memory side of the model (docs/cost-model.md "SBUF capacity").
struct MemoryStats {
  double sbuf_peak_bytes = 0;   // largest SBUF occupancy: min(working set, SBUF)
  double working_set_peak_bytes = 0;  // largest working set (live activations + staged weights)
  int64_t hbm_bytes = 0;        // weights loaded + DMA copies touching HBM + spill traffic
  int64_t spill_bytes = 0;      // of which SBUF spills and reloads
  int64_t host_bytes = 0;       // host <-> device transfers of inputs and outputs
  double device_ns = 0;         // the device timeline (first instruction to last transfer)
  double host_in_ns = 0, host_out_ns = 0;  // host link copies before and after it (latency = sum of the three)
};

// Host link time of one direction's tensors: one transfer's fixed latency + bytes at the link rate.
double host_transfer_ns(const CoreSpec& s, int64_t bytes);

// What one execution cost on the modelled core (returned by run; nothing shared between callers).
struct RunStats {
  double latency_ns = 0;
  Counters counters;
};

class Program {
 public:
  // Validates everything (ops, operand ids, views against buffer sizes, dependency order, every I/O
  // index transferred exactly once with the numel and dtype of `inputs`/`outputs`, the arena against
  // max_arena_bytes()) and throws std::invalid_argument naming the instruction or buffer and the field on
  // the first problem. With check_deps, also proves every memory hazard is ordered by a dependency path
  // (dep_check.h).
  Program(const CoreSpec& spec, const int64_t* rows, int64_t n_instr, const int64_t* deps, int64_t n_deps,
          std::vector<BufferDesc> buffers, int64_t arena_floats, std::vector<IoSpec> inputs,
          std::vector<IoSpec> outputs, bool check_deps = false);

  // Executes once and returns this call's stats. Host pointers must match the I/O dtypes/sizes the
  // compiler recorded (checked by the Python runtime). Takes the Program's mutex: one execution at a
  // time per Program (= per emulated core); different Programs share no mutable state and run in
  // parallel. The caller releases the GIL.
  RunStats run(void* const* inputs, void* const* outputs);

  // Under mutex(): the last execution's stats and the number of executions of this Program.
  const RunStats& last() const { return modelled_; }
  int64_t runs() const { return runs_; }
  const std::vector<Instr>& instrs() const { return instrs_; }
  const std::vector<double>& start_ns() const { return start_ns_; }
  const std::vector<double>& end_ns() const { return end_ns_; }
  const std::vector<double>& cycles() const { return cycles_; }
  // Modelled timeline: a pure function of (instructions, core spec), identical for every call.
  // host_ns is the emulator's wall time per instruction of the last call on this Program.
  const std::vector<double>& host_ns() const { return host_ns_; }
  // Engine of each instruction's main part and the end of it (an aux part may run longer), spills, memory.
  const std::vector<SpillEvent>& spills() const { return spills_; }
  const std::vector<int32_t>& engine() const { return engine_; }
  const std::vector<int32_t>& aux_engine() const { return aux_engine_; }  // -1: none
  const std::vector<double>& main_end_ns() const { return main_end_ns_; }
  const std::vector<double>& aux_start_ns() const { return aux_start_ns_; }
  const std::vector<double>& aux_end_ns() const { return aux_end_ns_; }
  const MemoryStats& memory() const { return memory_; }
  int n_inputs() const { return n_inputs_; }
  int n_outputs() const { return n_outputs_; }
  const CoreSpec& spec() const { return spec_; }
  std::mutex& mutex() { return mu_; }

 private:
  CoreSpec spec_;
  std::vector<Instr> instrs_;
  std::vector<int64_t> deps_;
  std::vector<BufferDesc> buffers_;
  std::vector<const OpDef*> defs_;
  int n_inputs_, n_outputs_;
  // execution state, allocated once at load (no per-call allocation)
  std::unique_ptr<float[], void (*)(void*)> arena_{nullptr, nullptr};
  std::unique_ptr<float[], void (*)(void*)> scratch_{nullptr, nullptr};
  std::vector<float*> buf_ptrs_;
  std::vector<int64_t> buf_numel_;
  std::vector<DType> buf_store_;     // per buffer: element storage (buf_storage)
  std::vector<uint8_t> buf_tiny_;    // per 16-bit constant: has_tiny_half, computed once at load
  std::vector<double> start_ns_, end_ns_, cycles_, host_ns_;
  std::vector<SpillEvent> spills_;
  std::vector<int32_t> engine_, aux_engine_;
  std::vector<double> main_end_ns_, aux_start_ns_, aux_end_ns_;
  MemoryStats memory_;
  RunStats modelled_;  // every execution's stats (the modelled timeline's latency and engine counters)
  int64_t runs_ = 0;
  std::mutex mu_;

  int64_t host_in_bytes_ = 0, host_out_bytes_ = 0;
  void simulate(const std::vector<Cost>& costs);
};

// Throws unless every cost parameter of the spec was filled in from neuron_emu/hardware.py.
void check_spec(const CoreSpec& s);

// 64-byte aligned, zero-filled float allocation released with std::free; std::invalid_argument (naming
// `what`) when n is negative, overflows, or cannot be allocated.
std::unique_ptr<float[], void (*)(void*)> alloc_floats(int64_t n, const char* what = "buffer");

// The most a Program may allocate for its arena (and, separately, its scratch): NEMU_MAX_ARENA_BYTES, else
// min(physical memory / 2, 64 GiB). A corrupt artifact cannot make a small file allocate the machine.
int64_t max_arena_bytes();

}  // namespace nemu
