"""Layers whose backward has no lowering, run on the device through our decompositions (decompositions.py,
pool_backward.py, upsample_backward.py, rnn_cells.py) instead of a CPU fallback, which cut the training graph every
step: gradients of the input and the parameters against CPU eager, and no `aten::` fallback."""
import copy

import pytest
import torch

import torch_neuronx_emu.debug_metrics as met
import torch_neuronx_emu.xla_model as xm

from lazy_helpers import dev  # noqa: F401


def _assert_grads_match(dev, module, x, rtol=1e-4, atol=1e-5):
    """backward(random output gradient) through `module` on CPU and on the device."""
    torch.manual_seed(0)
    xc = x.clone().requires_grad_()
    y = module(xc)
    g = torch.randn_like(y)
    y.backward(g)
    module_dev = copy.deepcopy(module).to(dev)
    module_dev.zero_grad()
    xd = x.to(dev).requires_grad_()
    module_dev(xd).backward(g.to(dev))
    xm.mark_step()
    torch.testing.assert_close(xd.grad.cpu(), xc.grad, rtol=rtol, atol=atol)
    for (name, p), q in zip(module.named_parameters(), module_dev.parameters()):
        # (a weight's gradient sums over the batch and the positions: a looser absolute tolerance)
        torch.testing.assert_close(q.grad.cpu(), p.grad, rtol=rtol, atol=10 * atol, msg=lambda m: f"{name}: {m}")
    assert met.executed_fallback_ops() == []


_CONV = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}
_CONV_T = {1: torch.nn.ConvTranspose1d, 2: torch.nn.ConvTranspose2d}


@pytest.mark.parametrize("dims,k,stride,pad,dil,groups", [
    (2, 3, 1, 1, 1, 1), (2, 3, 2, 0, 1, 2), (2, 3, 1, 2, 2, 4), (1, 4, 3, 1, 1, 1), (2, (3, 2), (2, 1), (1, 0), 1, 1),
    (3, 2, 1, 0, 1, 1)])
def test_convolution(dev, dims, k, stride, pad, dil, groups):
    torch.manual_seed(1)
    conv = _CONV[dims](4, 8, k, stride, pad, dil, groups)
    _assert_grads_match(dev, conv, torch.randn(2, 4, *[9 if dims < 3 else 5] * dims))


@pytest.mark.parametrize("transposed", [False, True])
def test_convolution_of_an_empty_batch(dev, transposed):
    # the weight's gradient is zeros of the weight's shape (the batch-as-channels convolution gave [0, ...])
    torch.manual_seed(1)
    conv = (torch.nn.ConvTranspose2d if transposed else torch.nn.Conv2d)(4, 6, 3, stride=2, groups=2)
    _assert_grads_match(dev, conv, torch.randn(0, 4, 5, 5))


@pytest.mark.parametrize("dims,k,stride,pad,out_pad,dil,groups", [
    (2, 3, 2, 1, 1, 1, 1), (2, 4, 2, 1, 0, 1, 2), (1, 3, 3, 0, 2, 1, 1), (2, 3, 2, 0, 1, 2, 1)])
def test_transposed_convolution(dev, dims, k, stride, pad, out_pad, dil, groups):
    torch.manual_seed(1)
    conv = _CONV_T[dims](4, 6, k, stride, pad, out_pad, groups, dilation=dil)
    _assert_grads_match(dev, conv, torch.randn(2, 4, *[5] * dims))


@pytest.mark.parametrize("kernel,stride,pad,dil,ceil", [(2, 2, 0, 1, False), (3, 2, 1, 1, False), (3, 2, 0, 2, True),
                                                        ((2, 3), (1, 2), (1, 1), 1, True)])
def test_max_pool_with_ties(dev, kernel, stride, pad, dil, ceil):
    # ties: the gradient goes where the forward's index says
    torch.manual_seed(1)
    x = torch.randn(2, 3, 11, 10).round(decimals=1)
    _assert_grads_match(dev, torch.nn.MaxPool2d(kernel, stride, pad, dil, ceil_mode=ceil), x, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel,stride,pad,ceil,include_pad,divisor", [
    (2, 2, 0, False, True, None), (3, 2, 1, False, False, None), (3, 2, 1, True, True, None),
    ((2, 3), (1, 2), (1, 1), True, False, None), (3, 1, 1, False, True, 5)])
def test_avg_pool(dev, kernel, stride, pad, ceil, include_pad, divisor):
    torch.manual_seed(1)
    pool = torch.nn.AvgPool2d(kernel, stride, pad, ceil_mode=ceil, count_include_pad=include_pad,
                              divisor_override=divisor)
    _assert_grads_match(dev, pool, torch.randn(2, 3, 9, 10))


@pytest.mark.parametrize("out,shape", [((3, 3), (2, 3, 7, 7)), ((2, 5), (2, 3, 7, 9)), ((4, 4), (1, 2, 3, 2))])
def test_adaptive_avg_pool(dev, out, shape):
    torch.manual_seed(1)
    _assert_grads_match(dev, torch.nn.AdaptiveAvgPool2d(out), torch.randn(*shape))


