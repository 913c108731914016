// neuron::forward_v2 / neuron::forward_1 as native torch kernels, so that a traced model's call runs from the
// TorchScript interpreter straight into Program::run without taking the GIL (the Python kernel took it three
// times per call, which kept two emulated cores called from two threads from running in parallel).
//
// Not built against libtorch: the kernel is registered and reads its tensors through torch's stable C ABI, resolved
// at run time (torch_stable_abi.h). Without it install() returns false and the Python kernels stay in charge.
//
// The native kernel runs only the common case: a model placed on one core or replicated round robin
// (placements made by neuron_emu/runtime/placement.py), inputs of the compiled shapes and dtypes (or, with
// dynamic batching, any common size of dimension 0, run as compiled-batch chunks on the thread's pinned core, or
// spread over the copies: forward_op.cpp's spread_chunks), contiguous, on the CPU, none requiring grad (with grad
// mode on, a floating-point input is asked through aten::alias + aten::is_leaf: the stable ABI has no
// requires_grad getter). Everything else (the first call, which places the model, a thread pinned to a core
// without a copy, pipeline stages, fp32-as-fp16 inputs, any input the runtime must refuse with its error text,
// autograd) is passed on unchanged to the Python implementation, registered as `neuron::_<op>_python`.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "loaded_program.h"

namespace nemu {

// Registers the native kernel of `neuron::<op>` for the Autograd and CPU keys, passing what it does not run to
// `neuron::<fallback>` (same schema). torch_version: torch's (major << 56 | minor << 48 | patch << 40).
// False (nothing registered) when this libtorch lacks the stable C ABI this needs.
bool forward_op_install(const std::string& op, const std::string& fallback, uint64_t torch_version);

struct ForwardIo {
  std::string dtype;            // torch dtype name without "torch.", e.g. "float32"
  std::vector<int64_t> sizes;
  int64_t itemsize = 0;         // bytes per element
};

// Where the native kernel runs an artifact: its copies (one per core, used round robin unless the calling
// thread pinned a core) and the I/O it was compiled for. Keyed by the artifact tensor's data pointer and
// checked against its uid bytes (prefix offset 16) on every call.
struct ForwardCopy {
  std::shared_ptr<LoadedProgram> program;
  int core = 0;
};
// dynamic_batch > 0: dynamic batching of the first n_user inputs (runtime/batching.py's rules) for that
// compiled batch; the other inputs (external weights, states) are fed whole.
void forward_op_place(uintptr_t artifact_data, int64_t artifact_numel, const std::string& uid,
                      std::vector<ForwardCopy> copies, const std::vector<ForwardIo>& inputs,
                      const std::vector<ForwardIo>& outputs, int64_t dynamic_batch, int64_t n_user);
void forward_op_remove(uintptr_t artifact_data);
// The calling thread's pinned core (-1: none), as neuron_emu.runtime.placement.pinned sets it.
void forward_op_pin(int core);
// Executions the native kernel ran itself since the process started (tests, benchmarks).
int64_t forward_op_native_calls();

}  // namespace nemu
