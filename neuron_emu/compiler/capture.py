"""Capture: run the model once on the example inputs and record its ATen ops (a staging interpreter).

Like `torch.jit.trace`, which the real torch_neuronx uses, this executes the model for real and
records what ran: control flow and data-dependent Python values (`.item()`, `bool(t)`) are
specialised to the example (with a warning, as jit.trace warns). Functionalization removes
in-place ops and aliasing, so the graph is pure. Tensors that no recorded op produced (parameters,
buffers, captured tensors) become constants. The graph is the IR of ir.py; no value computed here is kept
in it (folding recomputes constants), except the generator state of each random op, which pins its draw.
An op the compiler has no lowering for is recorded as the ops of its decomposition (decompose.py).
"""
from __future__ import annotations

import os
import sys
import warnings
from typing import Any, Dict, List, Optional

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils import _pytree as pytree
from torch.utils.weak import WeakIdKeyDictionary

from neuron_emu.compiler.ir import Graph, Node, Value, op_name  # noqa: F401  (op_name: re-exported)
from neuron_emu.compiler import scope
from neuron_emu.compiler.decompose import decomposition_for

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
        self.viewed = set()  # storages some recorded view aliases (an in-place op on them stays mutable)
        self._next = 0
        self.weights: dict = {}   # external weights (inline_weights_to_neff=False): alias_key -> input Value

    def new_value(self, t: torch.Tensor, kind: str, **kw) -> Value:
        v = Value(self._next, tuple(t.shape), t.dtype, kind, **kw)
        self._next += 1
        self.values[t] = v
        return v

    def value_of(self, t: torch.Tensor) -> Value:
        v = self.values.get(t)
        if v is None:  # produced outside the graph: a parameter, buffer or captured tensor
            v = self.weights.get(alias_key(t)) if self.weights else None
            if v is None:
                v = self.new_value(t, "const", const=t.detach())
        return v

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        decomp = decomposition_for(func)
        if decomp is not None:  # no lowering of its own: record the ops of PyTorch's decomposition instead
            with self:
                out = decomp(*args, **kwargs)
            if out is not NotImplemented:
                return out
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
        if func._schema.is_mutable:
            func = self._functional_form(func, args)
        node = Node(func, vargs, vkwargs, [], _user_frame(), len(self.nodes), rng_state, scope.current())
        for o in pytree.tree_leaves(out):
            if isinstance(o, torch.Tensor):
                node.outputs.append(self.new_value(o, "node", node=node))
        self.nodes.append(node)
        for o in pytree.tree_leaves(out):
            if isinstance(o, torch.Tensor) and o._is_view():
                self.viewed.add(o.untyped_storage().data_ptr())
        return out

    def _functional_form(self, func, args):
        """An in-place op that functionalize let through (it leaves some inside composite kernels, e.g. matmul's
        `squeeze_` of a fresh 1-D result, or a loss's `clamp_min_`): recorded as its out-of-place overload, the
        mutated tensor then mapping to the new value. Exact when nothing else aliases that tensor; a mutation
        through or of a view stays mutable, and the IR check names it."""
        name = func._schema.name.split("::")[-1]
        self_arg = args[0] if args else None
        if func is torch.ops.aten.copy_.default and self._fresh(self_arg):
            return torch.ops.aten.copy.default  # a copy into a tensor the graph just made (zeros_like, clone)
        # (copy_ is functionalize's write-back into a mutated input: _drop_input_writebacks handles that one)
        if not name.endswith("_") or name == "copy_" or not isinstance(self_arg, torch.Tensor) or self_arg._is_view() \
                or self_arg.untyped_storage().data_ptr() in self.viewed:
            return func
        packet = getattr(torch.ops.aten, name[:-1], None)
        functional = getattr(packet, func._overloadname, None) if packet is not None else None
        if functional is None or functional._schema.is_mutable:
            return func
        return functional

    def _fresh(self, t) -> bool:
        """`t` is a whole tensor a recorded op produced, which nothing else aliases."""
        v = self.values.get(t) if isinstance(t, torch.Tensor) else None
        return (v is not None and v.kind == "node" and not t._is_view()
                and t.untyped_storage().data_ptr() not in self.viewed)


def alias_key(t: torch.Tensor) -> tuple:
    """What makes two tensor objects the same weight: storage, offset, shape, strides, dtype (a Parameter and
    the plain tensor a wrapper hands the dispatcher for it are different objects over the same data)."""
    return (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)


def _rng_state(func, kwargs):
    """Random ops: the state of the generator about to draw, so folding can replay this very draw."""
    if torch.Tag.nondeterministic_seeded not in func.tags:
        return None
    gen = kwargs.get("generator")
    return gen.get_state() if isinstance(gen, torch.Generator) else torch.get_rng_state()


