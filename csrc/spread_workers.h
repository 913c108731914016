// Helper threads for a native call that spreads its compiled-batch chunks over several cores (forward_op.cpp:
// DataParallel and replicated dynamic batching): the calling thread runs the first core's share, helper j the j-th
// other share, with no Python thread and no GIL involved. Helpers are numbered by share, not by core: the copies a
// call uses rotate between calls (as runtime/batching.py rotates them), and a DataParallel loop then keeps finding
// the same helper awake (it spins briefly before parking). Any thread may run any core's Program: a Program
// serialises its own executions. Helpers start at first use and are never joined (as the kernel pool's); a
// forked child starts its own.
#pragma once
#include <cstddef>
#include <functional>

namespace nemu {

// Runs fn(i) for every i in [0, n): i = 0 on the calling thread, the others on helper i, concurrently; returns
// when all have finished, and rethrows the first exception.
void run_spread(size_t n, const std::function<void(size_t)>& fn);

}  // namespace nemu
