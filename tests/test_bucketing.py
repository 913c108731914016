"""Autobucketing (neuron-api.md 2.9; the SDK's autobucketing developer guide): BucketModelConfig and
bucket_model_trace with the guide's BERT sequence-length kernel (buckets 128 and 512), shared state buffers with a
preprocessor, saving and loading in a fresh process. Oracle: eager PyTorch on the unpadded input, compared on the
unpadded positions (padding is masked out by the attention mask)."""
import os
import subprocess
import sys
from typing import List

import pytest
import torch

import torch_neuronx_emu
from neuron_emu import zoo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# fp32 through the emulated engines vs eager (argued in test_trace); BERT stacks layers of it, each renormalised
TOL = dict(rtol=1e-4, atol=1e-4)


# The developer guide's kernel, verbatim in behaviour: pad every input on dim 1 to the first bucket >= its length.
def sequence_length_bucket_kernel(tensor_list: List[torch.Tensor]):
    x = tensor_list[0]
    bucket_dim = 1
    x_shape = x.shape
    tensor_sequence_length = x_shape[bucket_dim]
    batch_size = x_shape[bucket_dim - 1]
    buckets = [128, 512]
    idx = 0
    num_inputs = 3
    bucket = buckets[0]
    reshaped_tensors: List[torch.Tensor] = []
    bucket_idx = 0
    for idx, bucket in enumerate(buckets):
        if tensor_sequence_length <= bucket:
            bucket_idx = idx
            for tensor in tensor_list:
                if num_inputs == 0:
                    break
                delta = bucket - tensor_sequence_length
                padding_shape: List[int] = [batch_size, delta]
                zeros = torch.zeros(padding_shape, dtype=x.dtype)
                reshaped_tensors.append(torch.cat([tensor, zeros], dim=bucket_dim))
                num_inputs -= 1
            break
    return reshaped_tensors, torch.tensor([bucket_idx])


def get_bucket_kernel(*_):
    return torch.jit.script(sequence_length_bucket_kernel)


def _inputs(length: int, vocab: int):
    ids, mask, types = zoo._text_inputs(vocab, length, 1, pad=0)
    return ids, mask, types


@pytest.fixture(scope="module")
def bert_buckets():
    model, _ = zoo.bert("tiny", seq=512)
    examples = [_inputs(128, 1000), _inputs(512, 1000)]
    traced = torch_neuronx_emu.bucket_model_trace(lambda: (model, {}), examples,
                                                  torch_neuronx_emu.BucketModelConfig(get_bucket_kernel))
    return model, traced


@pytest.mark.parametrize("length", [1, 77, 128, 129, 444, 512])
def test_bert_sequence_buckets_match_eager_on_unpadded_positions(bert_buckets, length):
    model, traced = bert_buckets
    inputs = _inputs(length, 1000)
    out = traced(*inputs)
    with torch.no_grad():
        ref = model(*inputs)
    assert out[0].shape == (1, 128 if length <= 128 else 512, 64)   # the bucket's padded shape
    torch.testing.assert_close(out[0][:, :length], ref.last_hidden_state, **TOL)
    torch.testing.assert_close(out[1], ref.pooler_output, **TOL)


def test_bucket_model_saves_and_loads_in_a_fresh_process(bert_buckets, tmp_path):
    model, traced = bert_buckets
    path = tmp_path / "bert_buckets.pt"
    torch.jit.save(traced, str(path))
    inputs = _inputs(300, 1000)
    torch.save(inputs, tmp_path / "inputs.pt")
    with torch.no_grad():
        ref = model(*inputs).last_hidden_state
    script = (f"import torch, torch_neuronx_emu\nm = torch.jit.load({str(path)!r})\n"
              f"x = torch.load({str(tmp_path / 'inputs.pt')!r})\n"
              f"torch.save(m(*x)[0][:, :300], {str(tmp_path / 'out.pt')!r})\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr[-3000:]
    torch.testing.assert_close(torch.load(tmp_path / "out.pt"), ref, **TOL)


def test_input_longer_than_every_bucket_fails_at_the_bucket(bert_buckets):
    _, traced = bert_buckets
    # past the last bucket the guide's kernel returns no tensors (and bucket 0): the program says what it expected
    with pytest.raises(RuntimeError, match=r"expects 3 input tensor\(s\), got 0"):
        traced(*_inputs(600, 1000))


# -- shared state buffers ------------------------------------------------------------------------------------

class Accumulate(torch.nn.Module):
    """A bucket model with a state (think KV cache) of its bucket's length: returns x + state and writes
    state + x back through input_output_aliases."""

    def __init__(self, length: int):
        super().__init__()
        self.register_buffer("state", torch.zeros(1, length))

    def forward(self, x):
        new = self.state + x
        return x * 2 + self.state, new


def pad_kernel(tensors: List[torch.Tensor]):
    x = tensors[0]
    n = x.shape[1]
    if n <= 4:
        return [torch.cat([x, torch.zeros([1, 4 - n], dtype=x.dtype)], dim=1)], torch.tensor([0])
    return [torch.cat([x, torch.zeros([1, 8 - n], dtype=x.dtype)], dim=1)], torch.tensor([1])


def tail_preprocessor(shapes_collection: List[List[List[int]]], states: List[torch.Tensor],
                      bucket_idx_tensor: torch.Tensor) -> List[torch.Tensor]:
    # the developer guide's KV-cache preprocessor: each state sliced to the bucket's shape, from the end
    bucket_idx = torch.ops.aten.Int(bucket_idx_tensor)
    shapes = shapes_collection[bucket_idx]
    sliced_state_tensors = []
    for i in range(len(shapes)):
        expected_shape = shapes[i]
        state_tensor = states[i]
        state_tensor_shape = state_tensor.shape
        for j, npos in enumerate(expected_shape):
            state_tensor_dim_length = state_tensor_shape[j]
            state_tensor = torch.ops.aten.slice(state_tensor, dim=j, start=state_tensor_dim_length - npos,
                                                end=state_tensor_dim_length)
        sliced_state_tensors.append(state_tensor)
    return sliced_state_tensors


def _make(length: int):
    m = Accumulate(length).eval()
    return m, {m.state: 1}


@pytest.fixture(scope="module")
def stateful():
    cfg = torch_neuronx_emu.BucketModelConfig(lambda: torch.jit.script(pad_kernel),
                                              shared_state_buffer=[torch.zeros(1, 8)],
                                              shared_state_buffer_preprocessor=lambda: torch.jit.script(tail_preprocessor),
                                              func_kwargs=[{"length": 4}, {"length": 8}])
    return torch_neuronx_emu.bucket_model_trace(_make, [torch.zeros(1, 4), torch.zeros(1, 8)], cfg)


def test_shared_state_buffer_is_updated_through_the_preprocessor(stateful, tmp_path):
    x = torch.arange(1.0, 4.0).reshape(1, 3)
    out = stateful(x)
    torch.testing.assert_close(out[0], torch.tensor([[2.0, 4.0, 6.0, 0.0]]))
    state = stateful.model.states[0]
    # bucket 0 saw the last 4 positions of the shared buffer and wrote x (padded) back into them
    torch.testing.assert_close(state, torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 0.0]]))
    y = torch.ones(1, 6)
    out = stateful(y)   # bucket 1: the whole buffer, as updated by the first call
    torch.testing.assert_close(out[0], torch.tensor([[2.0, 2.0, 2.0, 2.0, 3.0, 4.0, 3.0, 0.0]]))
    torch.testing.assert_close(state, torch.tensor([[1.0, 1.0, 1.0, 1.0, 2.0, 3.0, 3.0, 0.0]]))
    path = tmp_path / "stateful.pt"
    torch.jit.save(stateful, str(path))   # the state is saved with the model
    torch.testing.assert_close(torch.jit.load(str(path)).model.states[0], state)


