// The device tensor library (neuron-api.md 4.3): tensors a kernel creates (factories), the elementwise ops
// without broadcasting, fill_, and the 16-bit float storage types.
#include <string.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "state.h"

namespace torch {
namespace neuron_emu {

// ---- tensors made by the kernel ----
TensorImpl* new_tensor(IntArrayRef size, ScalarType dtype, const char* fn, bool zero) {
  Call& c = call();
  if (esize_of(dtype) == 0 || dtype == ScalarType::Long || dtype == ScalarType::Double)
    fail_at(std::string(fn) + ": dtype " + dtype_name(dtype) +
            " is not a device dtype (kFloat, kBFloat16, kHalf, kInt, kChar, kShort, kByte)");
  if (size.size() > static_cast<size_t>(kMaxDims))
    fail_at(std::string(fn) + ": " + std::to_string(size.size()) + " dims exceed the GpSimd limit of 8");
  std::unique_ptr<TensorImpl> t(new TensorImpl());
  t->ndim = static_cast<int32_t>(size.size());
  t->numel = 1;
  for (int d = t->ndim - 1; d >= 0; --d) {
    if (size[d] < 0 || size[d] > 65535)
      fail_at(std::string(fn) + ": size " + std::to_string(size[d]) + " of dim " + std::to_string(d) +
              " is outside the GpSimd limit [0, 65535]");
    t->sizes[d] = size[d];
    t->strides[d] = t->numel;
    t->numel *= size[d];
  }
  t->dtype = dtype;
  t->role = c.shape_only ? kShapeOnly : kLocal;
  t->index = static_cast<int32_t>(c.locals.size());
  t->shared = false;
  t->policy = CoherencyEnforcer::Policy::COHERENT;
  t->data = nullptr;
  if (!c.shape_only) {
    const size_t n = static_cast<size_t>(t->numel) * esize_of(dtype);
    t->data = t_buffers.get(n + 1, zero);  // returned to the cache when the call ends
    if (!t->data) fail_at(std::string(fn) + ": out of memory for " + std::to_string(n) + " bytes");
    c.c.lib_elems += t->numel;
  }
  c.locals.push_back(std::move(t));
  return c.locals.back().get();
}

double load(const TensorImpl* t, int64_t i) {
  const char* p = static_cast<const char*>(t->data);
  switch (t->dtype) {
    case ScalarType::Byte: return reinterpret_cast<const uint8_t*>(p)[i];
    case ScalarType::Char: return reinterpret_cast<const int8_t*>(p)[i];
    case ScalarType::Short: return reinterpret_cast<const int16_t*>(p)[i];
    case ScalarType::Int: return reinterpret_cast<const int32_t*>(p)[i];
    case ScalarType::Float: return reinterpret_cast<const float*>(p)[i];
    case ScalarType::Half: return float(reinterpret_cast<const Half*>(p)[i]);
    case ScalarType::BFloat16: return float(reinterpret_cast<const BFloat16*>(p)[i]);
    default: return 0;
  }
}
void store(TensorImpl* t, int64_t i, double v) {
  char* p = static_cast<char*>(t->data);
  switch (t->dtype) {
    case ScalarType::Byte: reinterpret_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(static_cast<int64_t>(v)); break;
    case ScalarType::Char: reinterpret_cast<int8_t*>(p)[i] = static_cast<int8_t>(static_cast<int64_t>(v)); break;
    case ScalarType::Short: reinterpret_cast<int16_t*>(p)[i] = static_cast<int16_t>(static_cast<int64_t>(v)); break;
    case ScalarType::Int: reinterpret_cast<int32_t*>(p)[i] = static_cast<int32_t>(static_cast<int64_t>(v)); break;
    case ScalarType::Float: reinterpret_cast<float*>(p)[i] = static_cast<float>(v); break;
    case ScalarType::Half: reinterpret_cast<Half*>(p)[i] = Half(static_cast<float>(v)); break;
    case ScalarType::BFloat16: reinterpret_cast<BFloat16*>(p)[i] = BFloat16(static_cast<float>(v)); break;
    default: break;
  }
}
bool integral(ScalarType t) { return t != ScalarType::Float && t != ScalarType::Half && t != ScalarType::BFloat16; }

void same_shape(const char* fn, const TensorImpl* a, const TensorImpl* b) {
  bool same = a->ndim == b->ndim;
  for (int d = 0; same && d < a->ndim; ++d) same = a->sizes[d] == b->sizes[d];
  if (!same)
    fail_at(std::string(fn) + ": shapes " + shape_str(a) + " and " + shape_str(b) +
            " differ (device ops do not broadcast)");
}

// result[i] = f(a[i], b[i]) (b may be null: unary).
template <typename F>
Tensor& elementwise(const char* fn, Tensor& result, const Tensor& a, const Tensor* b, F f, bool bitwise = false) {
  TensorImpl* r = result.unsafeGetTensorImpl();
  const TensorImpl* x = a.unsafeGetTensorImpl();
  const TensorImpl* y = b ? b->unsafeGetTensorImpl() : nullptr;
  if (!r || !x || (b && !y)) fail_at(std::string(fn) + ": undefined tensor argument");
  same_shape(fn, r, x);
  if (y) same_shape(fn, r, y);
  if (bitwise && (!integral(x->dtype) || (y && !integral(y->dtype))))
    fail_at(std::string(fn) + ": bitwise ops need integral tensors, got " + dtype_name(x->dtype));
  data_for(const_cast<TensorImpl*>(x), false, "t");
  if (y) data_for(const_cast<TensorImpl*>(y), false, "t");
  data_for(r, true, "t");
  for (int64_t i = 0; i < r->numel; ++i) store(r, i, f(load(x, i), y ? load(y, i) : 0.0));
  call().c.lib_elems += r->numel;
  return result;
}
Tensor like(const Tensor& a, const char* fn) {
  const TensorImpl* x = a.unsafeGetTensorImpl();
  if (!x) fail_at(std::string(fn) + ": undefined tensor argument");
  return Tensor(new_tensor(a.sizes(), x->dtype, fn, false));
}
int64_t as_int(double v) { return static_cast<int64_t>(v); }
// ---- Half / BFloat16 ----
}  // namespace neuron_emu

Half::Half(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t au = u & 0x7fffffffu;
  if (au > 0x7f800000u) { x = static_cast<uint16_t>(sign | 0x7e00u); return; }
  if (au >= 0x477ff000u) { x = static_cast<uint16_t>(sign | 0x7c00u); return; }  // overflow to inf
  if (au < 0x38800000u) {  // subnormal half: round the value scaled by 2^24
    float a;
    memcpy(&a, &au, 4);
    x = static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(a * 16777216.0f)));
    return;
  }
  const uint32_t r = au + 0xfffu + ((au >> 13) & 1u) - (112u << 23);
  x = static_cast<uint16_t>(sign | (r >> 13));
}
Half::operator float() const {
  const uint32_t sign = (x & 0x8000u) << 16, e = (x >> 10) & 0x1f, m = x & 0x3ff;
  float f;
  if (e == 0) {
    f = std::ldexp(static_cast<float>(m), -24);
    return sign ? -f : f;
  }
  const uint32_t u = sign | (e == 31 ? 0x7f800000u | (m << 13) : ((e + 112) << 23) | (m << 13));
  memcpy(&f, &u, 4);
  return f;
}
BFloat16::BFloat16(float f) : x(neuron_emu::bf16_bits(f)) {}
BFloat16::operator float() const {
  const uint32_t u = static_cast<uint32_t>(x) << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

// ---- factories and elementwise ops (neuron-api.md 4.3) ----
using neuron_emu::new_tensor;
using neuron_emu::elementwise;
using neuron_emu::like;
Tensor empty(IntArrayRef size, TensorOptions o) { return Tensor(new_tensor(size, o.dtype(), "torch::empty", false)); }
Tensor zeros(IntArrayRef size, TensorOptions o) { return Tensor(new_tensor(size, o.dtype(), "torch::zeros", true)); }
Tensor full(IntArrayRef size, Scalar v, TensorOptions o) {
  Tensor t(new_tensor(size, o.dtype(), "torch::full", false));
  if (t.unsafeGetTensorImpl()->data) t.fill_(v);
  return t;
}
Tensor ones(IntArrayRef size, TensorOptions o) { return full(size, 1, o); }
Tensor eye(int64_t n, int64_t m, TensorOptions o) {
  const int64_t dims[2] = {n, m};
  Tensor t(new_tensor(IntArrayRef(dims, 2), o.dtype(), "torch::eye", true));
  neuron_emu::TensorImpl* x = t.unsafeGetTensorImpl();
  if (x->data)
    for (int64_t i = 0; i < std::min(n, m); ++i) neuron_emu::store(x, i * m + i, 1.0);
  return t;
}
Tensor eye(int64_t n, TensorOptions o) { return eye(n, n, o); }

const Tensor& Tensor::fill_(Scalar value) const {
  neuron_emu::TensorImpl* t = impl();
  neuron_emu::data_for(t, true, "t");
  for (int64_t i = 0; i < t->numel; ++i) neuron_emu::store(t, i, value.toDouble());
  neuron_emu::call().c.lib_elems += t->numel;
  return *this;
}

#define NEMU_UNARY_IMPL(name, expr, bitwise)                                                              \
  Tensor& name##_out(Tensor& result, const Tensor& self) {                                              \
    return elementwise("torch::" #name "_out", result, self, nullptr, [](double a, double) { return expr; }, \
                       bitwise);                                                                         \
  }                                                                                                      \
  Tensor name(const Tensor& self) {                                                                      \
    Tensor r = like(self, "torch::" #name);                                                              \
    return name##_out(r, self);                                                                          \
  }
NEMU_UNARY_IMPL(abs, std::fabs(a), false)
NEMU_UNARY_IMPL(ceil, std::ceil(a), false)
NEMU_UNARY_IMPL(floor, std::floor(a), false)
NEMU_UNARY_IMPL(sin, static_cast<double>(std::sin(static_cast<float>(a))), false)
NEMU_UNARY_IMPL(cos, static_cast<double>(std::cos(static_cast<float>(a))), false)
NEMU_UNARY_IMPL(tan, static_cast<double>(std::tan(static_cast<float>(a))), false)
NEMU_UNARY_IMPL(log, static_cast<double>(std::log(static_cast<float>(a))), false)
NEMU_UNARY_IMPL(log2, static_cast<double>(std::log2(static_cast<float>(a))), false)
NEMU_UNARY_IMPL(log10, static_cast<double>(std::log10(static_cast<float>(a))), false)
NEMU_UNARY_IMPL(exp, static_cast<double>(std::exp(static_cast<float>(a))), false)
NEMU_UNARY_IMPL(bitwise_not, static_cast<double>(~neuron_emu::as_int(a)), true)
#undef NEMU_UNARY_IMPL

#define NEMU_BINARY_IMPL(name, expr, bitwise)                                                                  \
  Tensor& name##_out(Tensor& result, const Tensor& self, const Tensor& other) {                              \
    return elementwise("torch::" #name "_out", result, self, &other, [](double a, double b) { return expr; }, \
                       bitwise);                                                                              \
  }                                                                                                           \
  Tensor& name##_out(Tensor& result, const Tensor& self, Scalar other) {                                     \
    const double b = other.toDouble();                                                                        \
    return elementwise("torch::" #name "_out", result, self, nullptr, [b](double a, double) { return expr; }, \
                       bitwise);                                                                              \
  }                                                                                                           \
  Tensor name(const Tensor& self, const Tensor& other) {                                                     \
    Tensor r = like(self, "torch::" #name);                                                                   \
    return name##_out(r, self, other);                                                                        \
  }                                                                                                           \
  Tensor name(const Tensor& self, Scalar other) {                                                            \
    Tensor r = like(self, "torch::" #name);                                                                   \
    return name##_out(r, self, other);                                                                        \
  }
NEMU_BINARY_IMPL(mul, a * b, false)
NEMU_BINARY_IMPL(div, a / b, false)
NEMU_BINARY_IMPL(pow, static_cast<double>(std::pow(static_cast<float>(a), static_cast<float>(b))), false)
NEMU_BINARY_IMPL(bitwise_and, static_cast<double>(neuron_emu::as_int(a) & neuron_emu::as_int(b)), true)
NEMU_BINARY_IMPL(bitwise_or, static_cast<double>(neuron_emu::as_int(a) | neuron_emu::as_int(b)), true)
#undef NEMU_BINARY_IMPL

Tensor& pow_out(Tensor& result, Scalar self, const Tensor& exponent) {
  const double s = self.toDouble();
  return elementwise("torch::pow_out", result, exponent, nullptr, [s](double e, double) {
    return static_cast<double>(std::pow(static_cast<float>(s), static_cast<float>(e)));
  });
}
Tensor pow(Scalar self, const Tensor& exponent) {
  Tensor r = like(exponent, "torch::pow");
  return pow_out(r, self, exponent);
}
Tensor& add_out(Tensor& result, const Tensor& self, const Tensor& other, Scalar alpha) {
  const double al = alpha.toDouble();
  return elementwise("torch::add_out", result, self, &other, [al](double a, double b) { return a + al * b; });
}
Tensor& add_out(Tensor& result, const Tensor& self, Scalar other, Scalar alpha) {
  const double b = other.toDouble() * alpha.toDouble();
  return elementwise("torch::add_out", result, self, nullptr, [b](double a, double) { return a + b; });
}
Tensor add(const Tensor& self, const Tensor& other, Scalar alpha) {
  Tensor r = like(self, "torch::add");
  return add_out(r, self, other, alpha);
}
Tensor add(const Tensor& self, Scalar other, Scalar alpha) {
  Tensor r = like(self, "torch::add");
  return add_out(r, self, other, alpha);
}
Tensor& sub_out(Tensor& result, const Tensor& self, const Tensor& other, Scalar alpha) {
  const double al = alpha.toDouble();
  return elementwise("torch::sub_out", result, self, &other, [al](double a, double b) { return a - al * b; });
}
Tensor& sub_out(Tensor& result, const Tensor& self, Scalar other, Scalar alpha) {
  const double b = other.toDouble() * alpha.toDouble();
  return elementwise("torch::sub_out", result, self, nullptr, [b](double a, double) { return a - b; });
}
Tensor sub(const Tensor& self, const Tensor& other, Scalar alpha) {
  Tensor r = like(self, "torch::sub");
  return sub_out(r, self, other, alpha);
}
Tensor sub(const Tensor& self, Scalar other, Scalar alpha) {
  Tensor r = like(self, "torch::sub");
  return sub_out(r, self, other, alpha);
}
Tensor& clamp_out(Tensor& result, const Tensor& self, Scalar min, Scalar max) {
  const double lo = min.toDouble(), hi = max.toDouble();
  return elementwise("torch::clamp_out", result, self, nullptr,
                     [lo, hi](double a, double) { return a < lo ? lo : (a > hi ? hi : a); });
}
Tensor clamp(const Tensor& self, Scalar min, Scalar max) {
  Tensor r = like(self, "torch::clamp");
  return clamp_out(r, self, min, max);
}

}  // namespace torch
