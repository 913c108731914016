"""torch_neuronx.PartitionerConfig and trace(..., partitioner_config=...) (neuron-api.md 2.7, the torch-neuronx graph
partitioner app note): unsupported ops (aten::sort) and ops_to_partition run on CPU between Neuron subgraphs, the
documented log lines, limits and ValueErrors; the result saves and loads in a fresh process.

Oracles: eager PyTorch for numerics (fp32 through the emulated engines: same products, different summation order,
tolerance as in test_trace); torch_neuronx.analyze for the support figures; the app note for log lines and the
max-subgraph-count error text."""
import contextlib
import logging
import os
import re
import subprocess
import sys

import pytest
import torch

import torch_neuronx_emu as tnx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = dict(rtol=1e-5, atol=1e-5)


class Sandwich(torch.nn.Module):
    """The app note's "Specifying requirements" MLP (smaller): torch.sort between the first and second linear."""

    def __init__(self, sort_last=False):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = torch.nn.Linear(32, 48), torch.nn.Linear(48, 24), torch.nn.Linear(24, 10)
        self.sort_last = sort_last

    def forward(self, x):
        r1 = torch.relu(self.fc1(x))
        if not self.sort_last:
            r1, _ = torch.sort(r1)
        out = torch.log_softmax(self.fc3(torch.relu(self.fc2(r1))), dim=1)
        if self.sort_last:  # the app note's "Default Usage" MLP: sorted log-softmax output
            out, _ = torch.sort(out)
        return out


def _kinds(traced):
    return [n.kind() for n in traced.graph.nodes() if not n.kind().startswith("prim::")]


def _trace(model, x, caplog=None, **cfg):
    with caplog.at_level(logging.INFO, logger="Neuron") if caplog else contextlib.nullcontext():
        return tnx.trace(model, x, partitioner_config=tnx.PartitionerConfig(**cfg))


def test_sort_in_the_middle_traces_saves_and_loads_in_a_fresh_process(tmp_path, caplog):
    model, x = Sandwich().eval(), torch.randn(6, 32)
    traced = _trace(model, x, caplog)
    # the TorchScript graph holds both Neuron subgraphs and the CPU aten:: node between them
    assert _kinds(traced) == ["neuron::forward_v2", "aten::sort", "neuron::forward_v2"]
    torch.testing.assert_close(traced(x), model(x), **TOL)
    log = caplog.text
    report = tnx.analyze(model, x)
    n_sup = sum(report["supported_operators"].values())
    n_all = n_sup + len(report["unsupported_operators"])
    assert f"{report['support_percentage']} of arithmetic operations ({n_sup} of {n_all}) are supported" in log
    assert "The following operations are currently not supported:" in log
    assert re.search(r"aten::sort, .*test_partitioner_config\.py\(\d+\): forward", log)  # op, user's stack
    assert "Num Partitions: 3" in log
    assert "Creating Partition #1 for device: Device.NEURON" in log
    assert "Creating Partition #2 for device: Device.CPU" in log
    assert "Creating Partition #3 for device: Device.NEURON" in log
    assert "aten::sort:1" in log
    # operators counted as analyze counts them (TorchScript nodes): relu+linear | sort | linear x2, relu, log_softmax
    parts = log.split("Creating Partition #")[1:]
    assert "aten::linear:1" in parts[0] and "aten::relu:1" in parts[0] and "aten::addmm" not in log
    assert "aten::linear:2" in parts[2] and "aten::log_softmax:1" in parts[2] and "aten::relu:1" in parts[2]

    path, x2 = str(tmp_path / "part.pt"), torch.randn(6, 32)
    torch.jit.save(traced, path)
    torch.save({"x": x2, "ref": model(x2).detach()}, str(tmp_path / "io.pt"))
    script = f"""
import torch, torch_neuronx_emu
m = torch.jit.load({path!r})
io = torch.load({str(tmp_path / "io.pt")!r})
kinds = [n.kind() for n in m.graph.nodes() if not n.kind().startswith("prim::")]
assert kinds == ["neuron::forward_v2", "aten::sort", "neuron::forward_v2"], kinds
torch.testing.assert_close(m(io["x"]), io["ref"], rtol=1e-5, atol=1e-5)
print("OK")
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-3000:]


def test_sort_at_the_end_makes_two_partitions(caplog):
    """The app note's "Default Usage" example and its log figures."""
    model, x = Sandwich(sort_last=True).eval(), torch.randn(4, 32)
    traced = _trace(model, x, caplog)
    assert _kinds(traced) == ["neuron::forward_v2", "aten::sort"]
    assert "Num Partitions: 2" in caplog.text
    assert "85.71% of arithmetic operations (6 of 7) are supported" in caplog.text
    neuron_part = caplog.text[caplog.text.index("Partition #1"):caplog.text.index("Partition #2")]
    assert "aten::linear:3" in neuron_part and "aten::relu:2" in neuron_part
    torch.testing.assert_close(traced(x), model(x), **TOL)


