// One worker thread per emulated NeuronCore, for a native call that spreads its compiled-batch chunks over
// several cores (forward_op.cpp: DataParallel and replicated dynamic batching): the calling thread runs the first
// core's share, the cores' workers the rest, with no Python thread and no GIL involved. Workers start at first
// use and are never joined (as the kernel pool's); a forked child starts its own.
#pragma once
#include <cstddef>
#include <functional>
#include <vector>

namespace nemu {

// Runs fn(i) for every i in [0, cores.size()): i = 0 on the calling thread, the others on the workers of
// cores[i] (each core's worker runs its tasks in order), concurrently; returns when all have finished, and
// rethrows the first exception.
void run_on_cores(const std::vector<int>& cores, const std::function<void(size_t)>& fn);

}  // namespace nemu
