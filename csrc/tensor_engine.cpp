#include "isa.h"
namespace nemu {
void register_tensor_engine_ops() {}
}  // namespace nemu