def test_ops_to_partition_moves_a_supported_op_to_cpu(caplog):
    """The app note's third example: log_softmax forced to CPU joins sort in the CPU partition, and is still
    reported as supported."""
    model, x = Sandwich(sort_last=True).eval(), torch.randn(4, 32)
    traced = _trace(model, x, caplog, ops_to_partition={"aten::log_softmax"}, model_support_percentage_threshold=0.8)
    assert _kinds(traced) == ["neuron::forward_v2", "aten::_log_softmax", "aten::sort"]
    log = caplog.text
    supported_part = log[log.index("currently supported:"):log.index("currently not supported:")]
    assert "aten::log_softmax" in supported_part
    cpu_part = log[log.index("Creating Partition #2 for device: Device.CPU"):]
    assert "aten::log_softmax:1" in cpu_part and "aten::sort:1" in cpu_part
    torch.testing.assert_close(traced(x), model(x), **TOL)


def test_ops_to_partition_matches_the_torchscript_operator(caplog):
    """aten::linear (a TorchScript kind; the dispatcher runs aten::t and aten::addmm for it) moves every linear
    layer to CPU."""
    model, x = Sandwich(sort_last=True).eval(), torch.randn(4, 32)
    traced = _trace(model, x, caplog, ops_to_partition={"aten::linear"})
    # (the linears' weight transposes are folded): relu, relu, log_softmax each a Neuron subgraph between them
    assert _kinds(traced) == ["aten::addmm", "neuron::forward_v2"] * 3 + ["aten::sort"]
    assert "Creating Partition #1 for device: Device.CPU" in caplog.text
    torch.testing.assert_close(traced(x), model(x), **TOL)


def test_max_subgraph_count():
    model, x = Sandwich().eval(), torch.randn(4, 32)
    with pytest.raises(ValueError) as e:
        _trace(model, x, max_subgraph_count=2)
    assert str(e.value) == ("The partitioner has found 3 subgraphs which exceeds the specified max subgraph count "
                            "of 2.")  # the app note's text
    torch.testing.assert_close(_trace(model, x, max_subgraph_count=3)(x), model(x), **TOL)


def test_min_subgraph_size():
    model, x = Sandwich().eval(), torch.randn(4, 32)
    with pytest.raises(ValueError, match=r"Device\.CPU.*aten::sort.*of size 1 which is smaller than the specified "
                                         r"min subgraph size of 2"):
        _trace(model, x, min_subgraph_size=2)
    torch.testing.assert_close(_trace(model, x, min_subgraph_size=1)(x), model(x), **TOL)


def test_model_support_percentage_threshold():
    model, x = Sandwich().eval(), torch.randn(4, 32)
    pct = tnx.analyze(model, x)["support_percentage"]    # 9 of 10 operators
    with pytest.raises(ValueError, match=rf"{pct[:-1]}% supported operators .* below the specified model support "
                                         r"percentage threshold of 95\.00%"):
        _trace(model, x, model_support_percentage_threshold=0.95)
    _trace(model, x, model_support_percentage_threshold=float(pct[:-1]) / 100)  # exactly at the threshold: ok


def test_analyze_parameters_ignore_ops_and_write_the_report(tmp_path, caplog):
    model, x = Sandwich().eval(), torch.randn(4, 32)
    wd = str(tmp_path / "an")
    traced = _trace(model, x, caplog, model_support_percentage_threshold=1.0,
                    analyze_parameters={"compiler_workdir": wd, "additional_ignored_ops": {"aten::sort"}})
    assert "100.00% of arithmetic operations" in caplog.text
    assert os.path.isfile(os.path.join(wd, "analyze.json"))
    assert _kinds(traced) == ["neuron::forward_v2", "aten::sort", "neuron::forward_v2"]  # placement unchanged


