"""The native kernel of neuron::forward_v2 (csrc/forward_op.h): which calls it runs itself (counted by
_C.forward_op_native_calls), that its results equal eager and the Python path's, and that everything else is
handed on to the Python kernels unchanged (same results, same errors)."""
import gc
import io
import os
import subprocess
import sys
import threading

import pytest
import torch

import torch_neuronx_emu
from neuron_emu import _C
from neuron_emu.runtime import native_placement, ops, placement

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(not ops.NATIVE, reason="this torch lacks the stable C ABI: Python kernels only")


def _mlp(batch=1, seed=0):
    torch.manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.Linear(32, 48), torch.nn.ReLU(), torch.nn.Linear(48, 16)).eval()
    return m, torch_neuronx_emu.trace(m, torch.randn(batch, 32))


def _saved_and_loaded(traced):
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    buf.seek(0)
    return torch.jit.load(buf)


def _native(fn):
    """(result, how many calls the native kernel ran) of fn()."""
    n = _C.forward_op_native_calls()
    r = fn()
    return r, _C.forward_op_native_calls() - n


def test_placed_float_model_runs_natively_without_grad():
    m, t = _mlp()   # (placed: trace ran it once, as torch.jit.load places a loaded one)
    x = torch.randn(1, 32)
    with torch.no_grad():
        y, n = _native(lambda: t(x))
    assert n == 1
    torch.testing.assert_close(y, m(x), rtol=1e-5, atol=1e-5)
    with torch.inference_mode():   # autograd keys skipped: the CPU kernel, native too
        y2, n = _native(lambda: t(x))
    assert n == 1 and torch.equal(y, y2)
    s = torch_neuronx_emu.last_call()
    assert s is not None and s.latency_s > 0 and s.engines["TensorE"].instructions > 0


def test_only_inputs_that_require_grad_take_the_python_path():
    """With grad mode on, a float input that does not require grad runs natively; one that does (a leaf, or the
    output of an op on one) goes to the Python kernel, which keeps the inference-only error."""
    m, t = _mlp()
    x = torch.randn(1, 32)
    t(x)
    y, n = _native(lambda: t(x))
    assert n == 1 and not y.requires_grad
    torch.testing.assert_close(y, m(x), rtol=1e-5, atol=1e-5)
    w = torch.randn(1, 32, requires_grad=True)
    for arg in (w, w * 2):
        out, n = _native(lambda: t(arg))
        assert n == 0 and out.requires_grad
        with pytest.raises(RuntimeError, match="inference-only"):
            out.sum().backward()
    with torch.no_grad():   # no grad mode: requires_grad does not matter
        out, n = _native(lambda: t(w))
    assert n == 1 and not out.requires_grad


def test_jit_trace_of_a_module_calling_a_traced_model_records_no_grad_check():
    """The requires_grad check calls aten::alias and aten::is_leaf through the dispatcher: a jit.trace around the
    call must record only the neuron op."""
    m, t = _mlp()
    x = torch.randn(1, 32)
    t(x)

    class Outer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = t

        def forward(self, x):
            return self.inner(x) + 1

    traced = torch.jit.trace(Outer(), x)
    kinds = {n.kind() for n in traced.inlined_graph.nodes()}
    assert "neuron::forward_v2" in kinds and not {"aten::alias", "aten::is_leaf"} & kinds
    torch.testing.assert_close(traced(x), m(x) + 1, rtol=1e-5, atol=1e-5)


def test_integer_inputs_run_natively_with_grad_mode_on():
    emb = torch.nn.Sequential(torch.nn.Embedding(100, 16), torch.nn.Linear(16, 8)).eval()
    ids = torch.randint(0, 100, (2, 5))
    t = torch_neuronx_emu.trace(emb, ids)
    t(ids)
    y, n = _native(lambda: t(ids))
    assert n == 1
    torch.testing.assert_close(y, emb(ids), rtol=1e-5, atol=1e-5)


def test_refused_inputs_get_the_runtime_errors():
    m, t = _mlp()
    x = torch.randn(1, 32)
    t(x)
    with torch.no_grad():
        with pytest.raises(RuntimeError, match=r"Input tensor 0 has shape \[2, 32\] and dtype torch.float32, but the "
                                               r"model was compiled for shape \[1, 32\]"):
            t(torch.randn(2, 32))
        with pytest.raises(RuntimeError, match="dtype torch.float64"):
            t(x.double())
        with pytest.raises(RuntimeError, match="The model expects 1 input"):
            torch.ops.neuron.forward_v2([x, x], t.neff)
        # not contiguous: the Python path copies it (same values)
        xt = torch.randn(1, 64)[:, ::2]
        y, n = _native(lambda: t(xt))
        assert n == 0
        torch.testing.assert_close(y, m(xt), rtol=1e-5, atol=1e-5)


