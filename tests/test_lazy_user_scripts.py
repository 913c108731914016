"""Scripts written the way the torch_xla / Neuron training tutorials write them, on the lazy device against CPU
eager: each test is a user-visible behaviour a tutorial relies on and no other lazy test covers."""
import copy

import pytest
import torch

import torch_neuronx_emu.debug_metrics as met
import torch_neuronx_emu.xla_model as xm

from lazy_helpers import dev, train_losses  # noqa: F401


def _mlp():
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))


@pytest.mark.parametrize("foreach,dtype", [(True, torch.float32), (False, torch.float32), (True, torch.bfloat16)],
                         ids=["foreach", "single-tensor", "bf16"])
def test_sgd_with_a_scheduler_compiles_its_step_once(dev, foreach, dtype):
    # SGD applies lr as `add_(grad, alpha=-lr)`, a Scalar argument: torch_xla makes it device data (not 0 or 1),
    # so OneCycleLR changing lr every step must not recompile every step
    torch.manual_seed(0)
    cpu_model = _mlp().to(dtype)
    dev_model = copy.deepcopy(cpu_model).to(dev)
    batches = [(torch.randn(8, 16, dtype=dtype), torch.randn(8, 4, dtype=dtype)) for _ in range(8)]
    # bf16: the device rounds lr * grad before adding it (as torch_xla), eager rounds once
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)

    def run(model, d):
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, foreach=foreach)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=8)
        return train_losses(model, opt, batches, torch.nn.functional.mse_loss, d, sched)
    want = run(cpu_model, None)
    got = run(dev_model, dev)
    torch.testing.assert_close(got, want, **tol)
    for p_dev, p_cpu in zip(dev_model.parameters(), cpu_model.parameters()):
        torch.testing.assert_close(p_dev.cpu(), p_cpu.detach(), **tol)
    assert met.counter_value("UncachedCompile") <= 2


def test_add_with_a_float_alpha_matches_eager(dev):
    a, b = torch.randn(5, 3), torch.randn(3)
    for alpha in (0.3, -1.0, 2):
        torch.testing.assert_close(torch.add(a.to(dev), b.to(dev), alpha=alpha).cpu(), torch.add(a, b, alpha=alpha))
        torch.testing.assert_close(torch.sub(a.to(dev), b.to(dev), alpha=alpha).cpu(), torch.sub(a, b, alpha=alpha))
    x = a.double().to(dev)
    x.add_(b.double().to(dev), alpha=0.7)
    torch.testing.assert_close(x.cpu(), a.double().add(b.double(), alpha=0.7))
    h = a.bfloat16().to(dev)
    torch.testing.assert_close(h.add(b.bfloat16().to(dev), alpha=0.3).cpu(), a.bfloat16().add(b.bfloat16(), alpha=0.3))
    # mixed dtypes: the product is taken in the promoted dtype, as eager does (rounded to bf16 it lost digits)
    g = torch.randn(1000).bfloat16()
    p = torch.randn(1000)
    torch.testing.assert_close(p.to(dev).add_(g.to(dev), alpha=-0.01).cpu(), p.clone().add_(g, alpha=-0.01))


def test_batchnorm_training_compiles_and_updates_running_stats(dev, recwarn):
    # torch's batch-norm decomposition calls `flatten` (a composite view): recorded as itself the step could not
    # compile and ran op by op on CPU
    torch.manual_seed(0)
    cpu_model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.BatchNorm1d(32), torch.nn.Linear(32, 4))
    dev_model = copy.deepcopy(cpu_model).to(dev)
    batches = [torch.randn(8, 16) for _ in range(3)]
    for x in batches:
        cpu_model.zero_grad()
        dev_model.zero_grad()
        cpu_model(x).sum().backward()
        dev_model(x.to(dev)).sum().backward()
        xm.mark_step()
    bn_cpu, bn_dev = cpu_model[1], dev_model[1]
    torch.testing.assert_close(bn_dev.running_mean.cpu(), bn_cpu.running_mean)
    torch.testing.assert_close(bn_dev.running_var.cpu(), bn_cpu.running_var)
    assert bn_dev.num_batches_tracked.cpu().item() == 3
    torch.testing.assert_close(dev_model[1].weight.grad.cpu(), cpu_model[1].weight.grad, rtol=1e-4, atol=1e-5)
    assert met.executed_fallback_ops() == []
    assert not [w for w in recwarn if "cannot compile" in str(w.message)]


