// DMA kernels: DmaCopy (strided copy), DmaLoad (cost only), IoIn / IoOut (host <-> device with dtype conversion).
//
// Cost mapping (docs/cost-model.md "DMA"): a transfer is spread over the core's DMA queues. It occupies the DMA
// bandwidth for bytes / (rate * efficiency) ns, where rate = all queues together (16 x 27.2 GB/s on NC-v2), capped
// by the core's HBM share when one side is HBM, and efficiency = p / (p + spec.dma_desc_half_bytes) for a payload of
// p bytes per descriptor (one descriptor per partition row): small descriptors are overhead-bound [NKI-DMABW]; a
// strided (layout-changing) copy runs at half rate. The ~1300 ns descriptor/semaphore latency (spec.dma_fixed_ns) is
// Cost.latency_ns: it delays the transfer's consumers but overlaps other transfers. The host link crossing of IoIn/IoOut
// is charged by Program (spec.host_bytes_per_ns). Cost.engine = Dma; Cost.cycles holds nanoseconds (see Cost::ns).
#include <cmath>
#include <cstring>
#include <string>

#include "dtype_convert.h"
#include "strided.h"

namespace nemu {
namespace {

// payload: contiguous bytes per descriptor; hbm: one side of the transfer is device memory.
Cost dma_cost(const CoreSpec& s, int64_t bytes, double payload, bool hbm) {
  Cost c;
  c.engine = Engine::Dma;
  double rate = s.dma_engines * s.dma_bytes_per_ns_per_engine;
  if (hbm && s.hbm_bytes_per_ns > 0) rate = std::min(rate, s.hbm_bytes_per_ns);
  const double p = std::max(payload, 1.0);
  const double eff = p / (p + s.dma_desc_half_bytes);
  c.cycles = bytes > 0 ? static_cast<double>(bytes) / (rate * eff) : 0.0;
  c.latency_ns = s.dma_fixed_ns;
  c.instructions = 1;
  c.bytes = bytes;
  return c;
}
// One descriptor per partition row: a transfer of `bytes` into SBUF spreads over the partitions.
double per_partition(const CoreSpec& s, int64_t bytes) { return static_cast<double>(bytes) / std::max(s.partitions, 1); }

// ---------------- DmaCopy ----------------
using DCF = DmaCopyF;
void copy_check(const Instr& in, const int64_t* numel, const CoreSpec& spec) {
  check_views(in, 2, numel, "DmaCopy");
  check_range("DmaCopy", "queue", in.ip[DCF::queue], 0, 3);
  const int64_t eb = in.ip[DCF::elem_bytes];
  if (eb != 1 && eb != 2 && eb != 4 && eb != 8) fail("DmaCopy: elem_bytes " + std::to_string(eb) + " is not 1, 2, 4 or 8");
}
void copy_exec(const Instr& in, OpCtx& ctx) {
  const auto p = make_plan<2>(in);
  const float* A = ctx.operand(in, 0);
  float* O = ctx.operand(in, 1);
  for_each_row(p, [&](const int64_t* off, int64_t n, const int64_t* st) {
    const float* a = A + off[0];
    float* o = O + off[1];
    if (st[0] == 1 && st[1] == 1) std::memmove(o, a, static_cast<size_t>(n) * sizeof(float));
    else for (int64_t i = 0; i < n; ++i) o[i * st[1]] = a[i * st[0]];
  });
}
Cost copy_cost(const Instr& in, const CoreSpec& s) {
  const int64_t eb = in.ip[DCF::elem_bytes], bytes = view_numel(in) * eb;
  // Descriptors carry each partition's share; an access pattern whose innermost step is not one element on both
  // sides (a layout change) runs at half rate, as SBUF access does with an innermost stride over 16 bytes [NKI-V2].
  const View a = view_of(in, 0), o = view_of(in, 1);
  const int nd = a.ndim;
  const bool unit = nd == 0 || a.shape[nd - 1] <= 1 || (a.stride[nd - 1] == 1 && o.stride[nd - 1] == 1);
  const int64_t q = in.ip[DCF::queue];
  Cost c = dma_cost(s, bytes, per_partition(s, bytes), q != static_cast<int64_t>(DmaQueue::SbufToSbuf));
  if (!unit) c.cycles *= 2;
  return c;
}

// ---------------- DmaLoad ----------------
using DLF = DmaLoadF;
void load_check(const Instr& in, const int64_t* numel, const CoreSpec& spec) {
  if (in.ip[DLF::bytes] < 0) fail("DmaLoad: negative byte count " + std::to_string(in.ip[DLF::bytes]));
  check_range("DmaLoad", "queue", in.ip[DLF::queue], 0, 3);
}
void load_exec(const Instr&, OpCtx&) {}
// A constant larger than SBUF is not staged: it stays in device memory and its consumers stream it (Program).
Cost load_cost(const Instr& in, const CoreSpec& s) {
  const int64_t bytes = in.ip[DLF::bytes];
  return dma_cost(s, static_cast<double>(bytes) > s.sbuf_bytes ? 0 : bytes, per_partition(s, bytes), true);
}

// ---------------- host dtype conversion ----------------
// fp16 / bf16 go through dtype_convert's converters (bit-exact with torch's .to(), NaN payloads included);
// float -> integer like x86 torch .to(intN): truncation; out of range / NaN gives the "integer indefinite"
// value of the 32-bit (narrow types, then wrapped) or 64-bit conversion.
int64_t to_i64(float v) {
  if (!(v >= -9223372036854775808.0f && v < 9223372036854775808.0f)) return INT64_MIN;
  return static_cast<int64_t>(v);
}
int32_t to_i32(float v) {
  if (!(v >= -2147483648.0f && v < 2147483648.0f)) return INT32_MIN;
  return static_cast<int32_t>(v);
}

// IoIn and IoOut share one field layout.
using IOF = IoInF;
static_assert(int{IoInF::io_index} == int{IoOutF::io_index} && int{IoInF::io_dtype} == int{IoOutF::io_dtype} &&
                  int{IoInF::numel} == int{IoOutF::numel},
              "IoIn/IoOut field layout");
void io_check(const Instr& in, const int64_t* numel, const CoreSpec& spec) {
  const char* op = in.op == static_cast<int32_t>(Op::IoIn) ? "IoIn" : "IoOut";
  check_range(op, "io dtype", in.ip[IOF::io_dtype], 0, 9);
  if (in.ip[IOF::numel] < 0) fail(std::string(op) + ": negative numel " + std::to_string(in.ip[IOF::numel]));
  check_fits(op, 0, "device buffer", in.ip[IOF::numel], numel);
}
// The device side of a model input/output: the tensor moves between device memory and SBUF. The host link
// (PCIe) copy before/after the execution is charged by Program (host_transfer_ns), not on the device timeline.
// A tensor larger than SBUF stays in device memory (its consumers stream it, Program): no device-side move.
Cost io_cost(const Instr& in, const CoreSpec& s) {
  const int64_t bytes = in.ip[IOF::numel] * io_dtype_size(static_cast<IoDType>(in.ip[IOF::io_dtype]));
  return dma_cost(s, static_cast<double>(bytes) > s.sbuf_bytes ? 0 : bytes, per_partition(s, bytes), true);
}

template <class T, class F>
void conv_in(const void* src, float* dst, int64_t n, F f) {
  const T* s = static_cast<const T*>(src);
  parallel_chunks(n, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dst[i] = f(s[i]);
  });
}
template <class T, class F>
void conv_out(const float* src, void* dst, int64_t n, F f) {
  T* d = static_cast<T*>(dst);
  parallel_chunks(n, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) d[i] = f(src[i]);
  });
}

