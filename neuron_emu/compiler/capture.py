"""Capture: run the model once on the example inputs and record its ATen ops (a staging interpreter).

Like `torch.jit.trace`, which the real torch_neuronx uses, this executes the model for real and
records what ran: control flow and data-dependent Python values (`.item()`, `bool(t)`) are
specialised to the example (with a warning, as jit.trace warns). Functionalization removes
in-place ops and aliasing, so the graph is pure. Tensors that no recorded op produced (parameters,
buffers, captured tensors) become constants. The graph is the IR of ir.py; no value computed here is kept
in it (folding recomputes constants), except the generator state of each random op, which pins its draw.
"""
from __future__ import annotations

import os
import sys
import warnings
from typing import Any, List

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils import _pytree as pytree
from torch.utils.weak import WeakIdKeyDictionary

from neuron_emu.compiler.ir import Graph, Node, Value, op_name  # noqa: F401  (op_name: re-exported)

_TORCH_DIR = os.path.dirname(torch.__file__)
_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ROOT = os.path.dirname(_PKG)
# frames inside torch and our own tracing machinery are not "where the op came from"
_SKIP_DIRS = (_TORCH_DIR, os.path.join(_PKG, "compiler"), os.path.join(_PKG, "runtime"), os.path.join(_PKG, "tracing.py"),
              os.path.join(_ROOT, "torch_neuronx_emu"), os.path.join(_ROOT, "torch_neuron_emu"))


class CaptureError(RuntimeError):
    pass


def _user_frame() -> str:
    f = sys._getframe(2)
    while f is not None:
        fn = f.f_code.co_filename
        if not fn.startswith(_SKIP_DIRS) and "contextlib" not in fn:
            return f"{fn}:{f.f_lineno} in {f.f_code.co_name}"
        f = f.f_back
    return "<unknown>"


class _Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        # tensor -> Value, weakly: an activation is freed as soon as the model drops it (capture holds no
        # activations), and a dead tensor's entry goes with it, so a reused id cannot alias it
        self.values = WeakIdKeyDictionary()
        self.nodes: List[Node] = []
        self.warnings: List[str] = []
        self._next = 0

    def new_value(self, t: torch.Tensor, kind: str, **kw) -> Value:
        v = Value(self._next, tuple(t.shape), t.dtype, kind, **kw)
        self._next += 1
        self.values[t] = v
        return v

    def value_of(self, t: torch.Tensor) -> Value:
        v = self.values.get(t)
        if v is None:  # produced outside the graph: a parameter, buffer or captured tensor
            v = self.new_value(t, "const", const=t.detach())
        return v

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        rng_state = _rng_state(func, kwargs)
        out = func(*args, **kwargs)
        if func is torch.ops.aten._local_scalar_dense.default:
            src = self.values.get(args[0])
            if src is not None and src.kind != "const":
                msg = (f"Converting a tensor to a Python value at {_user_frame()}: the compiled graph is specialised "
                       f"to the value seen during tracing ({out}); other inputs may give wrong results")
                self.warnings.append(msg)
                warnings.warn(msg, torch.jit.TracerWarning, stacklevel=2)
            return out
        if func in (torch.ops.prim.device.default, torch.ops.aten.sym_size.int, torch.ops.aten.sym_numel.default):
            return out
        vargs, vkwargs = pytree.tree_map_only(torch.Tensor, self.value_of, (args, kwargs))
        node = Node(func, vargs, vkwargs, [], _user_frame(), len(self.nodes), rng_state)
        for o in pytree.tree_leaves(out):
            if isinstance(o, torch.Tensor):
                node.outputs.append(self.new_value(o, "node", node=node))
        self.nodes.append(node)
        return out


def _rng_state(func, kwargs):
    """Random ops: the state of the generator about to draw, so folding can replay this very draw."""
    if torch.Tag.nondeterministic_seeded not in func.tags:
        return None
    gen = kwargs.get("generator")
    return gen.get_state() if isinstance(gen, torch.Generator) else torch.get_rng_state()


def _to_plain(out):
    """ModelOutput (an OrderedDict subclass) -> dict, so the packer and TorchScript see plain containers."""
    if isinstance(out, dict) and type(out) is not dict:
        return {k: _to_plain(v) for k, v in out.items()}
    if isinstance(out, (list, tuple)) and not hasattr(out, "_fields"):
        return type(out)(_to_plain(v) for v in out)
    return out


def capture(func, example_inputs: tuple) -> tuple[Graph, Any]:
    """Record `func(*example_inputs)`. Returns the graph and the eager output."""
    for i, x in enumerate(example_inputs):
        if not isinstance(x, torch.Tensor):
            raise CaptureError(f"example_inputs[{i}] is a {type(x).__name__}; trace accepts a tensor or a tuple of tensors")
    rec = _Recorder()
    inputs = [rec.new_value(x, "input", index=i) for i, x in enumerate(example_inputs)]
    # functionalize wraps the inputs; register the wrapped inner tensors too, by identity of the data.
    fn = torch.func.functionalize(func, remove="mutations_and_views")
    # The real SDK captures under torch.jit.trace, so libraries see torch.jit.is_tracing() == True and take
    # their trace-safe paths (e.g. transformers keeps the attention mask instead of testing it with .all()).
    saved_is_tracing = torch.jit.is_tracing
    torch.jit.is_tracing = lambda *a, **k: True
    try:
        with torch.no_grad(), rec:
            out = fn(*example_inputs)
    except CaptureError:
        raise
    except Exception as e:  # the model could not run on its example inputs
        raise CaptureError(f"model could not be traced: {type(e).__name__}: {e}") from e
    finally:
        torch.jit.is_tracing = saved_is_tracing
    out = _to_plain(out)
    flat, spec = pytree.tree_flatten(out)
    outputs = []
    for i, o in enumerate(flat):
        if not isinstance(o, torch.Tensor):
            raise CaptureError(f"output {i} is a {type(o).__name__}; only tensors (in tuples, lists and dicts) "
                               "can be returned by a traced model")
        v = rec.values.get(o)
        if v is None:
            v = rec.new_value(o, "const", const=o.detach())
        outputs.append(v)
    graph = Graph(inputs, rec.nodes, outputs, spec, rec.warnings)
    return graph, out