def test_composite_ops_from_decompositions_stay_on_the_device(dev):
    # pad (max-pool's decomposition calls it) and log-sigmoid (BCE with logits) are composites of lowered ops
    x = torch.randn(2, 3, 5, 5)
    for mode in ("constant", "reflect", "replicate", "circular"):
        got = torch.nn.functional.pad(x.to(dev), (1, 2, 1, 1), mode=mode)
        torch.testing.assert_close(got.cpu(), torch.nn.functional.pad(x, (1, 2, 1, 1), mode=mode))
    pool = torch.nn.MaxPool2d(2, padding=1)
    xg = x.to(dev).requires_grad_()
    pool(xg).sum().backward()
    xc = x.clone().requires_grad_()
    pool(xc).sum().backward()
    torch.testing.assert_close(xg.grad.cpu(), xc.grad)
    logits, target = torch.randn(8, 5), torch.rand(8, 5)
    lg = logits.to(dev).requires_grad_()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(lg, target.to(dev))
    loss.backward()
    lc = logits.clone().requires_grad_()
    want = torch.nn.functional.binary_cross_entropy_with_logits(lc, target)
    want.backward()
    torch.testing.assert_close(loss.cpu(), want)
    torch.testing.assert_close(lg.grad.cpu(), lc.grad)
    assert met.executed_fallback_ops() == []


def test_dropout_training_draws_a_new_mask_each_step_in_one_cached_graph(dev):
    # the mask is drawn on CPU (eager's draw for a contiguous input) and sent as data: no graph cut at dropout, no
    # mask baked into the graph as a constant
    torch.manual_seed(0)
    cpu_model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Dropout(0.5), torch.nn.GELU(),
                                    torch.nn.Linear(32, 4))
    dev_model = copy.deepcopy(cpu_model).to(dev)
    batches = [(torch.randn(8, 16), torch.randn(8, 4)) for _ in range(6)]

    def run(model, d):
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        return train_losses(model, opt, batches, torch.nn.functional.mse_loss, d)
    torch.manual_seed(1)
    want = run(cpu_model, None)
    torch.manual_seed(1)
    got = run(dev_model, dev)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert met.counter_value("UncachedCompile") <= 2
    assert met.executed_fallback_ops() == []
    x = torch.randn(64, 64).to(dev)
    drop = torch.nn.Dropout(0.25)
    torch.manual_seed(3)
    a, b = drop(x).cpu(), drop(x).cpu()
    torch.manual_seed(3)
    assert torch.equal(drop(x).cpu(), a) and not torch.equal(a, b)
    kept = a != 0
    assert 0.6 < kept.float().mean() < 0.9
    torch.testing.assert_close(a[kept], x.cpu()[kept] / 0.75)


def test_random_factories_and_init_draw_like_eager_without_fallbacks(dev):
    torch.manual_seed(0)
    got = [torch.randn(3, 4, device=dev), torch.rand(5, device=dev), torch.randint(0, 9, (6,), device=dev),
           torch.randperm(7, device=dev)]
    w = torch.empty(8, 4, device=dev)
    torch.nn.init.xavier_uniform_(w)
    b = torch.zeros(8, device=dev).normal_(0, 0.02)
    m = torch.full((4, 4), 0.5, device=dev).bernoulli_(0.3)
    torch.manual_seed(0)
    want = [torch.randn(3, 4), torch.rand(5), torch.randint(0, 9, (6,)), torch.randperm(7)]
    want += [torch.nn.init.xavier_uniform_(torch.empty(8, 4)), torch.zeros(8).normal_(0, 0.02),
             torch.full((4, 4), 0.5).bernoulli_(0.3)]
    for g, e in zip(got + [w, b, m], want):
        assert torch.equal(g.cpu(), e)
    assert met.executed_fallback_ops() == []