void ioin_exec(const Instr& in, OpCtx& ctx) {
  const int64_t idx = in.ip[IOF::io_index], n = in.ip[IOF::numel];
  const IoDType dt = static_cast<IoDType>(in.ip[IOF::io_dtype]);
  if (idx < 0 || idx >= ctx.n_io_in || !ctx.io_in) fail("IoIn: input index " + std::to_string(idx) + " has no host pointer");
  const void* src = ctx.io_in[idx];
  float* dst = ctx.operand(in, 0);
  if (!src && n > 0) fail("IoIn: null host pointer for input " + std::to_string(idx));
  switch (dt) {
    case IoDType::F32: if (n) std::memcpy(dst, src, static_cast<size_t>(n) * 4); break;
    case IoDType::F64: conv_in<double>(src, dst, n, [](double v) { return static_cast<float>(v); }); break;
    case IoDType::F16: conv_in<uint16_t>(src, dst, n, fp16_bits_to_float); break;
    case IoDType::BF16: conv_in<uint16_t>(src, dst, n, bf16_bits_to_float); break;
    case IoDType::I64: conv_in<int64_t>(src, dst, n, [](int64_t v) { return static_cast<float>(v); }); break;
    case IoDType::I32: conv_in<int32_t>(src, dst, n, [](int32_t v) { return static_cast<float>(v); }); break;
    case IoDType::I16: conv_in<int16_t>(src, dst, n, [](int16_t v) { return static_cast<float>(v); }); break;
    case IoDType::I8: conv_in<int8_t>(src, dst, n, [](int8_t v) { return static_cast<float>(v); }); break;
    case IoDType::U8: conv_in<uint8_t>(src, dst, n, [](uint8_t v) { return static_cast<float>(v); }); break;
    case IoDType::Bool: conv_in<uint8_t>(src, dst, n, [](uint8_t v) { return v ? 1.f : 0.f; }); break;
  }
}

