"""Concurrent callers and long runs: two threads sharing one DataParallel model get their own correct results;
10,000 calls leave the resident set size where it was (slow)."""
import io
import os
import threading

import pytest
import torch

import torch_neuronx_emu
from neuron_emu import zoo


def _copy(traced):
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    buf.seek(0)
    return torch.jit.load(buf)


@pytest.fixture(scope="module")
def mlp():
    model, inputs = zoo.mlp(in_features=64, hidden=(128,), out=16, batch=2)
    return model, inputs, torch_neuronx_emu.trace(model, inputs)


def test_two_threads_share_one_data_parallel(mlp):
    model, _, traced = mlp
    dp = torch_neuronx_emu.DataParallel(_copy(traced))
    one = torch_neuronx_emu.dynamic_batch(_copy(traced))   # the same program on one core: the oracle, bit for bit
    torch.manual_seed(1)
    batches = [[torch.randn(n, 64) for n in (8, 5, 6, 1)] for _ in range(2)]
    refs = [[one(x) for x in xs] for xs in batches]
    errors, start = [], threading.Barrier(2)

    def caller(k):
        try:
            start.wait()
            for _ in range(10):
                for x, ref in zip(batches[k], refs[k]):
                    out = dp(x)
                    if not torch.equal(out, ref):
                        errors.append(f"thread {k}: batch of {x.shape[0]} differs by {(out - ref).abs().max()}")
        except Exception as e:   # reported below, not lost in the thread
            errors.append(f"thread {k}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads) and not errors, errors[:3]
    torch.testing.assert_close(refs[0][0], model(batches[0][0]).detach(), rtol=1e-5, atol=1e-5)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.slow
@pytest.mark.parametrize("grad", [True, False], ids=["python-kernel", "native-kernel"])
def test_ten_thousand_calls_do_not_grow_rss(mlp, grad):
    """A leak of 200 bytes per call would show as 2 MB over 10,000 calls; the first 500 calls let allocator pools
    and caches settle. (benchmarks/bench_soak.py prints the figures, DataParallel included.) An input that requires
    grad takes the Python kernel, a plain one the native kernel (csrc/forward_op.h)."""
    _, inputs, traced = mlp
    t = _copy(traced)
    inputs = tuple(x.clone().requires_grad_(grad) for x in inputs)
    for _ in range(500):
        t(*inputs)
    before = _rss_mb()
    for _ in range(10_000):
        t(*inputs)
    assert _rss_mb() - before < 2.0