@pytest.mark.parametrize("kwargs", [{"train": True}, {"train": None}])
def test_native_dropout_with_train_unset_draws_on_the_device(dev, kwargs):
    # `train=None`, which ATen reads as training, was taken for eval: a counted CPU fallback
    torch.manual_seed(3)
    want = torch.ops.aten.native_dropout(torch.ones(4, 5), 0.5, **kwargs)
    torch.manual_seed(3)
    got = torch.ops.aten.native_dropout(torch.ones(4, 5).to(dev), 0.5, **kwargs)
    assert torch.equal(got[0].cpu(), want[0]) and torch.equal(got[1].cpu(), want[1])
    assert met.executed_fallback_ops() == []


def test_draws_into_a_transposed_view_fill_memory_in_eagers_order(dev):
    # eager draws into a non-contiguous view in memory order: the device's draw (made on CPU) must lay the view out
    # the same way, or the same seed gives other numbers
    want = []
    torch.manual_seed(0)
    w = torch.zeros(6, 4)
    w.t().normal_()
    x = torch.ones(4, 6)
    want += [w, torch.nn.functional.dropout(x.t(), 0.5), torch.bernoulli(x.t(), 0.3)]
    torch.manual_seed(0)
    wd = torch.zeros(6, 4).to(dev)
    wd.t().normal_()
    xd = x.to(dev)
    got = [wd, torch.nn.functional.dropout(xd.t(), 0.5), torch.bernoulli(xd.t(), 0.3)]
    for g, e in zip(got, want):
        assert torch.equal(g.cpu(), e)


def test_tolist_numpy_and_torch_save_behave_as_for_an_xla_tensor(dev, tmp_path):
    x = torch.randn(3, 4)
    d = x.to(dev) * 2
    assert d.tolist() == (x * 2).tolist()
    # torch_xla's tensors are refused by numpy as any non-CPU tensor is (torch's TypeError and text)
    with pytest.raises(TypeError, match=r"can't convert neuron:0 device type tensor to numpy. Use Tensor.cpu\(\)"):
        d.numpy()
    with pytest.raises(TypeError, match="can't convert neuron:0 device type tensor to numpy"):
        __import__("numpy").asarray(d)
    model = torch.nn.Linear(4, 2).to(dev)
    torch.save({"t": d, "model": model.state_dict()}, tmp_path / "ck.pt")
    on_cpu = torch.load(tmp_path / "ck.pt", map_location="cpu")   # (weights_only, torch's default)
    assert on_cpu["t"].device.type == "cpu" and torch.equal(on_cpu["t"], x * 2)
    back = torch.load(tmp_path / "ck.pt")
    assert back["t"].device == dev and torch.equal(back["t"].cpu(), x * 2)
    cpu_model = torch.nn.Linear(4, 2)
    cpu_model.load_state_dict(on_cpu["model"])
    torch.testing.assert_close(cpu_model(x), model(x.to(dev)).cpu())


def test_a_pickled_device_parameter_stays_a_parameter(dev, tmp_path):
    # as torch pickles nn.Parameter: a whole model saved and loaded (weights_only=False) keeps its parameters
    model = torch.nn.Linear(4, 2).to(dev)
    torch.save(model, tmp_path / "model.pt")
    back = torch.load(tmp_path / "model.pt", weights_only=False)
    assert isinstance(back.weight, torch.nn.Parameter) and back.weight.requires_grad
    assert back.weight.device == dev and torch.equal(back.weight.cpu(), model.weight.cpu())
    p = torch.nn.Parameter(torch.ones(2).to(dev), requires_grad=False)
    torch.save(p, tmp_path / "p.pt")
    q = torch.load(tmp_path / "p.pt", map_location="cpu")   # (weights_only)
    assert isinstance(q, torch.nn.Parameter) and not q.requires_grad and q.device.type == "cpu"



def test_torch_load_onto_the_device_says_how_to_load(dev, tmp_path):
    # map_location naming the device cannot restore a storage there (torch's path failed on a missing
    # torch.neuron.device, and supplying one crashed the process): a RuntimeError that says what works
    torch.save({"w": torch.arange(4.0)}, tmp_path / "ck.pt")
    for where in (dev, "xla:0"):
        with pytest.raises(RuntimeError, match=r"load to CPU \(map_location='cpu'\) and move the tensors"):
            torch.load(tmp_path / "ck.pt", map_location=where)
    assert torch.equal(torch.load(tmp_path / "ck.pt", map_location="cpu")["w"].to(dev).cpu(), torch.arange(4.0))