void ioout_exec(const Instr& in, OpCtx& ctx) {
  const int64_t idx = in.ip[IOF::io_index], n = in.ip[IOF::numel];
  const IoDType dt = static_cast<IoDType>(in.ip[IOF::io_dtype]);
  if (idx < 0 || idx >= ctx.n_io_out || !ctx.io_out) fail("IoOut: output index " + std::to_string(idx) + " has no host pointer");
  void* dst = ctx.io_out[idx];
  const float* src = ctx.operand(in, 0);
  if (!dst && n > 0) fail("IoOut: null host pointer for output " + std::to_string(idx));
  switch (dt) {
    case IoDType::F32: if (n) std::memcpy(dst, src, static_cast<size_t>(n) * 4); break;
    case IoDType::F64: conv_out<double>(src, dst, n, [](float v) { return static_cast<double>(v); }); break;
    case IoDType::F16: conv_out<uint16_t>(src, dst, n, to_fp16_bits); break;
    case IoDType::BF16: conv_out<uint16_t>(src, dst, n, to_bf16_bits); break;
    case IoDType::I64: conv_out<int64_t>(src, dst, n, to_i64); break;
    case IoDType::I32: conv_out<int32_t>(src, dst, n, to_i32); break;
    case IoDType::I16: conv_out<int16_t>(src, dst, n, [](float v) { return static_cast<int16_t>(to_i32(v)); }); break;
    case IoDType::I8: conv_out<int8_t>(src, dst, n, [](float v) { return static_cast<int8_t>(to_i32(v)); }); break;
    case IoDType::U8: conv_out<uint8_t>(src, dst, n, [](float v) { return static_cast<uint8_t>(to_i32(v)); }); break;
    case IoDType::Bool: conv_out<uint8_t>(src, dst, n, [](float v) { return static_cast<uint8_t>(v != 0.f ? 1 : 0); }); break;
  }
}

}  // namespace

Cost hbm_transfer_cost(const CoreSpec& s, int64_t bytes) { return dma_cost(s, bytes, per_partition(s, bytes), true); }

void register_dma_ops() {
  register_builtin(Op::DmaCopy, copy_exec, copy_check, copy_cost);
  register_builtin(Op::DmaLoad, load_exec, load_check, load_cost);
  register_builtin(Op::IoIn, ioin_exec, io_check, io_cost);
  register_builtin(Op::IoOut, ioout_exec, io_check, io_cost);
}

}  // namespace nemu