def test_trace_compiler_args_and_workdir_reach_every_subgraph(tmp_path):
    model, x = Sandwich().eval(), torch.randn(4, 32)
    wd = str(tmp_path / "wd")
    traced = tnx.trace(model, x, compiler_workdir=wd, compiler_args="--auto-cast none",
                       partitioner_config=tnx.PartitionerConfig())
    for k in range(2):
        with open(os.path.join(wd, f"subgraph_{k}", "command.txt")) as f:
            assert "--auto-cast none" in f.read()
        assert os.path.isfile(os.path.join(wd, f"subgraph_{k}", "graph.neff"))
    torch.testing.assert_close(traced(x), model(x), **TOL)
    # explicit trace_kwargs replace trace's own
    wd2 = str(tmp_path / "wd2")
    tnx.trace(model, x, compiler_workdir=wd2, partitioner_config=tnx.PartitionerConfig(trace_kwargs={}))
    assert not os.path.exists(wd2)


def test_fully_supported_model_is_one_neuron_op():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.GELU()).eval()
    x = torch.randn(3, 8)
    traced = _trace(model, x)
    assert _kinds(traced) == ["neuron::forward_v2"]
    torch.testing.assert_close(traced(x), model(x), **TOL)


def test_defaults_and_argument_errors():
    c = tnx.PartitionerConfig()
    assert (c.trace_kwargs, c.model_support_percentage_threshold, c.min_subgraph_size, c.max_subgraph_count,
            c.ops_to_partition, c.analyze_parameters) == (None, 0.5, -1, -1, set(), {})
    with pytest.raises(TypeError):
        tnx.PartitionerConfig(None)  # keyword-only
    with pytest.raises(ValueError, match="model_support_percentage_threshold"):
        tnx.PartitionerConfig(model_support_percentage_threshold=50)
    with pytest.raises(ValueError, match="min_subgraph_size"):
        tnx.PartitionerConfig(min_subgraph_size=0)
    with pytest.raises(ValueError, match="max_subgraph_count"):
        tnx.PartitionerConfig(max_subgraph_count=-2)
    with pytest.raises(ValueError, match=r"ops_to_partition: \['sort'\]"):
        tnx.PartitionerConfig(ops_to_partition={"sort"})
    with pytest.raises(ValueError, match=r"analyze_parameters: \['cleanup'\]"):
        tnx.PartitionerConfig(analyze_parameters={"cleanup": True})
    with pytest.raises(ValueError, match=r"trace_kwargs: \['cpu_backend'\]"):
        tnx.PartitionerConfig(trace_kwargs={"cpu_backend": True})
    with pytest.raises(TypeError, match="partitioner_config must be a torch_neuronx.PartitionerConfig, got dict"):
        tnx.trace(Sandwich().eval(), torch.randn(2, 32), partitioner_config={})


def test_an_operator_configuration_the_compiler_refuses_runs_on_cpu(caplog):
    """index_put compiles, but not with a boolean mask and several values (their count depends on the mask:
    lowering/scatter.py): the partitioner places that node on CPU, as the SDK's per-operator query of the compiler
    would, and warns naming it."""
    class M(torch.nn.Module):
        def forward(self, x, mask, vals):
            return torch.index_put(torch.tanh(x), (mask,), vals * 3) * 2

    model = M()
    x = (torch.randn(8), torch.tensor([True, False, True, False, False, True, True, False]), torch.randn(4))
    traced = _trace(model, x, caplog)
    assert _kinds(traced) == ["neuron::forward_v2", "aten::index_put", "neuron::forward_v2"]
    assert "neuronx-cc cannot compile aten::index_put in this configuration" in caplog.text
    torch.testing.assert_close(traced(*x), model(*x))


def test_aliases_and_separate_weights_with_a_partitioner_config_are_accepted_without_effect():
    """As the SDK's trace (SRC torch_neuronx/xla_impl/trace.py) hands only the config to torch_neuronx.partition:
    input_output_aliases and inline_weights_to_neff=False are allowed with it and change nothing (a warning says
    so): the result equals the plain partitioned trace, the aliased input is not written, weights stay inlined."""
    model, x = Sandwich().eval(), torch.randn(6, 32)
    plain = _trace(model, x)
    x0 = x.clone()
    with pytest.warns(UserWarning, match=r"input_output_aliases and inline_weights_to_neff=False have no effect with "
                                         r"partitioner_config"):
        traced = tnx.trace(model, x, input_output_aliases={x: 0}, inline_weights_to_neff=False,
                           partitioner_config=tnx.PartitionerConfig())
    assert _kinds(traced) == _kinds(plain)
    assert torch.equal(traced(x), plain(x)) and torch.equal(x, x0)
    with pytest.warns(UserWarning, match="replace_weights has no effect"):
        tnx.replace_weights(traced, model)
