"""Custom C++ operators (torch_neuronx_emu.xla_impl.custom_op): the documented ReLU sources build unmodified
against the emulator's device headers, run in eager (training through an autograd.Function matches torch.relu),
inside trace, and from a saved library and a saved model in a fresh process; the documented errors."""
import copy
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import torch_neuronx_emu
from neuron_emu.custom_op import build as cbuild
from neuron_emu.custom_op.library import CustomOpError
from neuron_emu.custom_op.torch_ops import CURRENT
from torch_neuronx_emu.xla_impl import custom_op

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "custom_op_src")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def src(name):
    return os.path.join(SRC, name)


@pytest.fixture(scope="module")
def libs(tmp_path_factory):
    """The three documented versions, each written to a build directory as lib<name>.so."""
    d = tmp_path_factory.mktemp("customop_build")
    custom_op.load("relu", [src("relu.cpp")], [src("shape.cpp")], build_directory=str(d))
    custom_op.load("relu_tcm", [src("relu_tcm.cpp")], [src("shape.cpp")], build_directory=str(d))
    custom_op.load("relu_mc", [src("relu_multicore.cpp")], [src("shape_fwd.cpp")], build_directory=str(d),
                   multicore=True)
    return d


def use(libdir, name):
    custom_op.load_library(str(libdir / f"lib{name}.so"))


class Relu(torch.autograd.Function):
    """my_ops.py of the documented sample."""

    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        return torch.ops.my_ops.relu_forward(input)

    @staticmethod
    def backward(ctx, grad):
        input, = ctx.saved_tensors
        return torch.ops.my_ops.relu_backward(grad, input), None


class MLP(torch.nn.Module):
    def __init__(self, relu=torch.relu):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = torch.nn.Linear(64, 40), torch.nn.Linear(40, 24), torch.nn.Linear(24, 10)
        self.relu = relu

    def forward(self, x):
        return self.fc3(self.relu(self.fc2(self.relu(self.fc1(x)))))


