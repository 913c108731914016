// Ops registered at run time from a separately built shared library (nemu_op_abi.h): the
// trampolines that adapt the library's C entry points to the registry's check/cost/exec.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "isa.h"

namespace nemu {

// Registers `name` with fields `ints` then `reals` (slots in that order) and the library functions at
// the given addresses; returns the op code. The library must stay loaded while the op is in use.
int32_t register_library_op(const std::string& name, Engine engine, const std::vector<std::string>& operands,
                            const std::vector<std::string>& ints, const std::vector<std::string>& reals, int writes,
                            uintptr_t check_fn, uintptr_t cost_fn, uintptr_t exec_fn);

}  // namespace nemu
