// The device-side torch subset a GpSimd custom operator compiles against (neuron-api.md 4.2-4.6), for the
// emulator: the same names and signatures as the Neuron SDK's port, so the documented sources compile
// unmodified with the system C++ compiler. Every data access goes through the emulator's harness
// (runtime/harness.cpp), which bounds-checks it, names the op/tensor/index/core on a violation and counts what
// the kernel touched for the GpSimd cost. Kept light (no iostream/vector) so a library builds in well under a second.
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <initializer_list>
#include <type_traits>
#include <utility>

#define NEMU_CUSTOM_OP_HEADER_VERSION 2

namespace torch {

enum class ScalarType : int8_t { Byte = 0, Char = 1, Short = 2, Int = 3, Long = 4, Half = 5, Float = 6, Double = 7,
                                 BFloat16 = 15 };
constexpr ScalarType kByte = ScalarType::Byte;
constexpr ScalarType kChar = ScalarType::Char;
constexpr ScalarType kShort = ScalarType::Short;
constexpr ScalarType kInt = ScalarType::Int;
constexpr ScalarType kHalf = ScalarType::Half;
constexpr ScalarType kFloat = ScalarType::Float;
constexpr ScalarType kBFloat16 = ScalarType::BFloat16;

// 16-bit float storage types: round-to-nearest-even on store, exact on load.
struct Half {
  uint16_t x = 0;
  Half() = default;
  Half(float f);
  operator float() const;
};
struct BFloat16 {
  uint16_t x = 0;
  BFloat16() = default;
  BFloat16(float f);
  operator float() const;
};

class Scalar {
 public:
  Scalar() : v_(0), integral_(true) {}
  Scalar(double v) : v_(v), integral_(false) {}
  Scalar(float v) : v_(v), integral_(false) {}
  Scalar(int v) : v_(v), integral_(true) {}
  Scalar(long v) : v_(static_cast<double>(v)), integral_(true) {}
  Scalar(long long v) : v_(static_cast<double>(v)), integral_(true) {}
  Scalar(unsigned v) : v_(v), integral_(true) {}
  double toDouble() const { return v_; }
  float toFloat() const { return static_cast<float>(v_); }
  int64_t toLong() const { return static_cast<int64_t>(v_); }
  int toInt() const { return static_cast<int>(v_); }
  bool isIntegral(bool = false) const { return integral_; }
  bool isFloatingPoint() const { return !integral_; }
  template <typename T> T to() const { return static_cast<T>(v_); }

 private:
  double v_;
  bool integral_;
};

class IntArrayRef {
 public:
  IntArrayRef() : data_(nullptr), size_(0) {}
  IntArrayRef(const int64_t* d, size_t n) : data_(d), size_(n) {}
  IntArrayRef(std::initializer_list<int64_t> l) : data_(l.begin()), size_(l.size()) {}
  const int64_t* begin() const { return data_; }
  const int64_t* end() const { return data_ + size_; }
  const int64_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  int64_t operator[](size_t i) const { return data_[i]; }

 private:
  const int64_t* data_;
  size_t size_;
};

class TensorOptions {
 public:
  TensorOptions() : dtype_(kFloat) {}
  TensorOptions(ScalarType t) : dtype_(t) {}
  TensorOptions dtype(ScalarType t) const { return TensorOptions(t); }
  ScalarType dtype() const { return dtype_; }

