// Dependency checker: proves, from each instruction's read and write regions, that every memory
// hazard (RAW / WAR / WAW) with an earlier instruction is ordered by a path in the dependency
// lists, so the simulated timeline can never start an instruction before memory it touches is safe.
// Optional at load (Program constructor flag; the test suite turns it on via NEMU_CHECK_DEPS=1).
#pragma once
#include <vector>

#include "isa.h"

namespace nemu {

struct BufferDesc;

// Whether operand j of `in` is written (else read). Today's convention: every op writes its last
// operand, except DmaLoad (cost only: writes nothing) and IoOut (reads it); IoIn writes its only
// operand. The one place this rule lives: it will be replaced by the op schema's operand roles.
bool operand_is_written(const Instr& in, int j);

// Throws std::invalid_argument naming both instructions (index, op), the hazard kind and the arena
// range/buffers on the first hazard not ordered by a dependency path. Regions are whole buffers on
// the arena (constants are read-only host memory and never hazards). Expects validated inputs.
void check_dependencies(const std::vector<Instr>& instrs, const std::vector<int64_t>& deps,
                        const std::vector<BufferDesc>& buffers);

}  // namespace nemu
