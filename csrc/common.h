// Shared vocabulary of the engine kernels: engines, emulated dtypes, the per-core hardware
// parameters that drive cost formulas, and the cost/counter records every kernel produces.
#pragma once
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace nemu {

enum class Engine : int32_t { Tensor = 0, Vector = 1, Scalar = 2, GpSimd = 3, Dma = 4 };
constexpr int kNumEngines = 5;
const char* engine_name(Engine e);

// Emulated element types. Storage is always fp32: a value "in bf16" is an fp32 holding a
// bf16-representable value, rounded exactly as the hardware would (see dtype_convert.h).
// kDTypes is the C++ half of the one dtype table; neuron_emu/dtypes.py builds the Python half
// (torch dtypes, auto-cast names) from it through _C.dtype_table().
enum class DType : int32_t { F32 = 0, BF16 = 1, FP16 = 2, TF32 = 3, FP8E4M3 = 4, FP8E5M2 = 5 };
struct DTypeInfo {
  const char* name;
  int bytes;  // storage size on the device (what DMA and the engines are charged for; tf32 sits in an fp32 container)
};
constexpr DTypeInfo kDTypes[] = {{"fp32", 4}, {"bf16", 2}, {"fp16", 2}, {"tf32", 4}, {"fp8_e4m3", 1}, {"fp8_e5m2", 1}};
constexpr int kNumDTypes = sizeof(kDTypes) / sizeof(kDTypes[0]);
inline const char* dtype_name(DType d) { return kDTypes[static_cast<int>(d)].name; }
inline int dtype_bytes(DType d) { return kDTypes[static_cast<int>(d)].bytes; }
DType dtype_from_int(int64_t v);  // throws std::invalid_argument on an unknown code

// Per-NeuronCore parameters. Every value comes from neuron_emu/hardware.py (which cites the sources);
// nothing here has a default, so a spec that was not filled in costs nothing rather than a stale guess.
struct CoreSpec {
  int32_t generation = 0;            // 1 = NeuronCore-v1 (Inf1), 2 = NeuronCore-v2 (Inf2/Trn1)
  double clock_ghz[kNumEngines] = {};  // per engine; the Dma entry is unused (DMA costs in ns)
  int32_t partitions = 0;            // SBUF partitions = PE rows = max contraction per matmul
  int32_t pe_cols = 0;               // max stationary free size M
  int32_t moving_max = 0;            // max moving free size N (one PSUM bank)
  int32_t free_tile = 0;             // max free-axis elements per partition in one VectorE/ScalarE instruction
  int32_t mm_init_latency = 0;       // TensorE MM_INIT_LATENCY
  int32_t fp32_matmul_factor = 0;    // fp32 inputs run at 1/factor rate
  int32_t min_ii = 0;                // VectorE/ScalarE MIN_II
  int32_t gpsimd_start = 0;          // GpSimd start-up cycles
  int32_t gpsimd_cores = 0;
  int32_t gpsimd_lanes = 0;          // fp32 lanes of one GpSimd core
  double dma_engines = 0;            // DMA queues per core
  double dma_bytes_per_ns_per_engine = 0;  // GB/s == bytes/ns
  double dma_fixed_ns = 0;           // per-transfer descriptor/semaphore latency
  double hbm_bytes_per_ns = 0;       // per-core share of device memory bandwidth
  bool has_fp32_matmul = false;      // NeuronCore-v1 TensorE has no fp32 inputs
  // docs/cost-model.md: the overheads, capacities and host link behind Program::simulate and the DMA costs
  int32_t dep_overhead_cycles = 0;   // static overhead of a Vector/Scalar/GpSimd instruction that waits on a dependency
  double dma_desc_half_bytes = 0;    // DMA payload per descriptor (per partition) that runs at half the peak rate
  double sbuf_bytes = 0;             // SBUF capacity: activations + staged weights beyond it spill to HBM
  double host_bytes_per_ns = 0;      // host <-> device link (PCIe) per direction
};

// What one kernel call costs on its engine. `instructions` counts ISA-level instructions
// (e.g. one LoadStationary/MultiplyMoving pair per matmul tile).
// A fused instruction can also occupy a second engine (`aux`): PSUM evacuation of a matmul's output on ScalarE
// (pipelined with the matmul: the instruction takes max of the two), softmax's exp on ScalarE (serial with the
// VectorE passes: the sum). `latency_ns` is completion latency that does not occupy the engine (a DMA's
// descriptor/semaphore time, overlapped with other transfers on the other queues).
struct Cost {
  Engine engine = Engine::Vector;
  double cycles = 0;     // engine cycles (for Dma: nanoseconds)
  int64_t instructions = 0;
  int64_t bytes = 0;     // bytes read + written by the engine (DMA: bytes moved)
  int64_t flops = 0;
  Engine aux_engine = Engine::Scalar;
  double aux_cycles = 0;        // cycles on aux_engine (0: none)
  int64_t aux_instructions = 0;
  bool aux_serial = false;      // aux runs after the main part instead of pipelined with it
  double latency_ns = 0;
  double ns(const CoreSpec& s) const {
    return engine == Engine::Dma ? cycles : cycles / s.clock_ghz[static_cast<int>(engine)];
  }
  double aux_ns(const CoreSpec& s) const {
    return aux_cycles <= 0 ? 0.0 : aux_engine == Engine::Dma ? aux_cycles : aux_cycles / s.clock_ghz[static_cast<int>(aux_engine)];
  }
  // Wall time of the instruction once started (both parts, plus completion latency).
  double span_ns(const CoreSpec& s) const {
    const double a = ns(s), b = aux_ns(s);
    return (aux_serial ? a + b : std::max(a, b)) + latency_ns;
  }
};

struct Counters {
  double busy_cycles[kNumEngines] = {};
  double busy_ns[kNumEngines] = {};
  int64_t instructions[kNumEngines] = {};
  int64_t bytes[kNumEngines] = {};
  int64_t flops[kNumEngines] = {};
  // Saturating: a corrupt artifact's instruction may legitimately cost ~2^63 bytes or cycles (found by the fuzzer
  // under UBSan: signed overflow in this sum)
  static int64_t sat_add(int64_t a, int64_t b) {
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? (b > 0 ? INT64_MAX : INT64_MIN) : r;
  }
  void add(const Cost& c, const CoreSpec& s) {
    const int e = static_cast<int>(c.engine);
    busy_cycles[e] += c.cycles;
    busy_ns[e] += c.ns(s);
    instructions[e] = sat_add(instructions[e], c.instructions);
    bytes[e] = sat_add(bytes[e], c.bytes);
    flops[e] = sat_add(flops[e], c.flops);
    if (c.aux_cycles > 0) {
      const int a = static_cast<int>(c.aux_engine);
      busy_cycles[a] += c.aux_cycles;
      busy_ns[a] += c.aux_ns(s);
      instructions[a] = sat_add(instructions[a], c.aux_instructions);
    }
  }
  void add_dma(double ns, int64_t nbytes) {  // a transfer the program model adds (SBUF spill/reload)
    const int e = static_cast<int>(Engine::Dma);
    busy_cycles[e] += ns;
    busy_ns[e] += ns;
    instructions[e] = sat_add(instructions[e], int64_t{1});
    bytes[e] = sat_add(bytes[e], nbytes);
  }
  void reset() { *this = Counters(); }
};

// Error for bad arguments; pybind11 maps std::invalid_argument to Python ValueError.
[[noreturn]] inline void fail(const std::string& msg) { throw std::invalid_argument(msg); }

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace nemu