 private:
  ScalarType dtype_;
};
inline TensorOptions dtype(ScalarType t) { return TensorOptions(t); }

struct CoherencyEnforcer {
  enum class Policy { COHERENT, INCOHERENT_VERBOSE, INCOHERENT_QUIET };
};

namespace neuron_emu {

constexpr int kMaxDims = 8;
enum { kArgTensor = 0, kArgDouble = 1, kArgInt = 2, kArgScalar = 3 };

// One tensor the kernel sees: an input, the op's output (get_dst_tensor) or a tensor it created. Owned by
// the harness for the duration of one kernel call.
struct TensorImpl {
  void* data;
  int64_t numel;
  int32_t ndim;
  int64_t sizes[kMaxDims];
  int64_t strides[kMaxDims];
  ScalarType dtype;
  int32_t role;      // kInput, kOutput, kLocal, kShapeOnly
  int32_t index;     // argument position (inputs) or creation order (locals)
  bool shared;       // an input's buffer: a write first makes a private copy (inputs are never modified)
  CoherencyEnforcer::Policy policy;
};
enum { kInput = 0, kOutput = 1, kLocal = 2, kShapeOnly = 3 };

// Implemented by the harness. They throw the harness's error on a violation.
[[noreturn]] void index_error(const TensorImpl* t, const char* access, int dim, int64_t index, int64_t offset);
[[noreturn]] void usage_error(const TensorImpl* t, const char* what);
void* data_for(TensorImpl* t, bool write, const char* access);
int64_t* hbm_counter();
void check_accessor(const TensorImpl* t, int elem_size, int dims, const char* access);
void tcm_transfer(TensorImpl* t, void* tcm, size_t offset, size_t n, int elem_size, bool to_tensor);
size_t element_size(ScalarType t);

struct StreamState;
StreamState* stream_open(TensorImpl* t, int elem_size, bool write);
void* stream_next(StreamState* s);
int stream_close(StreamState* s);

}  // namespace neuron_emu

// Direct HBM access, element by element (neuron-api.md 4.4): the slowest accessor. Every index is checked.
template <typename T, size_t N>
class TensorAccessor {
 public:
  TensorAccessor(T* data, const neuron_emu::TensorImpl* t, int dim, int64_t offset, int64_t* counter)
      : data_(data), t_(t), dim_(dim), offset_(offset), counter_(counter) {}
  TensorAccessor<T, N - 1> operator[](int64_t i) const {
    if (i < 0 || i >= t_->sizes[dim_]) neuron_emu::index_error(t_, "access", dim_, i, offset_);
    return TensorAccessor<T, N - 1>(data_, t_, dim_ + 1, offset_ + i * t_->strides[dim_], counter_);
  }
  int64_t size(int64_t d) const { return t_->sizes[dim_ + d]; }

 private:
  T* data_;
  const neuron_emu::TensorImpl* t_;
  int dim_;
  int64_t offset_;
  int64_t* counter_;
};

template <typename T>
class TensorAccessor<T, 1> {
 public:
  TensorAccessor(T* data, const neuron_emu::TensorImpl* t, int dim, int64_t offset, int64_t* counter)
      : data_(data), t_(t), dim_(dim), offset_(offset), counter_(counter) {}
  T& operator[](int64_t i) const {
    if (i < 0 || i >= t_->sizes[dim_]) neuron_emu::index_error(t_, "access", dim_, i, offset_);
    ++*counter_;
    return data_[offset_ + i];
  }
  int64_t size(int64_t d) const { return t_->sizes[dim_ + d]; }

 private:
  T* data_;
  const neuron_emu::TensorImpl* t_;
  int dim_;
  int64_t offset_;
  int64_t* counter_;
};

// Sequential accessors cached in TCM (4 KB each).
template <typename T>
class TensorReadStreamAccessor {
 public:
  explicit TensorReadStreamAccessor(neuron_emu::StreamState* s) : s_(s) {}
  T read() { return *static_cast<const T*>(neuron_emu::stream_next(s_)); }
  int close() { return neuron_emu::stream_close(s_); }

 private:
  neuron_emu::StreamState* s_;
};
template <typename T>
class TensorWriteStreamAccessor {
 public:
  explicit TensorWriteStreamAccessor(neuron_emu::StreamState* s) : s_(s) {}
  void write(T v) { *static_cast<T*>(neuron_emu::stream_next(s_)) = v; }
  int close() { return neuron_emu::stream_close(s_); }

 private:
  neuron_emu::StreamState* s_;
};

// Bulk copies between a tensor (flattened indexing) and a tcm_malloc'ed buffer.
template <bool read_only>
class TensorTcmAccessor {
 public:
  explicit TensorTcmAccessor(neuron_emu::TensorImpl* t) : t_(t) {}
  template <typename T> void tensor_to_tcm(T* tcm_ptr, size_t tensor_offset, size_t num_elem) {
    neuron_emu::tcm_transfer(t_, tcm_ptr, tensor_offset, num_elem, sizeof(T), false);
  }
  template <typename T> void tcm_to_tensor(T* tcm_ptr, size_t tensor_offset, size_t num_elem) {
    static_assert(!read_only, "tcm_to_tensor needs a writable tensor (tcm_accessor() of a const Tensor is read-only)");
    neuron_emu::tcm_transfer(t_, tcm_ptr, tensor_offset, num_elem, sizeof(T), true);
  }