class _InferenceCtx:
    """The `ctx` of an autograd.Function's forward run for inference: saving for backward is a no-op."""

    def __init__(self, n_inputs: int):
        self.needs_input_grad = (False,) * n_inputs
        self.saved_tensors = ()

    def save_for_backward(self, *tensors):
        self.saved_tensors = tensors

    def mark_dirty(self, *_):
        pass

    def mark_non_differentiable(self, *_):
        pass

    def set_materialize_grads(self, _):
        pass


_function_apply = torch.autograd.Function.__dict__["apply"]


def _inference_apply(cls, *args, **kwargs):
    """autograd.Function.apply during capture: functionalize is a functorch transform, under which torch refuses a
    Function without a separate `setup_context` (old style, e.g. BLOOM's GeLU), and has no rule at all for one
    with it (new style, e.g. torch's ModIndex, which transformers 4.x's vmap-built attention masks index through).
    Capture runs under no_grad, as inference, so the Function's forward runs directly and its ops are recorded
    (what torch.jit.trace records)."""
    from torch.autograd.function import _is_setup_context_defined
    if not torch.is_grad_enabled():
        if _is_setup_context_defined(cls.setup_context):
            return cls.forward(*args, **kwargs)  # new style: forward takes no ctx
        return cls.forward(_InferenceCtx(len(args)), *args, **kwargs)
    return _function_apply.__func__(cls, *args, **kwargs)


def _cache_layers(obj):
    """A Hugging Face KV cache (`transformers.Cache`: DynamicCache and friends) as its per-layer (key, value)
    tensors, or None for anything else. Duck-typed (`.layers` of objects with `.keys`/`.values`; older releases'
    `.key_cache`/`.value_cache` lists), so neither transformers nor its pytree registration is needed. An
    `EncoderDecoderCache` gives (self key, self value, cross key, cross value) per layer, the legacy layout."""
    if hasattr(obj, "self_attention_cache") and hasattr(obj, "cross_attention_cache"):
        own = _cache_layers(obj.self_attention_cache)
        cross = _cache_layers(obj.cross_attention_cache)
        if own is not None and cross is not None and len(own) == len(cross):
            return tuple(a + c for a, c in zip(own, cross))
        return own
    layers = getattr(obj, "layers", None)
    if isinstance(layers, (list, tuple)) and layers and all(hasattr(l, "keys") and hasattr(l, "values") for l in layers):
        pairs = [(l.keys, l.values) for l in layers]
    elif isinstance(getattr(obj, "key_cache", None), list) and isinstance(getattr(obj, "value_cache", None), list):
        pairs = list(zip(obj.key_cache, obj.value_cache))
    else:
        return None
    if not all(isinstance(k, torch.Tensor) and isinstance(v, torch.Tensor) for k, v in pairs):
        return None
    return tuple(pairs)


def _traceable_dict(d: dict) -> bool:
    """Whether torch.jit.trace can return this dict (its tracer's `addOutput`): string keys, and values that are
    all tensors or all tuples of tensors of one length. Anything else (a list or dict value, a None, mixed
    types) would fail inside torch.jit with "output ... of traced region cannot be understood by the tracer"."""
    if not d or not all(isinstance(k, str) for k in d):
        return False
    vals = list(d.values())
    if all(isinstance(v, torch.Tensor) for v in vals):
        return True
    return (all(isinstance(v, tuple) and all(isinstance(t, torch.Tensor) for t in v) for v in vals)
            and len({len(v) for v in vals}) == 1)


def _to_plain(out):
    """The model's output as the plain containers a TorchScript module can return (the traced module is one, before
    and after torch.jit.save/load, so no other class can be rebuilt on the way back):
    - a `ModelOutput` (an OrderedDict subclass) or other dict subclass -> dict;
    - a KV cache (`DynamicCache`, which transformers does not register as a pytree node) -> a tuple of per-layer
      (key, value) tuples (+ cross-attention key, value for an `EncoderDecoderCache`), the legacy
      `past_key_values` layout;
    - another registered pytree node of a non-container class -> the tuple of its flattened children;
    - a dict or list that torch.jit.trace cannot return (the tracer returns dicts of string keys to tensors or
      to equal-length tuples of tensors, and lists of tensors: e.g. a `last_hidden_state` tensor beside a
      cache, a dict of lists, a list of dicts) -> the tuple of its values in order: `ModelOutput.to_tuple()`,
      what transformers returns with `return_dict=False` / `torchscript=True`. Tuples nest to any depth, so
      every nesting of tensors in tuples, lists and dicts traces, and the leaves keep their order.
    Anything else that is not a tensor stays a leaf, and capture rejects it by name."""
    if isinstance(out, torch.Tensor) or out is None:
        return out
    cache = _cache_layers(out)
    if cache is not None:
        return cache
    if isinstance(out, dict):
        plain = {k: _to_plain(v) for k, v in out.items()}
        return plain if _traceable_dict(plain) else tuple(plain.values())
    if isinstance(out, (list, tuple)) and not hasattr(out, "_fields"):
        plain = [_to_plain(v) for v in out]
        if isinstance(out, list):
            return plain if plain and all(isinstance(v, torch.Tensor) for v in plain) else tuple(plain)
        return tuple(plain)
    if hasattr(out, "_fields"):  # namedtuple: pytree keeps it (TorchScript returns it as a tuple)
        return out
    node = pytree.SUPPORTED_NODES.get(type(out))
    if node is not None:
        children, _ = node.flatten_fn(out)
        return tuple(_to_plain(c) for c in children)
    return out


