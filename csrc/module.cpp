// Python bindings of neuron_emu._C: the one-instruction kernel API (run_instr), whole programs
// (Program: one native call per execution), counters, dtype rounding helpers, CPU features.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <mutex>
#include <string>

#include "cpu_features.h"
#include "native_gemm.h"
#include "dtype_convert.h"
#include "forward_op.h"
#include "loaded_program.h"
#include "program.h"
#include "runtime_ops.h"
#include "simd.h"

namespace py = pybind11;
using namespace nemu;

namespace {

Counters g_counters;  // kernel-level API counters (programs keep their own)
std::mutex g_counters_mu;

py::dict cost_dict(const Cost& c, const CoreSpec& s) {
  py::dict d;
  d["engine"] = engine_name(c.engine);
  d["cycles"] = c.cycles;
  d["ns"] = c.ns(s);
  d["instructions"] = c.instructions;
  d["bytes"] = c.bytes;
  d["flops"] = c.flops;
  d["aux_engine"] = c.aux_cycles > 0 ? py::object(py::str(engine_name(c.aux_engine))) : py::object(py::none());
  d["aux_cycles"] = c.aux_cycles;
  d["aux_ns"] = c.aux_ns(s);
  d["aux_serial"] = c.aux_serial;
  d["latency_ns"] = c.latency_ns;
  d["span_ns"] = c.span_ns(s);
  return d;
}

py::dict counters_dict(const Counters& c) {
  py::dict d;
  for (int e = 0; e < kNumEngines; ++e) {
    py::dict x;
    x["busy_cycles"] = c.busy_cycles[e];
    x["busy_ns"] = c.busy_ns[e];
    x["instructions"] = c.instructions[e];
    x["bytes"] = c.bytes[e];
    x["flops"] = c.flops[e];
    d[engine_name(static_cast<Engine>(e))] = x;
  }
  return d;
}

// One call's stats as a float64 vector (stats_to's layout).
py::array_t<double> stats_array(const double* stats) {
  py::array_t<double> a(kStatsLen);
  std::copy(stats, stats + kStatsLen, a.mutable_data());
  return a;
}

std::string describe(const py::array& a) {
  std::string s = "dtype " + std::string(py::str(a.dtype())) + ", shape (";
  for (py::ssize_t d = 0; d < a.ndim(); ++d) s += (d ? ", " : "") + std::to_string(a.shape(d));
  return s + ")";
}

// Only float32 C-contiguous arrays are accepted: no silent casts or copies.
float* float_data(const py::handle& h, const std::string& who, bool writable) {
  if (!py::isinstance<py::array>(h)) fail(who + ": expected a numpy float32 array, got " + std::string(py::str(py::type::of(h))));
  py::array a = py::reinterpret_borrow<py::array>(h);
  if (!a.dtype().is(py::dtype::of<float>())) fail(who + ": expected float32, got " + describe(a));
  if (!(a.flags() & py::array::c_style)) fail(who + ": expected a C-contiguous array, got a strided " + describe(a));
  if (writable && !a.writeable()) fail(who + ": array is read-only");
  return static_cast<float*>(a.mutable_data());
}

// A 16-bit constant's data: uint16 bf16 patterns or float16, C-contiguous, returned as the opaque pointer
// BufferDesc::const_data carries.
const float* half_data(const py::handle& h, const std::string& who, DType store) {
  if (!py::isinstance<py::array>(h)) fail(who + ": expected a numpy array, got " + std::string(py::str(py::type::of(h))));
  py::array a = py::reinterpret_borrow<py::array>(h);
  const bool bf = store == DType::BF16;
  if (!a.dtype().is(bf ? py::dtype("uint16") : py::dtype("float16")))
    fail(who + ": a constant stored in " + dtype_name(store) + " must be " + (bf ? "uint16 (bf16 bits)" : "float16") +
         ", got " + describe(a));
  if (!(a.flags() & py::array::c_style)) fail(who + ": expected a C-contiguous array, got a strided " + describe(a));
  return static_cast<const float*>(a.data());
}

py::dict run_instr(py::array_t<int64_t, py::array::c_style> row, py::list operands, const CoreSpec& spec) {
  if (row.ndim() != 1 || row.shape(0) != kInstrWords) fail("instruction row must have " + std::to_string(kInstrWords) + " int64 words");
  Instr in = decode_instr(row.data());
  const OpDef* def = find_op(in.op);
  if (!def) fail("unknown op code " + std::to_string(in.op));
  check_spec(spec);
  if (static_cast<int>(operands.size()) != in.n_operands) fail(def->name + ": operand count mismatch");
  if (in.n_operands < def->min_operands || in.n_operands > def->max_operands)
    fail(def->name + ": " + std::to_string(in.n_operands) + " operands, expected " + std::to_string(def->min_operands) +
         ".." + std::to_string(def->max_operands));
  if (in.op == static_cast<int32_t>(Op::IoIn) || in.op == static_cast<int32_t>(Op::IoOut))
    fail(def->name + " runs only inside a Program");
  std::vector<float*> ptrs(kMaxOperands, nullptr);
  std::vector<int64_t> numel(kMaxOperands, 0);
  for (int j = 0; j < in.n_operands; ++j) {
    ptrs[j] = float_data(operands[j], def->name + " operand " + std::to_string(j), operand_is_written(*def, in, j));
    numel[j] = py::reinterpret_borrow<py::array>(operands[j]).size();
    in.operand[j] = j;
  }
  def->check(in, numel.data(), spec);
  // Scratch is kept per thread and grown on demand: no per-call allocation + zero fill (8 MB for a bf16
  // 1024^3 MatMul, ~5% of its time). Kernels must not rely on zeroed scratch (Program::run reuses it too).
  thread_local std::unique_ptr<float[], void (*)(void*)> t_scratch{nullptr, std::free};
  thread_local int64_t t_scratch_floats = -1;
  const int64_t need = def->scratch ? def->scratch(in) : 0;
  if (need > t_scratch_floats) {
    t_scratch = alloc_floats(need);
    t_scratch_floats = need;
  }
  OpCtx ctx{ptrs.data(), numel.data(), in.n_operands, spec, t_scratch.get(), nullptr, nullptr, 0, 0, def};
  const Cost c = def->cost(in, spec);  // the same cost function Program evaluates at load
  {
    py::gil_scoped_release nogil;
    def->exec(in, ctx);
  }
  {
    std::lock_guard<std::mutex> lk(g_counters_mu);
    g_counters.add(c, spec);
  }
  return cost_dict(c, spec);
}

struct PyProgram {
  std::shared_ptr<LoadedProgram> lp;  // shared with the native forward op's placements (forward_op.h)
  Program* prog() const { return lp->prog.get(); }
};

// A Python object owned from C++: its last owner may be a thread without the GIL (a native forward call still
// running when Python released the model), so the reference is dropped under the GIL.
std::shared_ptr<void> gil_owned(py::object o) {
  return std::shared_ptr<void>(new py::object(std::move(o)), [](void* p) {
    if (!Py_IsInitialized()) return;  // the interpreter is gone: nothing left to release
    py::gil_scoped_acquire gil;
    delete static_cast<py::object*>(p);
  });
}

PyProgram make_program(const CoreSpec& spec, py::array_t<int64_t, py::array::c_style> instrs,
                       py::array_t<int64_t, py::array::c_style> deps, py::array_t<int64_t, py::array::c_style> buf_numel,
                       py::array_t<int32_t, py::array::c_style> buf_kind, py::array_t<int64_t, py::array::c_style> buf_arena_offset,
                       py::list consts, int64_t arena_floats, const std::vector<std::pair<int64_t, int32_t>>& inputs,
                       const std::vector<std::pair<int64_t, int32_t>>& outputs, bool check_deps) {
  if (instrs.ndim() != 2 || instrs.shape(1) != kInstrWords) fail("instruction table must be [n, 64] int64");
  const int64_t nb = buf_numel.size();
  if (buf_kind.size() != nb || buf_arena_offset.size() != nb) fail("buffer table columns differ in length");
  std::vector<BufferDesc> bufs(nb);
  for (int64_t b = 0; b < nb; ++b) {
    bufs[b].numel = buf_numel.data()[b];
    bufs[b].kind = static_cast<BufKind>(buf_kind.data()[b]);
    bufs[b].arena_offset = buf_arena_offset.data()[b];
  }
  PyProgram p;
  p.lp = std::make_shared<LoadedProgram>();
  py::list keep_alive;  // constant arrays (zero-copy views into the artifact)
  for (auto item : consts) {
    auto pair = item.cast<py::tuple>();
    const int64_t b = pair[0].cast<int64_t>();
    if (b < 0 || b >= nb) fail("constant names buffer " + std::to_string(b) + " of " + std::to_string(nb));
    const std::string who = "constant buffer " + std::to_string(b);
    if (!is_constant(bufs[b].kind)) fail(who + ": buffer is not of constant kind");
    // fp32 values, or the 16-bit patterns of a constant stored cast (uint16 bf16 bits, float16)
    const float* data = bufs[b].kind == BufKind::Constant ? float_data(pair[1], who, false)
                                                          : half_data(pair[1], who, buf_storage(bufs[b].kind));
    const int64_t size = py::reinterpret_borrow<py::array>(pair[1]).size();
    if (size != bufs[b].numel) fail(who + ": " + std::to_string(size) + " elements, table says " + std::to_string(bufs[b].numel));
    bufs[b].const_data = data;
    keep_alive.append(pair[1]);
  }
  std::vector<IoSpec> ins, outs;
  for (const auto& io : inputs) ins.push_back(IoSpec{io.first, io.second});
  for (const auto& io : outputs) outs.push_back(IoSpec{io.first, io.second});
  p.lp->keep_alive = gil_owned(std::move(keep_alive));
  p.lp->touch();
  p.lp->prog = std::make_unique<Program>(spec, instrs.data(), instrs.shape(0), deps.data(), deps.size(), std::move(bufs),
                                     arena_floats, std::move(ins), std::move(outs), check_deps);
  return p;
}

py::tuple counters_snapshot(const CoreCounters& c) {
  const CoreCounters::Snapshot s = c.snapshot();
  return py::make_tuple(stats_array(s.acc.data()), s.executions, s.last_latency_ns, s.host_ns);
}

using IoTuple = std::tuple<std::string, std::vector<int64_t>, int64_t>;  // (dtype, sizes, itemsize)

void place_forward(uintptr_t data, int64_t numel, const py::bytes& uid, const std::vector<PyProgram*>& programs,
                   const std::vector<int>& cores, const std::vector<IoTuple>& inputs, const std::vector<IoTuple>& outputs,
                   int64_t dynamic_batch, int64_t n_user) {
  if (programs.size() != cores.size()) fail("forward_op_place: one core per program");
  std::vector<ForwardCopy> copies;
  for (size_t i = 0; i < programs.size(); ++i) copies.push_back(ForwardCopy{programs[i]->lp, cores[i]});
  std::vector<ForwardIo> ins, outs;
  for (const auto& io : inputs) ins.push_back(ForwardIo{std::get<0>(io), std::get<1>(io), std::get<2>(io)});
  for (const auto& io : outputs) outs.push_back(ForwardIo{std::get<0>(io), std::get<1>(io), std::get<2>(io)});
  forward_op_place(data, numel, uid, std::move(copies), ins, outs, dynamic_batch, n_user);
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "neuron-emu engine kernels (TensorE, VectorE, ScalarE, GpSimdE, DMA) with cycle costs";
  simd_path();  // a NEMU_SIMD this CPU cannot run fails the import, not the first kernel
  register_tensor_engine_ops();
  register_vector_engine_ops();
  register_scalar_engine_ops();
  register_gpsimd_engine_ops();
  register_dma_ops();
  register_dma_gather_op();
  register_vector_select_op();

  py::class_<CoreSpec>(m, "CoreSpec")
      .def(py::init<>())
      .def_readwrite("generation", &CoreSpec::generation)
      .def_property("clock_ghz", [](const CoreSpec& s) { return std::vector<double>(s.clock_ghz, s.clock_ghz + kNumEngines); },
                    [](CoreSpec& s, const std::vector<double>& v) {
                      if (v.size() != kNumEngines) fail("clock_ghz needs 5 entries (Tensor, Vector, Scalar, GpSimd, DMA)");
                      for (int e = 0; e < kNumEngines; ++e) s.clock_ghz[e] = v[e];
                    })
      .def_readwrite("partitions", &CoreSpec::partitions)
      .def_readwrite("pe_cols", &CoreSpec::pe_cols)
      .def_readwrite("moving_max", &CoreSpec::moving_max)
      .def_readwrite("free_tile", &CoreSpec::free_tile)
      .def_readwrite("mm_init_latency", &CoreSpec::mm_init_latency)
      .def_readwrite("fp32_matmul_factor", &CoreSpec::fp32_matmul_factor)
      .def_readwrite("min_ii", &CoreSpec::min_ii)
      .def_readwrite("gpsimd_start", &CoreSpec::gpsimd_start)
      .def_readwrite("gpsimd_cores", &CoreSpec::gpsimd_cores)
      .def_readwrite("gpsimd_lanes", &CoreSpec::gpsimd_lanes)
      .def_readwrite("dma_engines", &CoreSpec::dma_engines)
      .def_readwrite("dma_bytes_per_ns_per_engine", &CoreSpec::dma_bytes_per_ns_per_engine)
      .def_readwrite("dma_fixed_ns", &CoreSpec::dma_fixed_ns)
      .def_readwrite("hbm_bytes_per_ns", &CoreSpec::hbm_bytes_per_ns)
      .def_readwrite("has_fp32_matmul", &CoreSpec::has_fp32_matmul)
      .def_readwrite("dep_overhead_cycles", &CoreSpec::dep_overhead_cycles)
      .def_readwrite("dma_desc_half_bytes", &CoreSpec::dma_desc_half_bytes)
      .def_readwrite("sbuf_bytes", &CoreSpec::sbuf_bytes)
      .def_readwrite("host_bytes_per_ns", &CoreSpec::host_bytes_per_ns);

  m.attr("INSTR_WORDS") = kInstrWords;
  m.def("run_instr", &run_instr, py::arg("row"), py::arg("operands"), py::arg("spec"),
        "Execute one instruction on float32 arrays; returns its cost and adds it to the global counters.");
  m.def("counters", [] { std::lock_guard<std::mutex> lk(g_counters_mu); return counters_dict(g_counters); });
  m.def("reset_counters", [] { std::lock_guard<std::mutex> lk(g_counters_mu); g_counters.reset(); });
  m.def("op_table", [] {
    py::dict d;
    for (const OpDef* def : all_ops()) d[py::int_(def->code)] = py::make_tuple(def->name, engine_name(def->engine));
    return d;
  });
  m.def("op_schema", [] {
    py::dict out;
    for (const OpDef* def : all_ops()) {
      py::list fields;
      for (const FieldDef& f : def->fields) fields.append(py::make_tuple(f.name, f.real ? "real" : "int", f.slot));
      py::dict d;
      d["code"] = def->code;
      d["engine"] = engine_name(def->engine);
      d["operands"] = def->operands;
      d["min_operands"] = def->min_operands;
      d["max_operands"] = def->max_operands;
      d["views"] = def->views;
      d["writes"] = def->writes;
      d["fields"] = fields;
      out[py::str(def->name)] = d;
    }
    return out;
  }, "Every registered op: code, engine, operand names, view count, whether it writes, and its named fields "
     "(name, 'int'|'real', slot). The one definition the Python encoder reads (csrc/op_schema.h).");
  m.attr("VIEW_WORDS") = kViewWords;
  m.def("enum_sizes", [] {
    py::dict d;
    d["Alu"] = static_cast<int>(Alu::kCount);
    d["ActFunc"] = static_cast<int>(ActFunc::kCount);
    d["ReduceOp"] = static_cast<int>(ReduceOp::kCount);
    d["DType"] = kNumDTypes;
    return d;
  }, "Number of values of the field enums of csrc/isa.h (neuron_emu/isa.py mirrors their values).");
  m.def("dtype_table", [] {
    py::list l;
    for (int i = 0; i < kNumDTypes; ++i) l.append(py::make_tuple(i, kDTypes[i].name, kDTypes[i].bytes));
    return l;
  }, "(code, name, bytes) of every emulated dtype (csrc/common.h kDTypes).");
  m.def("register_library_op", [](const std::string& name, const std::string& engine, const std::vector<std::string>& operands,
                                  const std::vector<std::string>& ints, const std::vector<std::string>& reals, int writes,
                                  uintptr_t check_fn, uintptr_t cost_fn, uintptr_t exec_fn) {
    int e = -1;
    for (int i = 0; i < kNumEngines; ++i)
      if (engine == engine_name(static_cast<Engine>(i))) e = i;
    if (e < 0) fail("op " + name + ": unknown engine " + engine + " (TensorE, VectorE, ScalarE, GpSimdE or DMA)");
    return register_library_op(name, static_cast<Engine>(e), operands, ints, reals, writes, check_fn, cost_fn, exec_fn);
  }, py::arg("name"), py::arg("engine"), py::arg("operands"), py::arg("ints"), py::arg("reals"), py::arg("writes"),
     py::arg("check_fn"), py::arg("cost_fn"), py::arg("exec_fn"),
     "Register an op whose check/cost/exec are C functions (csrc/nemu_op_abi.h) at the given addresses; returns its code.");
  m.def("cpu_features", &cpu_features_dict);
  m.def("native_gemm_info", &native_gemm_info, "native low-precision GEMM policy and what runs natively (native_gemm.h)");
  m.def("simd_path", [] { return simd_path_name(simd_path()); },
        "The SIMD path our hot loops run: portable, avx2 or avx512 (widest supported, or NEMU_SIMD).");

  m.def("round_to", [](py::array_t<float, py::array::c_style> a, int dtype) {
    const DType d = dtype_from_int(dtype);
    py::array_t<float> out(a.request().shape);
    const float* src = a.data();
    float* dst = out.mutable_data();
    const int64_t n = a.size();
    { py::gil_scoped_release nogil; round_array(src, dst, n, d); }
    return out;
  }, py::arg("x"), py::arg("dtype"), "Round fp32 values to an emulated dtype (values stay fp32).");
  m.def("to_bits", [](py::array_t<float, py::array::c_style> a, int dtype) -> py::array {
    const DType d = dtype_from_int(dtype);
    const float* src = a.data();
    const int64_t n = a.size();
    auto shape = a.request().shape;
    if (d == DType::BF16 || d == DType::FP16) {
      py::array_t<uint16_t> out(shape);
      uint16_t* o = out.mutable_data();
      for (int64_t i = 0; i < n; ++i) o[i] = d == DType::BF16 ? to_bf16_bits(src[i]) : to_fp16_bits(src[i]);
      return out;
    }
    if (d == DType::FP8E4M3 || d == DType::FP8E5M2) {
      py::array_t<uint8_t> out(shape);
      uint8_t* o = out.mutable_data();
      for (int64_t i = 0; i < n; ++i) o[i] = d == DType::FP8E4M3 ? to_fp8e4m3_bits(src[i]) : to_fp8e5m2_bits(src[i]);
      return out;
    }
    py::array_t<uint32_t> out(shape);
    uint32_t* o = out.mutable_data();
    for (int64_t i = 0; i < n; ++i) {
      if (d == DType::TF32) o[i] = to_tf32_bits(src[i]);
      else std::memcpy(&o[i], &src[i], 4);
    }
    return out;
  }, py::arg("x"), py::arg("dtype"), "Bit patterns of the values rounded to an emulated dtype.");

  py::class_<CoreCounters, std::shared_ptr<CoreCounters>>(m, "CoreCounters")
      .def(py::init<>())
      .def("snapshot", &counters_snapshot, "(summed stats vector, executions, last latency ns, host ns)")
      .def("recent", &CoreCounters::recent, "Modelled latencies (ns) of the most recent executions, oldest first.")
      .def("reset", &CoreCounters::reset);
  m.def("last_run", []() -> py::object {
    const LastRun& r = last_run();
    if (!r.token) return py::none();
    return py::make_tuple(r.token, stats_array(r.stats));
  }, "The calling thread's last execution of an attached Program: (token, stats vector), or None.");
  m.def("forward_op_install", &forward_op_install, py::arg("op"), py::arg("fallback"), py::arg("torch_version"),
        "Register the native kernel of neuron::<op> (forward_op.h); False where torch lacks the stable C ABI.");
  m.def("forward_op_place", &place_forward, py::arg("artifact_data"), py::arg("artifact_numel"), py::arg("uid"),
        py::arg("programs"), py::arg("cores"), py::arg("inputs"), py::arg("outputs"), py::arg("dynamic_batch"),
        py::arg("n_user"),
        "Let the native kernel run this artifact on these programs (round robin); inputs/outputs: (dtype, sizes, "
        "itemsize); dynamic_batch > 0: dynamic batching of the first n_user inputs for that compiled batch.");
  m.def("forward_op_remove", &forward_op_remove, py::arg("artifact_data"));
  m.def("forward_op_pin", &forward_op_pin, py::arg("core"));
  m.def("forward_op_native_calls", &forward_op_native_calls);

  py::class_<PyProgram>(m, "Program")
      .def(py::init(&make_program), py::arg("spec"), py::arg("instrs"), py::arg("deps"), py::arg("buf_numel"),
           py::arg("buf_kind"), py::arg("buf_arena_offset"), py::arg("consts"), py::arg("arena_floats"),
           py::arg("inputs"), py::arg("outputs"), py::arg("check_deps") = false,
           "Validate and load a program. inputs/outputs: per model input/output, (numel, IoDType code) as the "
           "artifact's header declares it (the host tensors' size); every IoIn/IoOut must match it exactly.")
      .def("run", [](PyProgram& p, const std::vector<uintptr_t>& ins, const std::vector<uintptr_t>& outs) {
        Program& prog = *p.prog();
        if (static_cast<int>(ins.size()) != prog.n_inputs()) fail("expected " + std::to_string(prog.n_inputs()) + " input pointers");
        if (static_cast<int>(outs.size()) != prog.n_outputs()) fail("expected " + std::to_string(prog.n_outputs()) + " output pointers");
        void* in_p[64];
        void* out_p[64];
        std::vector<void*> in_v, out_v;  // only for more than 64 inputs/outputs
        void** ip = in_p;
        void** op = out_p;
        if (ins.size() > 64) { in_v.resize(ins.size()); ip = in_v.data(); }
        if (outs.size() > 64) { out_v.resize(outs.size()); op = out_v.data(); }
        for (size_t i = 0; i < ins.size(); ++i) ip[i] = reinterpret_cast<void*>(ins[i]);
        for (size_t i = 0; i < outs.size(); ++i) op[i] = reinterpret_cast<void*>(outs[i]);
        double st[kStatsLen];
        {
          py::gil_scoped_release nogil;
          p.lp->execute(ip, op, st);
        }
        return stats_array(st);
      }, py::arg("inputs"), py::arg("outputs"),
      "Run once (host pointers come from tensors the caller validated); returns this call's stats as a float64 "
      "vector: latency_ns, then per engine (TensorE, VectorE, ScalarE, GpSimdE, DMA) the STATS_FIELDS.")
      .def("last_stats", [](PyProgram& p) {
        std::lock_guard<std::mutex> lk(p.prog()->mutex());
        py::dict d;
        d["latency_ns"] = p.prog()->last().latency_ns;
        d["runs"] = p.prog()->runs();
        d["engines"] = counters_dict(p.prog()->last().counters);
        return d;
      }, "Stats of the last run on this Program by any thread (prefer run()'s return value).")
      .def("timeline", [](PyProgram& p) {
        std::lock_guard<std::mutex> lk(p.prog()->mutex());
        const Program& prog = *p.prog();
        const size_t n = prog.instrs().size();
        py::array_t<double> start(n), end(n), cyc(n), host(n);
        py::array_t<int32_t> op(n), src(n);
        for (size_t i = 0; i < n; ++i) {
          start.mutable_data()[i] = prog.start_ns()[i];
          end.mutable_data()[i] = prog.end_ns()[i];
          cyc.mutable_data()[i] = prog.cycles()[i];
          host.mutable_data()[i] = prog.host_ns()[i];
          op.mutable_data()[i] = prog.instrs()[i].op;
          src.mutable_data()[i] = prog.instrs()[i].src;
        }
        py::dict d;
        d["start_ns"] = start; d["end_ns"] = end; d["cycles"] = cyc; d["host_ns"] = host; d["op"] = op; d["src"] = src;
        py::array_t<int32_t> eng(n), aeng(n);
        py::array_t<double> mend(n), astart(n), aend(n);
        for (size_t i = 0; i < n; ++i) {
          eng.mutable_data()[i] = prog.engine()[i]; aeng.mutable_data()[i] = prog.aux_engine()[i];
          mend.mutable_data()[i] = prog.main_end_ns()[i]; astart.mutable_data()[i] = prog.aux_start_ns()[i];
          aend.mutable_data()[i] = prog.aux_end_ns()[i];
        }
        d["engine"] = eng; d["main_end_ns"] = mend; d["aux_engine"] = aeng; d["aux_start_ns"] = astart; d["aux_end_ns"] = aend;
        const auto& sp = prog.spills();
        py::array_t<double> ss(sp.size()), se(sp.size()), sbe(sp.size());
        py::array_t<int64_t> sb(sp.size()), si(sp.size());
        py::array_t<int32_t> sk(sp.size());
        for (size_t k = 0; k < sp.size(); ++k) {
          ss.mutable_data()[k] = sp[k].start_ns; se.mutable_data()[k] = sp[k].end_ns; sb.mutable_data()[k] = sp[k].bytes;
          sbe.mutable_data()[k] = sp[k].busy_end_ns;
          si.mutable_data()[k] = sp[k].instr; sk.mutable_data()[k] = sp[k].kind;
        }
        py::dict spills;
        spills["start_ns"] = ss; spills["end_ns"] = se; spills["busy_end_ns"] = sbe; spills["bytes"] = sb; spills["instr"] = si; spills["kind"] = sk;
        d["spills"] = spills;
        const MemoryStats& m = prog.memory();
        py::dict mem;
        mem["sbuf_peak_bytes"] = m.sbuf_peak_bytes; mem["working_set_peak_bytes"] = m.working_set_peak_bytes; mem["hbm_bytes"] = m.hbm_bytes; mem["spill_bytes"] = m.spill_bytes;
        mem["host_bytes"] = m.host_bytes; mem["device_ns"] = m.device_ns; mem["host_in_ns"] = m.host_in_ns;
        mem["host_out_ns"] = m.host_out_ns;
        d["memory"] = mem;
        return d;
      }, "Per-instruction modelled start/end ns and cycles (a property of the program: the same for every call), "
         "op code, source op, and host_ns: emulator wall time of the last call on this Program.")
      .def_property_readonly("n_instructions", [](PyProgram& p) { return p.prog()->instrs().size(); })
      .def("attach", [](PyProgram& p, std::shared_ptr<CoreCounters> counters, int64_t token) {
        p.lp->counters = std::move(counters);
        p.lp->token = token;
      }, py::arg("counters"), py::arg("token"),
      "Place on a core: every later run is counted on `counters` and reported by last_run() with `token`.")
      .def("touch", [](PyProgram& p) { p.lp->touch(); }, "Mark used now (the core's least-recently-used order).")
      .def_property_readonly("last_used", [](PyProgram& p) { return p.lp->last_used.load(); },
                             "Use tick of the last run or touch (larger = more recent).")
      .attr("STATS_FIELDS") = py::make_tuple("busy_ns", "busy_cycles", "instructions", "bytes", "flops");
}