 private:
  neuron_emu::TensorImpl* t_;
};

class Tensor {
 public:
  Tensor() : impl_(nullptr) {}
  explicit Tensor(neuron_emu::TensorImpl* impl) : impl_(impl) {}
  bool defined() const { return impl_ != nullptr; }
  IntArrayRef sizes() const { return IntArrayRef(impl()->sizes, static_cast<size_t>(impl()->ndim)); }
  IntArrayRef strides() const { return IntArrayRef(impl()->strides, static_cast<size_t>(impl()->ndim)); }
  int64_t size(int64_t d) const { return impl()->sizes[d < 0 ? d + impl()->ndim : d]; }
  int64_t dim() const { return impl()->ndim; }
  int64_t numel() const { return impl()->numel; }
  ScalarType scalar_type() const { return impl()->dtype; }
  ScalarType dtype() const { return impl()->dtype; }
  size_t element_size() const { return neuron_emu::element_size(impl()->dtype); }

  template <typename T, size_t N> TensorAccessor<const T, N> accessor() const& {
    neuron_emu::check_accessor(impl(), sizeof(T), N, "accessor");
    return TensorAccessor<const T, N>(static_cast<const T*>(neuron_emu::data_for(impl_, false, "accessor")), impl_,
                                      0, 0, neuron_emu::hbm_counter());
  }
  template <typename T, size_t N> TensorAccessor<T, N> accessor() & {
    neuron_emu::check_accessor(impl(), sizeof(T), N, "accessor");
    return TensorAccessor<T, N>(static_cast<T*>(neuron_emu::data_for(impl_, true, "accessor")), impl_, 0, 0,
                                neuron_emu::hbm_counter());
  }
  template <typename T> TensorReadStreamAccessor<T> read_stream_accessor() const {
    return TensorReadStreamAccessor<T>(neuron_emu::stream_open(impl(), sizeof(T), false));
  }
  template <typename T> TensorWriteStreamAccessor<T> write_stream_accessor() {
    return TensorWriteStreamAccessor<T>(neuron_emu::stream_open(impl(), sizeof(T), true));
  }
  template <typename T, size_t N> TensorAccessor<T, N> accessor() && {
    neuron_emu::check_accessor(impl(), sizeof(T), N, "accessor");
    return TensorAccessor<T, N>(static_cast<T*>(neuron_emu::data_for(impl_, true, "accessor")), impl_, 0, 0,
                                neuron_emu::hbm_counter());
  }
  TensorTcmAccessor<true> tcm_accessor() const& { return TensorTcmAccessor<true>(impl()); }
  TensorTcmAccessor<false> tcm_accessor() & { return TensorTcmAccessor<false>(impl()); }
  TensorTcmAccessor<false> tcm_accessor() && { return TensorTcmAccessor<false>(impl()); }

  void set_accessor_coherence_policy(CoherencyEnforcer::Policy p) const { impl()->policy = p; }
  CoherencyEnforcer::Policy get_accessor_coherence_policy() const { return impl()->policy; }

  const Tensor& fill_(Scalar value) const;
  neuron_emu::TensorImpl* unsafeGetTensorImpl() const { return impl_; }

