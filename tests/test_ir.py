"""The IR contract: graphs built by hand (as the lazy device and the partitioner will build them, with no
eager capture run) compile, fold their constant subgraphs, validate, and wrap into TorchScript."""
import pytest
import torch
from torch.utils import _pytree as pytree

from neuron_emu import runtime
from neuron_emu.compiler import CompilationError, compile_graph
from neuron_emu.compiler.ir import Graph, GraphError, Node, Value
from neuron_emu.compiler.options import parse_compiler_args
from neuron_emu.tracing import wrap_artifact

aten = torch.ops.aten
# fp32 matmul with a different summation order than eager: a few ulps of the largest partial sum
TOL = dict(rtol=1e-5, atol=1e-5)


class HandBuilt:
    """A minimal front end: records ops without running them (output types come from meta tensors)."""

    def __init__(self):
        self.inputs, self.nodes = [], []
        self._ids = iter(range(10 ** 9))

    def input(self, shape, dtype=torch.float32) -> Value:
        v = Value(next(self._ids), tuple(shape), dtype, "input", index=len(self.inputs))
        self.inputs.append(v)
        return v

    def const(self, t: torch.Tensor) -> Value:
        return Value(next(self._ids), tuple(t.shape), t.dtype, "const", const=t)

    def op(self, target, *args, rng_state=None, **kwargs) -> Value:
        meta = pytree.tree_map_only(Value, lambda v: torch.empty(v.shape, dtype=v.dtype, device="meta"), (args, kwargs))
        out = target(*meta[0], **meta[1])
        node = Node(target, args, kwargs, [], "test_ir.py", len(self.nodes), rng_state)
        node.outputs.append(Value(next(self._ids), tuple(out.shape), out.dtype, "node", node=node))
        self.nodes.append(node)
        return node.outputs[0]

    def graph(self, out: Value) -> Graph:
        return Graph(self.inputs, self.nodes, [out], pytree.tree_flatten(torch.empty(0))[1])


def _run(graph: Graph, *inputs):
    compiled = compile_graph(graph, parse_compiler_args(""))
    return compiled, runtime.load(compiled.blob)(list(inputs))[0]


def _linear_relu():
    W, b = torch.randn(8, 16), torch.randn(16)
    g = HandBuilt()
    x = g.input((4, 8))
    y = g.op(aten.relu.default, g.op(aten.add.Tensor, g.op(aten.mm.default, x, g.const(W)), g.const(b)))
    return g.graph(y), (lambda t: torch.relu(t @ W + b))


def test_hand_built_graph_compiles_and_matches_eager():
    graph, eager = _linear_relu()
    x = torch.randn(4, 8)
    compiled, got = _run(graph, x)
    assert compiled.supported == {"aten::mm": 1, "aten::add": 1, "aten::relu": 1}
    torch.testing.assert_close(got, eager(x), **TOL)


def test_folding_computes_constant_subgraph_itself():
    W = torch.randn(16, 8)
    g = HandBuilt()
    x = g.input((4, 8))
    w2 = g.op(aten.mul.Tensor, g.op(aten.t.default, g.const(W)), 2.0)
    graph = g.graph(g.op(aten.mm.default, x, w2))
    assert not hasattr(w2, "real")  # nothing computed by a front end exists to fold from
    x_in = torch.randn(4, 8)
    compiled, got = _run(graph, x_in)
    assert w2.kind == "const" and torch.equal(w2.const, W.t() * 2.0)
    assert "aten::t" not in compiled.graph_text and "aten::mul" not in compiled.graph_text
    torch.testing.assert_close(got, x_in @ (W.t() * 2.0), **TOL)


def test_random_op_folds_only_with_pinned_draw():
    g = HandBuilt()
    x = g.input((4,))
    graph = g.graph(g.op(aten.add.Tensor, x, g.op(aten.rand.default, [4], dtype=torch.float32)))
    with pytest.raises(CompilationError, match=r"aten::rand .*test_ir.py.*rng_state"):
        compile_graph(graph, parse_compiler_args(""))

    state = torch.get_rng_state()
    graph.nodes[0].rng_state = state
    _, got = _run(graph, torch.zeros(4))
    torch.set_rng_state(state)
    assert torch.equal(got, torch.rand(4))  # the pinned draw, replayed exactly


def test_folding_checks_declared_output_type():
    g = HandBuilt()
    x = g.input((4,))
    c = g.op(aten.neg.default, g.const(torch.ones(3)))
    c.shape = (4,)  # a front end with wrong shape inference
    graph = g.graph(g.op(aten.add.Tensor, x, c))
    with pytest.raises(GraphError, match=r"aten::neg at test_ir.py: output %\d+ is declared torch.float32\[4\]"):
        compile_graph(graph, parse_compiler_args(""))


def test_validation_rejects_use_before_definition():
    g = HandBuilt()
    x = g.input((3,))
    y = g.op(aten.neg.default, x)
    z = g.op(aten.relu.default, y)
    g.nodes.reverse()  # relu now reads neg's output before neg runs
    graph = g.graph(z)
    with pytest.raises(GraphError, match=rf"node 0 \(aten::relu at test_ir.py\) uses %{y.id} \(node\)"):
        compile_graph(graph, parse_compiler_args(""))


def test_validation_rejects_value_never_produced():
    g = HandBuilt()
    x = g.input((3,))
    ghost = Value(999, (3,), torch.float32, "node")
    graph = g.graph(g.op(aten.add.Tensor, x, ghost))
    with pytest.raises(GraphError, match=r"node 0 \(aten::add at test_ir.py\) uses %999"):
        graph.validate()


def test_validation_rejects_mutating_op():
    g = HandBuilt()
    x = g.input((3,))
    graph = g.graph(g.op(aten.relu_.default, x))
    with pytest.raises(GraphError, match=r"aten::relu_ .*functional"):
        graph.validate()


def test_wrap_artifact_runs_saves_and_loads(tmp_path):
    graph, eager = _linear_relu()
    x = torch.randn(4, 8)
    compiled = compile_graph(graph, parse_compiler_args(""))
    module = wrap_artifact(compiled, graph.out_spec, x)
    assert isinstance(module, torch.jit.ScriptModule)
    assert "neuron::forward_v2" in str(module.graph)
    torch.testing.assert_close(module(x), eager(x), **TOL)
    torch.jit.save(module, tmp_path / "m.pt")
    loaded = torch.jit.load(tmp_path / "m.pt")
    assert torch.equal(loaded(x), module(x))


def test_eager_capture_pins_random_draws():
    """Random values with constant inputs are frozen to exactly what the capture run drew."""
    from neuron_emu.compiler.capture import capture

    class Noisy(torch.nn.Module):
        def forward(self, x):
            gen = torch.Generator().manual_seed(3)
            return x + torch.randn(4) + torch.rand(4, generator=gen) + torch.bernoulli(torch.full((4,), 0.5))

    x = torch.zeros(4)
    graph, eager = capture(Noisy(), (x,))
    _, got = _run(graph, x)
    assert torch.equal(got, eager)