def _drop_input_writebacks(rec: _Recorder) -> None:
    """A model that mutates an input in place: functionalize ends with a `copy_` of the new value into the input.
    The real SDK's traced model does not write its inputs back (a NeuronCore's inputs are read-only copies of the
    caller's tensors; only `input_output_aliases` state is updated on the device), so neither does ours: the
    write-back is dropped from the graph and a TracerWarning names the input and the op that last wrote it. The
    example input itself was mutated by the run, as eager (and torch.jit.trace) would."""
    kept = []
    for n in rec.nodes:
        dst = n.args[0] if n.target is torch.ops.aten.copy_.default and n.args else None
        if isinstance(dst, Value) and dst.kind == "node" and dst.node.target is torch.ops.aten.alias.default:
            dst = dst.node.args[0]  # a write-back through an alias of the input (batch norm's running stats)
        if isinstance(dst, Value) and dst.kind == "input":
            src = n.args[1]
            where = src.node.where if isinstance(src, Value) and src.node is not None else n.where
            msg = (f"The model mutates its input {dst.index} in place (last written at {where}): the traced Neuron "
                   f"model does not write inputs back, so the caller's tensor keeps its value where eager would "
                   f"change it. Return the updated tensor as an output instead")
            rec.warnings.append(msg)
            warnings.warn(msg, torch.jit.TracerWarning, stacklevel=4)
            continue
        kept.append(n)
    rec.nodes[:] = kept


def capture(func, example_inputs: tuple, weights: Optional[Dict[str, torch.Tensor]] = None) -> tuple[Graph, Any]:
    """Record `func(*example_inputs)`. Returns the graph and the eager output.

    `weights` (state-dict name -> tensor) are kept out of the graph's constants: each one the model uses becomes
    a graph input after the model's own (in first-use order of `weights`), and `graph.weight_names` lists the
    names of each (several where a weight is tied)."""
    for i, x in enumerate(example_inputs):
        if not isinstance(x, torch.Tensor):
            raise CaptureError(f"example_inputs[{i}] is a {type(x).__name__}; trace accepts a tensor or a tuple of tensors")
    rec = _Recorder()
    inputs = [rec.new_value(x, "input", index=i) for i, x in enumerate(example_inputs)]
    names_of: Dict[int, List[str]] = {}   # weight Value id -> its names
    for name, w in (weights or {}).items():
        key = alias_key(w)
        v = rec.weights.get(key)
        if v is None:
            v = Value(rec._next, tuple(w.shape), w.dtype, "input")
            rec._next += 1
            rec.weights[key] = v
            names_of[v.id] = []
        names_of[v.id].append(name)
    # functionalize wraps the inputs; register the wrapped inner tensors too, by identity of the data.
    # Outputs are made plain inside: functionalize unwraps only pytree containers, not e.g. a DynamicCache.
    fn = torch.func.functionalize(lambda *a: _to_plain(func(*a)), remove="mutations_and_views")
    # The real SDK captures under torch.jit.trace, so libraries see torch.jit.is_tracing() == True and take
    # their trace-safe paths (e.g. transformers keeps the attention mask instead of testing it with .all()).
    saved_is_tracing = torch.jit.is_tracing
    torch.jit.is_tracing = lambda *a, **k: True
    torch.autograd.Function.apply = classmethod(_inference_apply)
    try:
        with torch.no_grad(), scope.module_scopes(func), rec:
            out = fn(*example_inputs)
    except CaptureError:
        raise
    except Exception as e:  # the model could not run on its example inputs
        raise CaptureError(f"model could not be traced: {type(e).__name__}: {e}") from e
    finally:
        torch.jit.is_tracing = saved_is_tracing
        torch.autograd.Function.apply = _function_apply
    _drop_input_writebacks(rec)
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
    used = {a.id for n in rec.nodes for a in n.value_args()} | {v.id for v in outputs}
    external = [v for v in rec.weights.values() if v.id in used]
    for j, v in enumerate(external):
        v.index = len(inputs) + j
    graph = Graph(inputs + external, rec.nodes, outputs, spec, rec.warnings,
                  weight_names=[names_of[v.id] for v in external])
    return graph, out
