// The device data path: accessor<> (bounds-checked, counted), stream accessors, TCM transfers and the TCM
// pool, get_dst_tensor / get_cpu_id / get_cpu_count, and device printf.
#include <stdarg.h>
#include <string.h>

#include <algorithm>
#include <memory>

#include "state.h"

namespace torch {
namespace neuron_emu {

// ---- data access ----
[[noreturn]] void index_error(const TensorImpl* t, const char* access, int dim, int64_t index, int64_t offset) {
  std::string idx;
  for (int d = 0; d < dim; ++d) {
    idx += "[" + std::to_string(t->strides[d] ? offset / t->strides[d] : 0) + "]";
    if (t->strides[d]) offset %= t->strides[d];
  }
  idx += "[" + std::to_string(index) + "]";
  for (int d = dim + 1; d < t->ndim; ++d) idx += "[.]";
  fail_at(std::string("out-of-bounds ") + access + " of " + tensor_name(t) + " at index " + idx + ": index " +
          std::to_string(index) + " is outside dim " + std::to_string(dim) + " of size " +
          std::to_string(t->sizes[dim]));
}

[[noreturn]] void usage_error(const TensorImpl* t, const char* what) {
  fail_at(t ? std::string(what) + " (" + tensor_name(t) + ")" : std::string(what));
}

size_t element_size(ScalarType t) { return esize_of(t); }

void* data_for(TensorImpl* t, bool write, const char* access) {
  Call& c = call();
  if (t->role == kShapeOnly || (!t->data && t->numel > 0))
    usage_error(t, "a shape function cannot read tensor data: at shape time the inputs hold no values");
  if (c.cores > 1 && access[0] != 't')
    fail_at(std::string(access) + "() is single-core only: a multicore kernel must use tcm_accessor() (" +
            tensor_name(t) + ")");
  if (write && t->shared) {  // inputs are never modified: the first write makes a private copy
    const size_t n = static_cast<size_t>(t->numel) * esize_of(t->dtype);
    void* p = malloc(n ? n : 1);
    if (!p) fail_at("out of host memory");
    memcpy(p, t->data, n);
    c.owned.push_back(p);
    t->data = p;
    t->shared = false;
  }
  return t->data;
}

int64_t* hbm_counter() { return &call().c.hbm; }

void check_accessor(const TensorImpl* t, int elem_size, int dims, const char* access) {
  if (static_cast<size_t>(elem_size) != esize_of(t->dtype))
    fail_at(std::string(access) + "<T, N>() with a " + std::to_string(elem_size) + "-byte T on " + tensor_name(t) +
            " of dtype " + dtype_name(t->dtype));
  if (dims != t->ndim)
    fail_at(std::string(access) + "<T, " + std::to_string(dims) + ">() on " + tensor_name(t) + ", which has " +
            std::to_string(t->ndim) + " dims");
}

void tcm_transfer(TensorImpl* t, void* tcm, size_t offset, size_t n, int elem_size, bool to_tensor) {
  Call& c = call();
  const char* what = to_tensor ? "tcm_to_tensor" : "tensor_to_tcm";
  if (static_cast<size_t>(elem_size) != esize_of(t->dtype))
    fail_at(std::string(what) + " of " + std::to_string(elem_size) + "-byte elements on " + tensor_name(t) +
            " of dtype " + dtype_name(t->dtype));
  const size_t numel = static_cast<size_t>(t->numel);
  if (offset > numel || n > numel - offset)
    fail_at(std::string("out-of-bounds ") + what + (to_tensor ? " write to " : " read of ") + tensor_name(t) +
            ": elements [" + std::to_string(offset) + ", " + std::to_string(offset + n) + ") of " +
            std::to_string(numel) + " (first bad index " + std::to_string(std::max(offset, numel)) + ")");
  const size_t bytes = n * static_cast<size_t>(elem_size);
  const unsigned char* p = static_cast<const unsigned char*>(tcm);
  bool inside = false;
  for (const TcmBlock& b : c.blocks)
    if (p >= c.tcm + b.off && p + bytes <= c.tcm + b.off + b.size) inside = true;
  if (!inside && n > 0)
    fail_at(std::string(what) + " of " + std::to_string(n) + " elements of " + tensor_name(t) +
            ": the TCM pointer does not lie inside a tcm_malloc() block with room for them");
  char* data = static_cast<char*>(data_for(t, to_tensor, "tcm_accessor"));
  if (to_tensor) {
    if (c.owner && t->role == kOutput) {
      std::vector<int8_t>& own = *c.owner;
      for (size_t i = offset; i < offset + n; ++i) {
        if (own[i] >= 0 && own[i] != c.core)
          fail_at("overlapping multicore writes: element " + std::to_string(i) + " of " + tensor_name(t) +
                  " written by GpSimd core " + std::to_string(own[i]) + " and by core " + std::to_string(c.core));
        own[i] = static_cast<int8_t>(c.core);
      }
    }
    memcpy(data + offset * elem_size, tcm, bytes);
  } else {
    memcpy(tcm, data + offset * elem_size, bytes);
    c.c.tcm_in += static_cast<int64_t>(n);
  }
  c.c.tcm_calls += 1;
  c.c.tcm_elems += static_cast<int64_t>(n);
  c.c.tcm_bytes += static_cast<int64_t>(bytes);
}

StreamState* stream_open(TensorImpl* t, int elem_size, bool write) {
  Call& c = call();
  check_accessor(t, elem_size, t->ndim, write ? "write_stream_accessor" : "read_stream_accessor");
  data_for(t, write, write ? "write_stream_accessor" : "read_stream_accessor");
  c.streams.emplace_back(new StreamStateImpl{t, 0, elem_size, write});
  c.streams.back()->tcm = neuron::tcm_malloc(4096);  // each stream caches 4 KB of TCM (neuron-api.md 4.4)
  return reinterpret_cast<StreamState*>(c.streams.back().get());
}

void* stream_next(StreamState* st) {
  StreamStateImpl* s = reinterpret_cast<StreamStateImpl*>(st);
  Call& c = call();
  const char* what = s->write ? "write_stream_accessor write()" : "read_stream_accessor read()";
  if (s->closed) fail_at(std::string(what) + " after close() on " + tensor_name(s->t));
  if (s->pos >= s->t->numel)
    fail_at(std::string("out-of-bounds ") + what + " of " + tensor_name(s->t) + " at index " +
            std::to_string(s->pos) + ": past its " + std::to_string(s->t->numel) + " elements");
  if (s->tcm) {
    c.c.stream += 1;
    c.c.stream_bytes += s->esize;
  } else {
    c.c.hbm += 1;  // without a TCM cache a stream is as slow as accessor<>
  }
  return static_cast<char*>(s->t->data) + (s->pos++) * s->esize;
}

int stream_close(StreamState* st) {
  StreamStateImpl* s = reinterpret_cast<StreamStateImpl*>(st);
  if (!s->closed && s->tcm) neuron::tcm_free(s->tcm);
  s->closed = true;
  return 0;
}

}  // namespace neuron_emu

// ---- TCM pool (per core, per call) ----
namespace neuron {
using neuron_emu::Call;
using neuron_emu::TcmBlock;
using neuron_emu::call;
using neuron_emu::fail_at;
void* tcm_malloc(size_t nbytes) {
  Call& c = call();
  nbytes = (nbytes + 15) & ~size_t(15);
  if (nbytes == 0 || nbytes > sizeof c.tcm) return nullptr;
  size_t at = 0;
  for (const TcmBlock& b : c.blocks) {  // first fit; blocks are sorted by offset
    if (b.off - at >= nbytes) break;
    at = b.off + b.size;
  }
  if (at + nbytes > sizeof c.tcm) return nullptr;
  TcmBlock nb{at, nbytes};
  c.blocks.insert(std::upper_bound(c.blocks.begin(), c.blocks.end(), nb,
                                   [](const TcmBlock& a, const TcmBlock& b) { return a.off < b.off; }), nb);
  return c.tcm + at;
}
void tcm_free(void* ptr) {
  if (!ptr) return;
  Call& c = call();
  for (size_t i = 0; i < c.blocks.size(); ++i)
    if (c.tcm + c.blocks[i].off == ptr) {
      c.blocks.erase(c.blocks.begin() + i);
      return;
    }
  fail_at("tcm_free() of a pointer tcm_malloc() did not return (or freed twice)");
}
}  // namespace neuron

}  // namespace torch