class _MNIST(torch.nn.Module):   # torch_xla's test_train_mp_mnist.py model
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = torch.nn.Conv2d(1, 10, kernel_size=5), torch.nn.BatchNorm2d(10)
        self.conv2, self.bn2 = torch.nn.Conv2d(10, 20, kernel_size=5), torch.nn.BatchNorm2d(20)
        self.fc1, self.fc2 = torch.nn.Linear(320, 50), torch.nn.Linear(50, 10)

    def forward(self, x):
        F = torch.nn.functional
        x = self.bn1(F.relu(F.max_pool2d(self.conv1(x), 2)))
        x = self.bn2(F.relu(F.max_pool2d(self.conv2(x), 2)))
        return F.log_softmax(self.fc2(F.relu(self.fc1(torch.flatten(x, 1)))), dim=1)


def test_torch_xla_mnist_cnn_trains_in_one_compiled_step(dev, recwarn):
    # conv backward, max-pool backward (whose torch decomposition's scatter_add could not compile at this size)
    # and batch norm: the whole step used to run op by op on CPU
    torch.manual_seed(1)
    cpu_model = _MNIST()
    dev_model = copy.deepcopy(cpu_model).to(dev)
    batches = [(torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))) for _ in range(4)]

    def run(model, d):
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
        return train_losses(model, opt, batches, torch.nn.functional.nll_loss, d)
    torch.testing.assert_close(run(dev_model, dev), run(cpu_model, None), rtol=1e-4, atol=1e-5)
    assert met.counter_value("UncachedCompile") <= 2
    assert met.executed_fallback_ops() == []
    assert not [w for w in recwarn if "cannot compile" in str(w.message)]


def test_autocast_bf16_follows_torch_xla_policies_and_matches_cpu_autocast(dev):
    # the Neuron guide's replacement for XLA_USE_BF16; ops used to fail under autocast (no AutocastPrivateUse1
    # kernels, not even a fallthrough)
    torch.manual_seed(0)
    cpu_model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 4))
    dev_model = copy.deepcopy(cpu_model).to(dev)
    x, y = torch.randn(8, 16), torch.randint(0, 4, (8,))
    losses = []
    for model, d, device_type in ((cpu_model, None, "cpu"), (dev_model, dev, dev.type)):
        xd, yd = (x.to(d), y.to(d)) if d is not None else (x, y)
        with torch.autocast(device_type, dtype=torch.bfloat16):
            out = model(xd)
            loss = torch.nn.functional.cross_entropy(out, yd)
            assert out.dtype == torch.bfloat16 and loss.dtype == torch.float32   # linear low, losses fp32
            assert torch.cat([out, out.float()]).dtype == torch.float32          # widest
        loss.backward()
        losses.append(loss.detach().cpu())
    torch.testing.assert_close(losses[1], losses[0])
    for p_dev, p_cpu in zip(dev_model.parameters(), cpu_model.parameters()):
        assert p_dev.grad.dtype == torch.float32
        torch.testing.assert_close(p_dev.grad.cpu(), p_cpu.grad, rtol=1e-2, atol=1e-3)
    with torch.autocast(dev.type):   # bf16 by default, as on Neuron
        assert dev_model(x.to(dev)).dtype == torch.bfloat16
    assert met.executed_fallback_ops() == []


@pytest.mark.parametrize("workers", [0, 2])
def test_data_loader_with_pin_memory_and_workers_feeds_the_device(dev, workers):
    # pin_memory=True (copied from CUDA scripts) pinned for the current accelerator, this device, and raised
    from torch.utils.data import DataLoader, TensorDataset
    from torch_neuronx_emu.parallel_loader import MpDeviceLoader
    data = TensorDataset(torch.arange(32.0).reshape(16, 2), torch.arange(16))
    loader = DataLoader(data, batch_size=4, pin_memory=True, num_workers=workers)
    got = [(x.device, y.device, (x.sum() + y.sum()).item()) for x, y in MpDeviceLoader(loader, dev)]
    assert got == [(dev, dev, (x.sum() + y.sum()).item()) for x, y in DataLoader(data, batch_size=4)]