 private:
  neuron_emu::TensorImpl* impl() const {
    if (!impl_) neuron_emu::usage_error(nullptr, "use of an undefined torch::Tensor");
    return impl_;
  }
  neuron_emu::TensorImpl* impl_;
};

// Factory functions: only the dtype of the options is honoured (neuron-api.md 4.3).
Tensor empty(IntArrayRef size, TensorOptions options = {});
Tensor zeros(IntArrayRef size, TensorOptions options = {});
Tensor ones(IntArrayRef size, TensorOptions options = {});
Tensor full(IntArrayRef size, Scalar fill_value, TensorOptions options = {});
Tensor eye(int64_t n, TensorOptions options = {});
Tensor eye(int64_t n, int64_t m, TensorOptions options = {});

// Elementwise ops, no broadcasting: each as op(...) and op_out(result, ...).
#define NEMU_UNARY_OP(name) \
  Tensor name(const Tensor& self); \
  Tensor& name##_out(Tensor& result, const Tensor& self);
NEMU_UNARY_OP(abs) NEMU_UNARY_OP(ceil) NEMU_UNARY_OP(floor) NEMU_UNARY_OP(sin) NEMU_UNARY_OP(cos)
NEMU_UNARY_OP(tan) NEMU_UNARY_OP(log) NEMU_UNARY_OP(log2) NEMU_UNARY_OP(log10) NEMU_UNARY_OP(exp)
NEMU_UNARY_OP(bitwise_not)
#undef NEMU_UNARY_OP
#define NEMU_BINARY_OP(name) \
  Tensor name(const Tensor& self, const Tensor& other); \
  Tensor name(const Tensor& self, Scalar other); \
  Tensor& name##_out(Tensor& result, const Tensor& self, const Tensor& other); \
  Tensor& name##_out(Tensor& result, const Tensor& self, Scalar other);
NEMU_BINARY_OP(mul) NEMU_BINARY_OP(div) NEMU_BINARY_OP(pow) NEMU_BINARY_OP(bitwise_and) NEMU_BINARY_OP(bitwise_or)
#undef NEMU_BINARY_OP
Tensor pow(Scalar self, const Tensor& exponent);
Tensor& pow_out(Tensor& result, Scalar self, const Tensor& exponent);
Tensor add(const Tensor& self, const Tensor& other, Scalar alpha = 1);
Tensor add(const Tensor& self, Scalar other, Scalar alpha = 1);
Tensor& add_out(Tensor& result, const Tensor& self, const Tensor& other, Scalar alpha = 1);
Tensor& add_out(Tensor& result, const Tensor& self, Scalar other, Scalar alpha = 1);
Tensor sub(const Tensor& self, const Tensor& other, Scalar alpha = 1);
Tensor sub(const Tensor& self, Scalar other, Scalar alpha = 1);
Tensor& sub_out(Tensor& result, const Tensor& self, const Tensor& other, Scalar alpha = 1);
Tensor& sub_out(Tensor& result, const Tensor& self, Scalar other, Scalar alpha = 1);
Tensor clamp(const Tensor& self, Scalar min, Scalar max);
Tensor& clamp_out(Tensor& result, const Tensor& self, Scalar min, Scalar max);

namespace neuron {
void* tcm_malloc(size_t nbytes);  // from the 16 KB TCM pool; nullptr when it is exhausted
void tcm_free(void* ptr);
}  // namespace neuron

namespace neuron_emu {
// How the harness calls a function with the op's arguments: one entry per argument.
struct Arg {
  Tensor t;
  double d = 0;
  int64_t i = 0;
  Scalar s;
};
typedef Tensor (*InvokeFn)(void* fn, Arg* args);

template <typename A> struct ArgGet;
template <> struct ArgGet<Tensor> { static Tensor& get(Arg& a) { return a.t; } };
template <> struct ArgGet<double> { static double get(Arg& a) { return a.d; } };
template <> struct ArgGet<int64_t> { static int64_t get(Arg& a) { return a.i; } };
template <> struct ArgGet<Scalar> { static Scalar& get(Arg& a) { return a.s; } };

template <typename... Args>
struct Invoker {
  template <size_t... I>
  static Tensor call_impl(void* fn, Arg* a, std::index_sequence<I...>) {
    return reinterpret_cast<Tensor (*)(Args...)>(fn)(ArgGet<typename std::decay<Args>::type>::get(a[I])...);
  }
  static Tensor call(void* fn, Arg* a) { return call_impl(fn, a, std::index_sequence_for<Args...>{}); }
};
}  // namespace neuron_emu

}  // namespace torch

namespace at = torch;
namespace c10 = torch;

torch::Tensor get_dst_tensor();  // the op's output tensor; mandatory in multicore mode

// printf from device code is buffered and shown after the op (neuron-api.md 4.6).
extern "C" int nemu_device_printf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
#define printf nemu_device_printf