uint32_t get_cpu_id() { return torch::neuron_emu::t_call ? torch::neuron_emu::t_call->core : 0; }
uint32_t get_cpu_count() { return torch::neuron_emu::t_call ? torch::neuron_emu::t_call->cores : 1; }

torch::Tensor get_dst_tensor() {
  using namespace torch::neuron_emu;
  Call& c = call();
  if (c.shape_only || !c.dst) fail_at("get_dst_tensor() called outside the op's kernel (e.g. in a shape function)");
  return torch::Tensor(c.dst);
}

extern "C" int nemu_device_printf(const char* fmt, ...) {
  using namespace torch::neuron_emu;
  va_list ap;
  va_start(ap, fmt);
  Call* c = t_call;
  int n;
  if (!c || c->shape_only) {
    n = vprintf(fmt, ap);  // host side (shape functions)
  } else {
    char buf[1024];
    n = vsnprintf(buf, sizeof buf, fmt, ap);
    if (c->core == 0 && !c->dry && c->out_cap > 0) {  // single-core or core 0 only (neuron-api.md 4.6)
      c->out.append(buf, std::min<size_t>(n < 0 ? 0 : static_cast<size_t>(n), sizeof buf - 1));
      if (c->out.size() > c->out_cap) c->out.erase(0, c->out.size() - c->out_cap);  // overflow drops the oldest
    }
  }
  va_end(ap);
  return n;
}

