// Device utilities of a GpSimd custom operator (neuron-api.md 4.2, 4.5): which of the emulated GpSimd
// cores runs this invocation of the kernel, and how many run it (1 unless the library is multicore).
#pragma once
#include <stdint.h>

uint32_t get_cpu_id();
uint32_t get_cpu_count();