def test_direct_op_call_from_python():
    m, t = _mlp()
    x = torch.randn(1, 32)
    t(x)
    with torch.no_grad():
        (y,), n = _native(lambda: torch.ops.neuron.forward_v2([x], t.neff))
    assert n == 1
    torch.testing.assert_close(y, m(x), rtol=1e-5, atol=1e-5)


def test_saved_and_loaded_copies_alternate_and_count_per_core():
    m, t = _mlp()
    loaded = _saved_and_loaded(t)
    torch_neuronx_emu.experimental.set_neuron_cores(loaded, 0, 2)   # a copy on cores 0 and 1, round robin
    rt = placement.runtime()
    x = torch.randn(1, 32)
    loaded(x)
    for c in rt.cores:
        c.reset_counters()
    with torch.no_grad():
        outs, n = _native(lambda: [loaded(x) for _ in range(6)])
    assert n == 6
    assert [c.counters().executions for c in rt.cores[:2]] == [3, 3]
    assert all(torch.equal(o, outs[0]) for o in outs)
    torch.testing.assert_close(outs[0], m(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 3, 4, 7])
def test_dynamic_batching_runs_chunks_natively(batch):
    """Compiled for batch 3: inputs of 1, 3, 4, 7 rows run as 3-row chunks (the last zero-padded) on one copy."""
    m, t = _mlp(batch=3)
    d = torch_neuronx_emu.dynamic_batch(t)
    d(torch.randn(3, 32))
    x = torch.randn(batch, 32)
    with torch.no_grad():
        y, n = _native(lambda: d(x))
    assert n == 1 and y.shape == (batch, 16)
    torch.testing.assert_close(y, m(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="Dynamic batching only changes dimension 0"):
        d(torch.randn(batch, 31))


def test_dynamic_batching_keeps_unbatched_outputs_from_the_first_chunk():
    class TwoOut(torch.nn.Module):
        def forward(self, x):
            return x * 2, torch.ones(5)   # the second output has no batch dimension
    t = torch_neuronx_emu.dynamic_batch(torch_neuronx_emu.trace(TwoOut().eval(), torch.randn(2, 4)))
    x = torch.randn(5, 4)
    t(torch.randn(2, 4))
    with torch.no_grad():
        (a, b), n = _native(lambda: t(x))
    assert n == 1
    assert torch.equal(a, x * 2) and torch.equal(b, torch.ones(5))


@pytest.mark.parametrize("rows", [8, 6])
def test_data_parallel_spreads_chunks_natively_over_both_cores(rows):
    """One native call: the first half of the rows on core 0 (the calling thread), the rest on core 1's worker, as
    DataParallel's own split places them; pinned calls (an input that requires grad) give the same values through
    Python threads."""
    m, t = _mlp()
    dp = torch_neuronx_emu.DataParallel(t)
    x = torch.randn(rows, 32)
    ref = dp(x.clone().requires_grad_()).detach()   # requires grad: DataParallel's Python threads
    cores = placement.runtime().cores
    with torch.no_grad():
        dp(x)
        for c in cores:
            c.reset_counters()
        y, n = _native(lambda: dp(x))
    assert n == 1
    assert [c.counters().executions for c in cores[:2]] == [rows // 2, rows // 2]
    assert torch.equal(y, ref)
    torch.testing.assert_close(y, m(x), rtol=1e-5, atol=1e-5)
    # a repeated call goes straight to the script method, unless the module has Python hooks to run
    seen = []
    dp.module.register_forward_pre_hook(lambda mod, args: seen.append(args[0].shape))
    with torch.no_grad():
        assert torch.equal(dp(x), ref) and seen == [x.shape]


def test_replicated_dynamic_model_spreads_an_unpinned_batch():
    m, t = _mlp(batch=2)
    torch_neuronx_emu.experimental.set_neuron_cores(t, 0, 2)
    torch_neuronx_emu.dynamic_batch(t)
    x = torch.randn(9, 32)   # chunks of 2: 3 on core 0, 2 on core 1 (the last padded)
    t(torch.randn(2, 32))
    cores = placement.runtime().cores
    with torch.no_grad():
        for c in cores:
            c.reset_counters()
        y, n = _native(lambda: t(x))
    assert n == 1 and sorted(c.counters().executions for c in cores[:2]) == [2, 3]   # (the first copy rotates)
    torch.testing.assert_close(y, m(x), rtol=1e-5, atol=1e-5)


def test_two_threads_on_two_cores_equal_serial():
    m, t = _mlp()
    copies = [_saved_and_loaded(t) for _ in range(2)]
    for k, c in enumerate(copies):   # (least-used placement depends on what earlier tests left loaded)
        torch_neuronx_emu.experimental.set_neuron_cores(c, k, 1)
    xs = [torch.randn(1, 32) for _ in range(50)]
    with torch.no_grad():
        serial = [[c(x) for x in xs] for c in copies]
    got = [None, None]
    cores = [set(), set()]

    def run(k):
        with torch.no_grad():
            got[k] = []
            for x in xs:
                got[k].append(copies[k](x))
                cores[k].add(torch_neuronx_emu.last_call().core_index)

    ths = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    assert all(torch.equal(a, b) for k in range(2) for a, b in zip(got[k], serial[k]))
    assert len(cores[0]) == 1 and len(cores[1]) == 1 and cores[0] != cores[1]   # each thread saw its own calls


def test_released_artifact_leaves_the_native_registry():
    _, t = _mlp()
    x = torch.randn(1, 32)
    t(x)
    key = id(t.neff)
    assert key in native_placement._registered
    del t
    gc.collect()
    assert key not in native_placement._registered
    m2, t2 = _mlp(seed=1)
    t2(x)
    with torch.no_grad():
        y, n = _native(lambda: t2(x))
    assert n == 1
    torch.testing.assert_close(y, m2(x), rtol=1e-5, atol=1e-5)


def test_python_kernels_alone_give_the_same_results():
    """NEMU_NATIVE_FORWARD=0: no native kernel, the Python kernels run every call, with the same values."""
    code = ("import sys, torch; sys.path.insert(0, %r); import torch_neuronx_emu; from neuron_emu import _C\n"
            "from neuron_emu.runtime import ops; torch.manual_seed(0)\n"
            "m = torch.nn.Sequential(torch.nn.Linear(32, 48), torch.nn.ReLU(), torch.nn.Linear(48, 16)).eval()\n"
            "x = torch.randn(1, 32); t = torch_neuronx_emu.trace(m, x); t(x)\n"
            "with torch.no_grad(): y = t(x)\n"
            "print(ops.NATIVE, _C.forward_op_native_calls(), y.flatten().tolist())") % ROOT
    outs = {}
    for flag in ("0", "1"):
        r = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, NEMU_NATIVE_FORWARD=flag),
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        outs[flag] = r.stdout.strip().splitlines()[-1].split(" ", 2)
    assert outs["0"][:2] == ["False", "0"] and outs["1"][:2] == ["True", "2"]
    assert outs["0"][2] == outs["1"][2]


# --- review (issues 6 and 8): behaviours compared with the Python kernels alone ---

def _two_out(batch=2):
    class TwoOut(torch.nn.Module):
        def forward(self, x):
            return x * 2, torch.ones(5)   # the second output has no batch dimension
    return torch_neuronx_emu.trace(TwoOut().eval(), torch.randn(batch, 4))


def test_data_parallel_gathers_unbatched_outputs_as_the_python_path_does():
    """DataParallel concatenates each core's outputs (_gather); one native call would give the first chunk's
    unbatched output instead, so the result's shape would depend on the path taken."""
    dp = torch_neuronx_emu.DataParallel(_two_out())
    x = torch.randn(8, 4)
    a_grad, b_grad = dp(x.clone().requires_grad_())   # requires grad: Python threads
    with torch.no_grad():
        a, b = dp(x)
    assert torch.equal(a, a_grad.detach()) and torch.equal(a, x * 2)
    assert b.shape == b_grad.shape == (10,)


def test_data_parallel_runs_on_its_own_device_ids_after_another_placed_the_model():
    """Two DataParallel objects over one traced model on different cores: each call runs on its own device_ids
    (as its pinned Python threads do), not on the cores the other DataParallel placed the model on last."""
    m, t = _mlp(batch=2)
    dp0 = torch_neuronx_emu.DataParallel(t, device_ids=[0])
    dp1 = torch_neuronx_emu.DataParallel(t, device_ids=[1])
    x = torch.randn(4, 32)
    cores = placement.runtime().cores
    with torch.no_grad():
        for dp, want in ((dp0, [2, 0]), (dp1, [0, 2]), (dp0, [2, 0])):
            for c in cores:
                c.reset_counters()
            y = dp(x)
            assert [c.counters().executions for c in cores[:2]] == want
            torch.testing.assert_close(y, m(x), rtol=1e-5, atol=1e-5)


def test_a_released_alias_of_the_artifact_keeps_its_native_placement():
    """An alias of the artifact's storage (same data pointer, the native registry's key) called once places
    itself; releasing it must not leave the artifact itself to the Python kernels for good."""
    m, t = _mlp()
    x = torch.randn(1, 32)
    t(x)
    alias = t.neff.detach()
    torch.ops.neuron.forward_v2([x.clone().requires_grad_()], alias)   # requires grad: the Python kernels place it
    del alias
    gc.collect()
    with torch.no_grad():
        y, n = _native(lambda: t(x))
    assert n == 1
    torch.testing.assert_close(y, m(x), rtol=1e-5, atol=1e-5)


@pytest.mark.xfail(strict=True, reason="the Python kernels' exception reaches the native kernel through torch's "
                   "stable ABI (torch_call_dispatcher), which keeps only its text: a direct call gets RuntimeError "
                   "'ValueError: ...' where the Python kernels alone raise ValueError (TorchScript calls are "
                   "RuntimeError either way)")
def test_direct_call_keeps_the_python_kernels_exception_type():
    d = torch_neuronx_emu.dynamic_batch(_mlp(batch=2)[1])
    d(torch.randn(2, 32))
    with torch.no_grad(), pytest.raises(ValueError, match="batch size 0"):
        torch.ops.neuron.forward_v2([torch.randn(0, 32)], d.neff)


FORK_CHILD = """
import os, sys, faulthandler, torch
sys.path.insert(0, %r)
import torch_neuronx_emu
torch.manual_seed(0)
m = torch.nn.Sequential(torch.nn.Linear(32, 48), torch.nn.ReLU(), torch.nn.Linear(48, 16)).eval()
dp = torch_neuronx_emu.DataParallel(torch_neuronx_emu.trace(m, torch.randn(2, 32)))
x = torch.randn(8, 32)
with torch.no_grad():
    ref = m(x)
    dp(x)
xr = x.clone().requires_grad_()
dp(xr)   # requires grad: DataParallel's Python threads start in the parent
pid = os.fork()
if pid == 0:   # (eager torch is not called in the child: its OpenMP pool does not survive fork)
    faulthandler.dump_traceback_later(60, exit=True)
    ok = torch.allclose(dp(xr).detach(), ref, atol=1e-5)
    with torch.no_grad():
        ok = ok and torch.allclose(dp(x), ref, atol=1e-5)
    os._exit(0 if ok else 3)
print("child", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_data_parallel_runs_in_a_forked_child():
    """Both kernels in a child forked after DataParallel ran: the native kernel starts its own core workers, the
    Python path its own threads (a ThreadPoolExecutor's threads do not survive fork)."""
    r = subprocess.run([sys.executable, "-c", FORK_CHILD % ROOT], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0 and r.stdout.strip().endswith("child 0"), (r.stdout[-500:], r.stderr[-2000:])


@pytest.mark.parametrize("rows, per_call", [(1, 1), (12, 3)])
def test_replicated_dynamic_calls_take_turns_on_the_copies(rows, per_call):
    """A replicated dynamic-batch model (compiled for 4) called with fewer chunks than copies, or a number that
    does not divide among them: successive calls start on the next copy, as the Python kernels' run_dynamic does,
    so no core always gets the call (batch 1) or the extra chunk."""
    m, t = _mlp(batch=4)
    torch_neuronx_emu.experimental.set_neuron_cores(t, 0, 2)
    torch_neuronx_emu.dynamic_batch(t)
    cores = placement.runtime().cores
    x = torch.randn(rows, 32)
    with torch.no_grad():
        for c in cores:
            c.reset_counters()
        ys, n = _native(lambda: [t(x) for _ in range(4)])
    assert n == 4 and [c.counters().executions for c in cores[:2]] == [2 * per_call, 2 * per_call]
    for y in ys:
        torch.testing.assert_close(y, m(x), rtol=1e-5, atol=1e-5)