def train(model, steps=4):
    g = torch.Generator().manual_seed(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        x, y = torch.randn(16, 64, generator=g), torch.randint(0, 10, (16,), generator=g)
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return loss


@pytest.mark.parametrize("version", ["relu", "relu_tcm", "relu_mc"])
def test_documented_relu_trains_like_torch_relu(libs, version):
    use(libs, "relu_tcm")  # relu_backward for the forward-only multicore library
    use(libs, version)
    torch.manual_seed(0)
    ref = MLP()
    ours = copy.deepcopy(ref)
    ours.relu = Relu.apply
    # ReLU forward and backward are exact: the custom-op model must follow torch.relu's bit for bit
    torch.testing.assert_close(train(ours), train(ref), rtol=0, atol=0)
    for p, q in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_documented_multicore_relu_offset_bug_is_flagged(libs):
    use(libs, "relu_mc")
    x = torch.randn(32, 128)  # 4096 % 8 == 0: the documented offsets are right
    torch.testing.assert_close(torch.ops.my_ops.relu_forward(x), torch.relu(x), rtol=0, atol=0)
    with pytest.raises(CustomOpError, match=r"my_ops::relu_forward: out-of-bounds tensor_to_tcm read of argument 0 "
                                            r"\(input, shape \[10, 10\]\): elements \[112, 128\) of 100 .* core 7"):
        torch.ops.my_ops.relu_forward(torch.randn(10, 10))


def test_meta_shape_and_schema(libs):
    use(libs, "relu")
    out = torch.ops.my_ops.relu_backward(torch.empty(3, 5, device="meta"), torch.empty(3, 5, device="meta"))
    assert out.device.type == "meta" and out.shape == (3, 5) and out.dtype == torch.float32
    assert str(torch.ops.my_ops.relu_backward.default._schema) == "my_ops::relu_backward(Tensor a0, Tensor a1) -> Tensor"


def test_traced_model_profiles_gpsimd_and_runs_saved_in_fresh_process(libs, tmp_path):
    use(libs, "relu_tcm")
    torch.manual_seed(0)
    model = MLP(relu=torch.ops.my_ops.relu_forward).eval()
    x = torch.randn(16, 64)
    traced = torch_neuronx_emu.trace(model, x)
    torch.testing.assert_close(traced(x), MLP.forward(model, x), rtol=1e-6, atol=1e-6)
    with torch.no_grad():
        expected = copy.deepcopy(model)
        expected.relu = torch.relu
        torch.testing.assert_close(traced(x), expected(x), rtol=1e-5, atol=1e-5)
    gp = torch_neuronx_emu.last_call().engines["GpSimdE"]
    assert gp.instructions == 2 and gp.busy_s > 0  # the two ReLUs are GpSimd instructions of the program
    torch.jit.save(traced, str(tmp_path / "model.pt"))
    torch.save({"x": x, "y": traced(x)}, str(tmp_path / "io.pt"))
    code = textwrap.dedent(f"""
        import torch
        from torch_neuronx_emu.xla_impl import custom_op
        io = torch.load({str(tmp_path / 'io.pt')!r})
        try:  # the program is placed on a core at load, which needs the op's library (as on the real runtime)
            m = torch.jit.load({str(tmp_path / 'model.pt')!r})
            m(io["x"])
            print("RAN WITHOUT THE LIBRARY")
        except Exception as e:
            print("NEEDS LIBRARY:", "my_ops.relu_forward" in str(e) and "not registered" in str(e))
        custom_op.load_library({str(libs / 'librelu_tcm.so')!r})
        m = torch.jit.load({str(tmp_path / 'model.pt')!r})
        print("SAME:", torch.equal(m(io["x"]), io["y"]))
        x = torch.randn(7, 9)
        print("EAGER:", torch.equal(torch.ops.my_ops.relu_forward(x), torch.relu(x)))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert "NEEDS LIBRARY: True" in r.stdout and "SAME: True" in r.stdout and "EAGER: True" in r.stdout, \
        r.stdout + r.stderr


def test_gpsimd_cost_follows_the_documented_progression(libs):
    """accessor -> TCM -> multicore: 8.1 -> 220.7 -> 269.9 iter/s [neuron-api.md 4.7], i.e. 27x then 1.22x."""
    x = torch.randn(32, 128)
    cycles = {}
    for version in ("relu", "relu_tcm", "relu_mc"):
        use(libs, version)
        torch.ops.my_ops.relu_forward(x)
        cycles[version] = CURRENT[("my_ops", "relu_forward")].last_cost["cycles"]
    acc_tcm, tcm_mc = cycles["relu"] / cycles["relu_tcm"], cycles["relu_tcm"] / cycles["relu_mc"]
    assert 27.2 / 2 < acc_tcm < 27.2 * 2 and 1.1 < tcm_mc < 1.5, cycles


def test_build_cache_and_key(tmp_path, monkeypatch):
    b1 = cbuild.build("relu", [src("relu.cpp")], [src("shape.cpp")])
    b2 = cbuild.build("relu", [src("relu.cpp")], [src("shape.cpp")])
    assert b2["cached"] and b2["so"] == b1["so"]
    b3 = cbuild.build("relu", [src("relu.cpp")], [src("shape.cpp")], extra_cflags=["-DSTACK_SIZE=20000"])
    assert b3["so"] != b1["so"]
    edited = tmp_path / "relu.cpp"
    edited.write_text(open(src("relu.cpp")).read() + "\n// edited\n")
    assert cbuild.build("relu", [str(edited)], [src("shape.cpp")])["so"] != b1["so"]


# ---- documented errors ----

def test_load_library_errors(tmp_path):
    with pytest.raises(Exception, match="libname must be a string, but found"):
        custom_op.load_library(3)
    with pytest.raises(Exception, match='unable to find library file: ".*nope.so"'):
        custom_op.load_library(str(tmp_path / "nope.so"))
    (tmp_path / "junk.so").write_bytes(b"not an archive")
    with pytest.raises(Exception, match="Unable to find metadata in .*junk.so"):
        custom_op.load_library(str(tmp_path / "junk.so"))
    from neuron_emu.custom_op import package
    package.write_archive(str(tmp_path / "noshape.so"), {package.METADATA: b'{"shapelib": "computelib.so"}'})
    with pytest.raises(Exception, match="Unable to find shapelib in .*noshape.so"):
        custom_op.load_library(str(tmp_path / "noshape.so"))


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


KERNEL = """
    #include <torch/torch.h>
    torch::Tensor k(const torch::Tensor& t) { return torch::abs(t); }
"""


def test_compile_error_names_the_users_file_and_line(tmp_path):
    bad = write(tmp_path, "bad.cpp", """
        #include <torch/torch.h>
        torch::Tensor k(const torch::Tensor& t) {
          return t.no_such_method();
        }
    """)
    shape = write(tmp_path, "shape.cpp", """
        #include <torch/torch.h>
        #include "torchneuron/register.h"
        torch::Tensor s(torch::Tensor t) { return torch::zeros(t.sizes(), torch::kFloat); }
        NEURON_LIBRARY(err_ops, m) { m.def("k", &s, "k"); }
    """)
    with pytest.raises(cbuild.CustomOpBuildError, match=r"(?s)compiling .*bad.cpp failed.*bad.cpp:4:\d+: error: .*no_such_method"):
        custom_op.load("badlib", [bad], [shape])


def test_library_limits(tmp_path):
    kernel = write(tmp_path, "k.cpp", KERNEL)
    builtin = write(tmp_path, "b.cpp", """
        #include <torch/torch.h>
        #include "torchneuron/register.h"
        torch::Tensor s(torch::Tensor t) { return torch::zeros(t.sizes(), torch::kFloat); }
        NEURON_LIBRARY(builtin, m) { m.def("k", &s, "k"); }
    """)
    with pytest.raises(CustomOpError, match="library name 'builtin' is reserved"):
        custom_op.load("lim_builtin", [kernel], [builtin])
    eleven = write(tmp_path, "e.cpp", """
        #include <torch/torch.h>
        #include "torchneuron/register.h"
        torch::Tensor s(torch::Tensor t) { return torch::zeros(t.sizes(), torch::kFloat); }
        NEURON_LIBRARY(lim_ops, m) {
          m.def("k0", &s, "k"); m.def("k1", &s, "k"); m.def("k2", &s, "k"); m.def("k3", &s, "k");
          m.def("k4", &s, "k"); m.def("k5", &s, "k"); m.def("k6", &s, "k"); m.def("k7", &s, "k");
          m.def("k8", &s, "k"); m.def("k9", &s, "k"); m.def("k10", &s, "k");
        }
    """)
    with pytest.raises(CustomOpError, match="defines 11 functions; a custom-op library may define at most 10"):
        custom_op.load("lim_eleven", [kernel], [eleven])
    missing = write(tmp_path, "m.cpp", """
        #include <torch/torch.h>
        #include "torchneuron/register.h"
        torch::Tensor s(torch::Tensor t) { return torch::zeros(t.sizes(), torch::kFloat); }
        NEURON_LIBRARY(lim_missing, m) { m.def("k", &s, "not_there"); }
    """)
    with pytest.raises(CustomOpError, match="kernel function 'not_there' named by m.def\\(\\) is not defined"):
        custom_op.load("lim_missing", [kernel], [missing])
    float_arg = write(tmp_path, "f.cpp", """
        #include <torch/torch.h>
        torch::Tensor k(const torch::Tensor& t, float x) { return torch::abs(t); }
    """)
    shape2 = write(tmp_path, "s2.cpp", """
        #include <torch/torch.h>
        #include "torchneuron/register.h"
        torch::Tensor s(torch::Tensor t, double x) { return torch::zeros(t.sizes(), torch::kFloat); }
        NEURON_LIBRARY(lim_float, m) { m.def("k", &s, "k"); }
    """)
    with pytest.raises(CustomOpError, match="kernel k: unsupported argument type 'float'"):
        custom_op.load("lim_float", [float_arg], [shape2])
    with pytest.raises(ValueError, match="STACK_SIZE must be in \\(0, 409600\\]"):
        custom_op.load("lim_stack", [kernel], [builtin], extra_cflags=["-DSTACK_SIZE=500000"])
    with pytest.raises(Exception, match='library name "builtin" is reserved'):
        custom_op.load("builtin", [kernel], [builtin])


def test_unsupported_shape_function_argument_is_a_compile_error(tmp_path):
    kernel = write(tmp_path, "k.cpp", KERNEL)
    shape = write(tmp_path, "s.cpp", """
        #include <torch/torch.h>
        #include "torchneuron/register.h"
        torch::Tensor s(torch::Tensor t, float x) { return torch::zeros(t.sizes(), torch::kFloat); }
        NEURON_LIBRARY(arg_ops, m) { m.def("k", &s, "k"); }
    """)
    with pytest.raises(cbuild.CustomOpBuildError,
                       match="(?s)s.cpp.*custom op arguments must be torch::Tensor, torch::Scalar, double or int64_t"):
        custom_op.load("argfloat", [kernel], [shape])


def test_tensor_limits(libs):
    use(libs, "relu")
    with pytest.raises(CustomOpError, match=r"my_ops::relu_forward: tensor argument 0 has shape \[1, 1, 1, 1, 1, 1, 1, 1, 1\]"):
        torch.ops.my_ops.relu_forward(torch.zeros([1] * 9))
    with pytest.raises(CustomOpError, match=r"shape \[1, 70000\].*each dim <= 65535"):
        torch.ops.my_ops.relu_forward(torch.zeros(1, 70000))
    with pytest.raises(CustomOpError, match="tensor argument 0 has dtype torch.float64"):
        torch.ops.my_ops.relu_forward(torch.zeros(2, 2, dtype=torch.float64))


def test_model_with_torch_sort_cannot_use_custom_ops(libs):
    use(libs, "relu_tcm")

    class SortAfter(torch.nn.Module):
        def forward(self, x):
            return torch.sort(torch.ops.my_ops.relu_forward(x), dim=1).values

    with pytest.raises(Exception, match="my_ops::relu_forward: models using torch.sort cannot use CustomOps"):
        torch_neuronx_emu.trace(SortAfter().eval(), torch.randn(4, 8))
