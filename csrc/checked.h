// Checked int64 arithmetic for load-time validation: a saved model is untrusted input, so every size,
// offset, stride or count read from it is combined through these, never with a bare + or * (signed
// overflow is undefined behaviour, and a wrapped bound would let a corrupt artifact pass validation).
// Each helper throws std::invalid_argument (Python ValueError) naming the op and the quantity.
#pragma once
#include <cstdint>
#include <string>

#include "common.h"

namespace nemu {

// a * b for non-negative sizes.
inline int64_t checked_mul(int64_t a, int64_t b, const std::string& op, const char* what) {
  int64_t r;
  if (a < 0 || b < 0) fail(op + ": negative " + what);
  if (__builtin_mul_overflow(a, b, &r)) fail(op + ": " + what + " overflows int64");
  return r;
}

// a + b (either sign).
inline int64_t checked_add(int64_t a, int64_t b, const std::string& op, const char* what) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) fail(op + ": " + what + " overflows int64");
  return r;
}

// Whether a * b / a + b would overflow (for callers that build their own message).
inline bool mul_overflows(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_mul_overflow(a, b, &r);
}
inline bool add_overflows(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_add_overflow(a, b, &r);
}

}  // namespace nemu