def test_data_assignment_and_module_dtype_conversion_on_the_device(dev):
    # `p.data = new` copied only the C++ metadata: the value stayed the old one. Module.to(dtype) of a device
    # model assigns each converted parameter that way (the Neuron guide's model.to(torch.bfloat16))
    p = torch.nn.Parameter(torch.ones(3).to(dev))
    p.data = p.data * 3
    assert torch.equal(p.cpu(), torch.full((3,), 3.0)) and torch.equal((p * 2).detach().cpu(), torch.full((3,), 6.0))
    torch.manual_seed(0)
    model, x = torch.nn.Linear(4, 3), torch.randn(2, 4)
    dev_model = copy.deepcopy(model).to(dev).to(torch.bfloat16)
    want = model.to(torch.bfloat16)(x.bfloat16())
    got = dev_model(x.to(dev).bfloat16())
    assert got.dtype == torch.bfloat16 and dev_model.weight.cpu().dtype == torch.bfloat16
    torch.testing.assert_close(got.cpu(), want)
    with pytest.raises(RuntimeError, match="incompatible tensor type"):
        p.data = torch.ones(3)


def test_assignment_through_an_index_after_full_dims_compiles(dev, recwarn):
    # x[:, idx] = v: the lowering takes index tensors on the leading dims only; the whole graph used to fail to
    # compile and run op by op on CPU
    x, i, j = torch.arange(24.0).view(2, 3, 4), torch.tensor([0, 2]), torch.tensor([1, 0])
    writes = [lambda t, d: t.__setitem__((slice(None), i.to(d)), -1.0),
              lambda t, d: t.__setitem__((slice(None), slice(None), i.to(d)), torch.ones(2, 3, 2).to(d)),
              lambda t, d: t.__setitem__((slice(None), i.to(d), j.to(d)), t[:, i.to(d), j.to(d)] + 5),
              lambda t, d: t.__setitem__((Ellipsis, torch.tensor([[1], [3]]).to(d)), 7.0),
              lambda t, d: torch.ops.aten.index_put_(t, [None, torch.tensor([1, 1]).to(d)],
                                                     torch.ones(2, 2, 4).to(d), True)]
    for write in writes:
        want, got = x.clone(), x.to(dev)
        write(want, "cpu")
        write(got, dev)
        assert torch.equal(got.cpu(), want)
    assert met.executed_fallback_ops() == []
    assert not [w for w in recwarn if "cannot compile" in str(w.message)]


def _hf_losses(model, batches, d):
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4)
    losses = []
    for batch in batches:
        if d is not None:
            batch = {k: v.to(d) for k, v in batch.items()}
        opt.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        if d is not None:
            xm.mark_step()
        losses.append(loss.detach())
    return torch.stack([l.cpu() for l in losses])


@pytest.mark.parametrize("name", ["bert-classification", "gpt2-lm"])
def test_hugging_face_fine_tuning_steps_match_cpu(dev, name):
    import transformers
    torch.manual_seed(0)
    if name == "bert-classification":   # dropout on, padded attention mask, labels
        model = transformers.BertForSequenceClassification(transformers.BertConfig(
            vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=32, num_labels=3))
        mask = (torch.arange(12) < 9).long().expand(4, 12)
        batches = [dict(input_ids=torch.randint(0, 100, (4, 12)), attention_mask=mask, labels=torch.randint(0, 3, (4,)))
                   for _ in range(3)]
    else:
        model = transformers.GPT2LMHeadModel(transformers.GPT2Config(
            vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=32, bos_token_id=0, eos_token_id=0))
        batches = [dict(input_ids=t, labels=t) for t in (torch.randint(0, 100, (2, 10)) for _ in range(3))]
    dev_model = copy.deepcopy(model).to(dev)
    if name == "gpt2-lm":
        # moving a model to an XLA device unties its tied weights (torch_xla too: Module.to makes new parameters);
        # HF's Trainer re-ties them on XLA, as here
        assert dev_model.lm_head.weight is not dev_model.transformer.wte.weight
        dev_model.tie_weights()
    model.train()
    dev_model.train()
    torch.manual_seed(1)
    want = _hf_losses(model, batches, None)
    torch.manual_seed(1)
    got = _hf_losses(dev_model, batches, dev)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert met.executed_fallback_ops() == []
