// Dependency checker: proves, from each instruction's read and write regions, that every memory
// hazard (RAW / WAR / WAW) with an earlier instruction is ordered by a path in the dependency
// lists, so the simulated timeline can never start an instruction before memory it touches is safe.
// Optional at load (Program constructor flag; the test suite turns it on via NEMU_CHECK_DEPS=1).
#pragma once
#include <vector>

#include "isa.h"

namespace nemu {

struct BufferDesc;

// Throws std::invalid_argument naming both instructions (index, op), the hazard kind and the arena
// range/buffers on the first hazard not ordered by a dependency path. Which operands an instruction
// writes comes from its op's schema (operand_is_written, isa.h). Regions are whole buffers on
// the arena (constants are read-only host memory and never hazards). Expects validated inputs.
void check_dependencies(const std::vector<Instr>& instrs, const std::vector<const OpDef*>& defs,
                        const std::vector<int64_t>& deps,
                        const std::vector<BufferDesc>& buffers);

}  // namespace nemu
