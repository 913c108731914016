#include "select_row.h"

#include "simd.h"

namespace nemu {
namespace {

NEMU_ALWAYS_INLINE void select_row_body(const float* c, int64_t sc, const float* a, int64_t sa, const float* b,
                                        int64_t sb, float* o, int64_t so, int64_t n) {
  if (sc == 1 && sa == 1 && sb == 1 && so == 1) {
    for (int64_t i = 0; i < n; ++i) o[i] = c[i] != 0.f ? a[i] : b[i];
  } else {
    for (int64_t i = 0; i < n; ++i) o[i * so] = c[i * sc] != 0.f ? a[i * sa] : b[i * sb];
  }
}

}  // namespace

NEMU_SIMD_DISPATCH(select_row,
                   (const float* c, int64_t sc, const float* a, int64_t sa, const float* b, int64_t sb, float* o,
                    int64_t so, int64_t n),
                   (c, sc, a, sa, b, sb, o, so, n))

}  // namespace nemu
