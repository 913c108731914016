// A Program placed on an emulated NeuronCore, as both callers see it: the Python runtime (LoadedModel, through
// Program.run) and the native forward op (forward_op.h), which runs it without the GIL and may still hold it
// after Python dropped its own reference. One execute() for both: the same stats, per-core counters and
// "last call" record whichever path ran it.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "program.h"

namespace nemu {

// One call's stats as a flat vector: [latency_ns, then per engine busy_ns, busy_cycles, instructions, bytes,
// flops] (Program.STATS_FIELDS; counts are exact in float64 below 2^53).
constexpr int kStatsFields = 5;
constexpr int kStatsLen = 1 + kNumEngines * kStatsFields;
void stats_to(const RunStats& st, double* out);

// A NeuronCore's counters, accumulated over every execution on it (monitoring: neuron-emu monitor/top).
class CoreCounters {
 public:
  static constexpr size_t kRecent = 1024;  // latencies kept for percentiles
  struct Snapshot {
    std::vector<double> acc;     // summed stats vectors
    int64_t executions = 0;
    double last_latency_ns = 0;
    int64_t host_ns = 0;         // emulator wall time spent executing on the core
  };
  void record(const double* stats, int64_t host_ns);
  Snapshot snapshot() const;
  std::vector<double> recent() const;  // modelled latency of the most recent executions, oldest first
  void reset();

 private:
  mutable std::mutex mu_;
  double acc_[kStatsLen] = {};
  int64_t executions_ = 0;
  double last_latency_ns_ = 0;
  int64_t host_ns_ = 0;
  double recent_[kRecent] = {};
  size_t recent_next_ = 0, recent_count_ = 0;
};

struct LoadedProgram {
  std::unique_ptr<Program> prog;
  std::shared_ptr<void> keep_alive;        // the constants' arrays, which Program reads in place
  std::shared_ptr<CoreCounters> counters;  // of the core it is placed on (null: counted nowhere)
  int64_t token = 0;                       // names the Python LoadedModel in last_run()
  std::atomic<uint64_t> last_used{0};      // use tick (next_use_tick): the core's least-recently-used order

  // Runs once (the caller has released the GIL): this call's stats into `stats` (kStatsLen doubles), counted
  // on the core and, when placed (token != 0), remembered as the calling thread's last run.
  void execute(void* const* inputs, void* const* outputs, double* stats);
  void touch() { last_used.store(next_use_tick(), std::memory_order_relaxed); }
  static uint64_t next_use_tick();
};

// The calling thread's last execute(): the program's token and stats (token 0: none yet).
struct LastRun {
  int64_t token = 0;
  double stats[kStatsLen] = {};
};
const LastRun& last_run();

}  // namespace nemu