def test_global_adaptive_max_pool_with_ties(dev):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 5, 6).round(decimals=1)
    _assert_grads_match(dev, torch.nn.AdaptiveMaxPool2d(1), x, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape,kwargs", [
    ((2, 3, 5, 6), dict(scale_factor=2, mode="nearest")), ((2, 3, 5, 6), dict(size=(7, 11), mode="nearest")),
    ((2, 3, 5, 6), dict(scale_factor=2, mode="bilinear")),
    ((2, 3, 5, 6), dict(size=(9, 4), mode="bilinear", align_corners=True)),
    ((2, 3, 5, 6), dict(scale_factor=(1.5, 2.5), mode="bilinear", recompute_scale_factor=False)),
    ((2, 3, 5, 6), dict(scale_factor=1.7, mode="bicubic")), ((2, 3, 7), dict(scale_factor=3, mode="linear")),
    ((2, 3, 7), dict(size=10, mode="nearest"))], ids=lambda v: v["mode"] if isinstance(v, dict) else str(v))
def test_upsampling(dev, shape, kwargs):
    torch.manual_seed(1)
    _assert_grads_match(dev, torch.nn.Upsample(**kwargs), torch.randn(*shape), rtol=1e-5)


@pytest.mark.parametrize("make", [
    lambda: torch.nn.LSTM(6, 5, num_layers=2, bidirectional=True, batch_first=True),
    lambda: torch.nn.GRU(6, 5, batch_first=True), lambda: torch.nn.GRU(6, 5, bias=False, batch_first=True),
    lambda: torch.nn.LSTMCell(6, 5)], ids=["lstm-2-layers-bidirectional", "gru", "gru-no-bias", "lstm-cell"])
def test_recurrent_layers(dev, make):
    # on a PrivateUse1 device the RNN layers call the fused cells, which have CUDA kernels only (a CPU fallback
    # could not run them); every output (sequence or h, and h_n, c_n) reaches the loss
    torch.manual_seed(0)
    rnn = make()
    rnn_dev = copy.deepcopy(rnn).to(dev)
    x = torch.randn(3, 4, 6) if isinstance(rnn, torch.nn.RNNBase) else torch.randn(3, 6)

    def loss(out):
        flat = [t for o in (out if isinstance(out, tuple) else (out,)) for t in (o if isinstance(o, tuple) else (o,))]
        return sum(t.sin().sum() * (i + 1) for i, t in enumerate(flat))
    want = loss(rnn(x))
    want.backward()
    got = loss(rnn_dev(x.to(dev)))
    got.backward()
    xm.mark_step()
    torch.testing.assert_close(got.cpu(), want, rtol=1e-4, atol=1e-5)
    for (name, p), q in zip(rnn.named_parameters(), rnn_dev.parameters()):
        torch.testing.assert_close(q.grad.cpu(), p.grad, rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")
    assert met.executed_fallback_ops() == []


@pytest.mark.parametrize("dim", [0, 1])
def test_weight_norm(dev, dim):
    torch.manual_seed(1)
    layer = torch.nn.utils.parametrizations.weight_norm(torch.nn.Linear(16, 8), dim=dim)
    _assert_grads_match(dev, layer, torch.randn(4, 16))


@torch.library.custom_op("lazytest::contiguous_probe", mutates_args=())
def _contiguous_probe(x: torch.Tensor) -> torch.Tensor:
    """A CPU kernel that, like ATen's internal kernels reading the raw buffer, is only right on a contiguous input
    (NaN otherwise)."""
    return x.clone() if x.is_contiguous() else torch.full_like(x, float("nan"))


def test_cpu_fallback_gets_contiguous_inputs(dev):
    # a device tensor reports itself contiguous (so `.contiguous()` is a no-op on it): its CPU copy for a fallback
    # must be contiguous too, or a kernel reading the buffer sees a transposed view in the wrong order
    x = torch.arange(12.0).reshape(3, 4)
    got = _contiguous_probe(x.to(dev).t().contiguous())
    torch.testing.assert_close(got.cpu(), x.t())


@pytest.mark.parametrize("make", [lambda: torch.nn.LSTM(4, 5, batch_first=True),
                                  lambda: torch.nn.GRU(4, 5, 2, batch_first=True, bidirectional=True)],
                         ids=["lstm", "gru-2-layers-bidirectional"])
def test_packed_sequences(dev, make):
    # a PackedSequence's batch sizes (and pad_packed_sequence's lengths) stay CPU tensors, as on every device:
    # made on the device, PackedSequence refused them
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    torch.manual_seed(0)
    rnn = make()
    rnn_dev = copy.deepcopy(rnn).to(dev)
    x, lengths = torch.randn(3, 4, 4), torch.tensor([2, 4, 1])

    def loss(mod, x):
        out, _ = mod(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        padded, out_lengths = pad_packed_sequence(out, batch_first=True)
        assert out_lengths.device.type == "cpu" and out_lengths.tolist() == lengths.tolist()
        return padded.sin().sum()
    want = loss(rnn, x)
    want.backward()
    got = loss(rnn_dev, x.to(dev))
    got.backward()
    xm.mark_step()
    torch.testing.assert_close(got.cpu(), want, rtol=1e-4, atol=1e-5)
    for (name, p), q in zip(rnn.named_parameters(), rnn_dev.parameters()):
        torch.testing.assert_close(q.grad.cpu(), p.grad, rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")
