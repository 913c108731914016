#include "loaded_program.h"

#include <algorithm>
#include <chrono>

namespace nemu {

namespace {
thread_local LastRun t_last;
std::atomic<uint64_t> g_tick{0};
}  // namespace

void stats_to(const RunStats& st, double* d) {
  d[0] = st.latency_ns;
  const Counters& c = st.counters;
  for (int e = 0; e < kNumEngines; ++e) {
    double* f = d + 1 + e * kStatsFields;
    f[0] = c.busy_ns[e];
    f[1] = c.busy_cycles[e];
    f[2] = static_cast<double>(c.instructions[e]);
    f[3] = static_cast<double>(c.bytes[e]);
    f[4] = static_cast<double>(c.flops[e]);
  }
}

void CoreCounters::record(const double* stats, int64_t host_ns) {
  std::lock_guard<std::mutex> lk(mu_);
  for (int i = 0; i < kStatsLen; ++i) acc_[i] += stats[i];
  ++executions_;
  last_latency_ns_ = stats[0];
  host_ns_ += host_ns;
  recent_[recent_next_] = stats[0];
  recent_next_ = (recent_next_ + 1) % kRecent;
  recent_count_ = std::min(recent_count_ + 1, kRecent);
}

CoreCounters::Snapshot CoreCounters::snapshot() const {
  std::lock_guard<std::mutex> lk(mu_);
  Snapshot s;
  s.acc.assign(acc_, acc_ + kStatsLen);
  s.executions = executions_;
  s.last_latency_ns = last_latency_ns_;
  s.host_ns = host_ns_;
  return s;
}

std::vector<double> CoreCounters::recent() const {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<double> r;
  r.reserve(recent_count_);
  for (size_t i = 0; i < recent_count_; ++i) r.push_back(recent_[(recent_next_ + kRecent - recent_count_ + i) % kRecent]);
  return r;
}

void CoreCounters::reset() {
  std::lock_guard<std::mutex> lk(mu_);
  std::fill(acc_, acc_ + kStatsLen, 0.0);
  executions_ = 0;
  last_latency_ns_ = 0;
  host_ns_ = 0;
  recent_next_ = recent_count_ = 0;
}

uint64_t LoadedProgram::next_use_tick() { return g_tick.fetch_add(1, std::memory_order_relaxed) + 1; }

void LoadedProgram::execute(void* const* inputs, void* const* outputs, double* stats) {
  const auto t0 = std::chrono::steady_clock::now();
  const RunStats st = prog->run(inputs, outputs);
  const int64_t host_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
  stats_to(st, stats);
  touch();
  if (counters) counters->record(stats, host_ns);
  if (token) {  // a program the runtime placed (not, e.g., a lazy-device step's)
    t_last.token = token;
    std::copy(stats, stats + kStatsLen, t_last.stats);
  }
}

const LastRun& last_run() { return t_last; }

}  // namespace nemu
