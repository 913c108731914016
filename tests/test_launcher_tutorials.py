"""Scripts written the way the SDK's tutorials and accelerate's docs write them run unmodified under `neuron-emu run`
and print what they print in CPU eager; what the emulator cannot do (several processes) is refused by name."""
import json
import os
import sys

import numpy as np
import pytest

import script_runs

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts")


def _run(args, cwd, env=None, rc=0):
    out, err = script_runs.run(args, cwd, env, rc)
    return script_runs.fields(out), err


def _launch(script, cwd, *opts, env=None, rc=0):
    return _run([*script_runs.LAUNCHER, *opts, script], cwd, env, rc)


def test_accelerate_loop_under_launcher_matches_cpu(tmp_path):
    pytest.importorskip("accelerate")
    script = os.path.join(SCRIPTS, "accelerate_loop.py")
    (tmp_path / "cpu").mkdir(), (tmp_path / "dev").mkdir()
    want, _ = _run([sys.executable, script], tmp_path / "cpu")
    got, _ = _launch(script, tmp_path / "dev")
    assert want["device"] == "cpu" and got["device"] == "neuron"
    w, g = [float(x) for x in want["losses"].split()], [float(x) for x in got["losses"].split()]
    assert g == pytest.approx(w, rel=1e-5)
    assert want["reloaded"] == got["reloaded"] == "True"       # load_state of safetensors from the device
    assert float(got["weight_sum"]) == pytest.approx(float(want["weight_sum"]), abs=1e-5)
    assert os.listdir(tmp_path / "dev" / "saved") == os.listdir(tmp_path / "cpu" / "saved") == ["model.safetensors"]


def test_multi_process_launch_is_refused(tmp_path):
    (tmp_path / "s.py").write_text("print('ran')\n")
    out, err = _launch("s.py", tmp_path, env={"WORLD_SIZE": "2", "RANK": "0"}, rc=2)
    assert "ran" not in out and "WORLD_SIZE=2" in err and "not emulated" in err and "Traceback" not in err


def test_report_describes_a_model_released_by_the_script_exit(tmp_path):
    # the model lives only in the script's globals and the script ends with sys.exit: the report still has it
    (tmp_path / "s.py").write_text(
        "import sys, torch, torch_neuron\n"
        "m = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU()).eval()\n"
        "torch.neuron.trace(m, torch.randn(2, 8)).save('m.pt')\n"
        "torch.jit.load('m.pt')(torch.randn(2, 8))\n"
        "loaded = torch.jit.load('m.pt')\n"
        "loaded(torch.randn(2, 8))\n"
        "sys.exit(0)\n")
    _launch("s.py", tmp_path, "--report", "r.json", "--perfetto", "t.json")
    rep = json.load(open(tmp_path / "r.json"))
    assert rep["last_model"] is not None and rep["last_model"]["latency_ms"] > 0
    assert json.load(open(tmp_path / "t.json"))["traceEvents"]


@pytest.mark.slow
def test_trainer_eval_checkpoints_resume_predict_bf16(tmp_path):
    pytest.importorskip("accelerate")
    script = os.path.join(SCRIPTS, "hf_trainer_full.py")
    runs = {}
    for name, argv, launched in (("cpu", [], False), ("dev", [], True), ("cpu_bf16", ["--bf16", "--cpu"], False),
                                 ("dev_bf16", ["--bf16"], True)):
        (tmp_path / name).mkdir()
        cmd = [*script_runs.LAUNCHER, script] if launched else [sys.executable, script]
        runs[name], _ = _run(cmd + argv, tmp_path / name)
    num = lambda r, k: [float(v) for v in r[k].split()]
    cpu, dev, cpu16, dev16 = runs["cpu"], runs["dev"], runs["cpu_bf16"], runs["dev_bf16"]
    assert cpu["device"] == "cpu" and dev["device"] == dev16["device"] == "neuron"
    for k in ("train_loss", "eval_loss", "resumed_eval_loss", "predictions"):
        assert num(dev, k) == pytest.approx(num(cpu, k), rel=1e-5, abs=1e-6), k
    assert dev["eval_accuracy"] == cpu["eval_accuracy"] and dev["resumed_step"] == cpu["resumed_step"] == "9"
    # bf16=True autocasts on the device as on CPU: the bf16 runs agree with each other far better than with fp32
    for k in ("eval_loss", "predictions"):
        a, b, ref = np.array(num(dev16, k)), np.array(num(cpu16, k)), np.array(num(cpu, k))
        assert np.abs(a - b).max() < 0.25 * np.abs(b - ref).max(), k


@pytest.mark.slow
def test_generate_on_the_device_matches_cpu_and_reuses_graphs(tmp_path):
    # a fresh compile cache: the counts are this run's compilations
    out, _ = _launch(os.path.join(SCRIPTS, "hf_generate.py"), tmp_path,
                     env={"NEURON_COMPILE_CACHE_URL": str(tmp_path / "cache")})
    for name in ("gpt2", "t5"):
        _, same, _, new, _, first, second = out[name].split()
        assert same == "True", out[name]
        # the KV cache grows a token per step: a graph or a few per token (transformers' XLA branch syncs per
        # step), none for the same call again
        assert 1 <= int(first) <= 3 * int(new) and int(second) == 0, out[name]


def test_inference_tutorials_under_launcher(tmp_path):
    out, _ = _launch(os.path.join(SCRIPTS, "neuron_inference_tutorial.py"), tmp_path)
    for name in ("bert", "roberta", "t5_encoder"):
        for kind in ("tuple", "dict"):
            typ, traced, loaded = out[f"{name}_{kind}"].split()
            assert typ == kind and float(traced) < 1e-5 and float(loaded) < 1e-5, (name, kind)
    # GPT-2's dict holds a KV cache, which a TorchScript dict cannot: its values as a tuple (architecture.md)
    for name, typ in (("vit_dict", "dict"), ("gpt2_dict", "tuple")):
        t, traced, loaded = out[name].split()
        assert t == typ and float(traced) < 1e-5 and float(loaded) < 1e-5, name
    assert float(out["data_parallel"]) < 1e-5 and float(out["dynamic_batch"]) < 1e-5
    assert float(out["inf1_bert"]) < 1e-3        # neuron-cc's default fast-math casts matmuls to bf16
    same_labels, score_diff = out["pipeline"].split()
    assert same_labels == "True" and float(score_diff) < 1e-5