def test_config_and_trace_argument_errors():
    with pytest.raises(TypeError, match="bucket_kernel must be a callable"):
        torch_neuronx_emu.BucketModelConfig(3)
    with pytest.raises(TypeError, match="1 positional argument"):
        torch_neuronx_emu.BucketModelConfig(get_bucket_kernel, [torch.zeros(1)])
    cfg = torch_neuronx_emu.BucketModelConfig(lambda: pad_kernel)   # not scripted: could not be saved
    with pytest.raises(TypeError, match="torch.jit.script"):
        torch_neuronx_emu.bucket_model_trace(lambda: (Accumulate(4), {}), [torch.zeros(1, 4)], cfg)
    cfg = torch_neuronx_emu.BucketModelConfig(lambda: torch.jit.script(pad_kernel), func_kwargs=[{"length": 4}])
    with pytest.raises(ValueError, match="func_kwargs is a list of 1 entries but there are 2 buckets"):
        torch_neuronx_emu.bucket_model_trace(_make, [torch.zeros(1, 4), torch.zeros(1, 8)], cfg)
    with pytest.raises(TypeError, match=r"must return \(model, input_output_aliases\)"):
        torch_neuronx_emu.bucket_model_trace(lambda: Accumulate(4), [torch.zeros(1, 4)],
                                             torch_neuronx_emu.BucketModelConfig(lambda: torch.jit.script(pad_kernel)))


@pytest.mark.slow
def test_docs_bert_base_example_in_a_fresh_process(tmp_path):
    """The developer guide's example at full size: BERT-base, buckets 128 and 512, traced here, loaded and run in a
    fresh process on lengths 1..512 (the guide's 122 and 444 among them), compared with eager on the unpadded
    positions."""
    model, _ = zoo.bert("base", seq=512)
    traced = torch_neuronx_emu.bucket_model_trace(lambda: (model, {}), [_inputs(128, 30522), _inputs(512, 30522)],
                                                  torch_neuronx_emu.BucketModelConfig(get_bucket_kernel))
    torch.jit.save(traced, str(tmp_path / "bert.pt"))
    cases = {n: _inputs(n, 30522) for n in (1, 122, 128, 129, 444, 512)}
    refs = {}
    with torch.no_grad():
        for n, x in cases.items():
            refs[n] = model(*x).last_hidden_state
    del traced
    torch.save(cases, tmp_path / "cases.pt")
    script = (f"import torch, torch_neuronx_emu\nm = torch.jit.load({str(tmp_path / 'bert.pt')!r})\n"
              f"cases = torch.load({str(tmp_path / 'cases.pt')!r})\n"
              f"torch.save({{n: m(*x)[0][:, :n] for n, x in cases.items()}}, {str(tmp_path / 'out.pt')!r})\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr[-3000:]
    out = torch.load(tmp_path / "out.pt")
    for n, ref in refs.items():
        torch.testing.assert_close(out[n], ref, **TOL)


def test_a_dropped_bucket_model_releases_its_artifacts():
    import gc
    import weakref
    cfg = torch_neuronx_emu.BucketModelConfig(lambda: torch.jit.script(pad_kernel), func_kwargs=[{"length": 4}])
    m = torch_neuronx_emu.bucket_model_trace(_make, [torch.zeros(1, 4)], cfg)
    m(torch.ones(1, 3))
    neffs = [weakref.ref(b) for name, b in m.named_buffers() if name.endswith("neff")]
    assert neffs
    del m
    gc.collect()
    assert all(r() is None for r in neffs)   # nothing (e.g. the scripted class's closure) keeps them alive
