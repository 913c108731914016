/* The C ABI of operators registered at run time (neuron_emu.ops.register_library_op): a separately
 * built shared library exports three functions with these signatures, and the emulator calls them as
 * the op's check (once at program load), cost (once at load: a pure function of the instruction and
 * the core) and exec (every execution). Plain C so that any compiler, and no C++ runtime, is needed.
 *
 * Field values: ints[k] / reals[k] are the op's k-th integer / real field in the order given at
 * registration. Operands: fp32 buffers, operand[j] holding numel[j] elements; the last one is the
 * output when the op was registered with writes=1. check and exec return 0 on success, or write a
 * message into err (errlen bytes, NUL-terminated) and return non-zero; the emulator raises it as an
 * error naming the op.
 */
#ifndef NEMU_OP_ABI_H
#define NEMU_OP_ABI_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NEMU_OP_ABI_VERSION 1

typedef struct {
  int32_t n_operands;
  const int64_t* ints;
  const double* reals;
} nemu_instr;

typedef struct {
  int32_t generation;     /* 1 = NeuronCore-v1, 2 = NeuronCore-v2 */
  int32_t partitions;     /* SBUF partitions */
  int32_t gpsimd_cores;   /* GpSimd processors */
  int32_t gpsimd_lanes;   /* fp32 lanes of one GpSimd processor */
  int32_t gpsimd_start;   /* GpSimd start-up cycles */
  double clock_ghz;       /* clock of the engine the op runs on */
} nemu_core;

typedef struct {
  double cycles;          /* on the op's engine */
  int64_t instructions;
  int64_t bytes;
  int64_t flops;
} nemu_cost;

typedef int (*nemu_check_fn)(const nemu_instr* in, const int64_t* numel, char* err, int64_t errlen);
typedef nemu_cost (*nemu_cost_fn)(const nemu_instr* in, const nemu_core* core);
typedef int (*nemu_exec_fn)(const nemu_instr* in, float* const* operand, const int64_t* numel, char* err,
                            int64_t errlen);

#ifdef __cplusplus
}
#endif
#endif /* NEMU_OP_ABI_H */
