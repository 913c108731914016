"""Scripts written the way the SDK's tutorials and accelerate's docs write them run unmodified under `neuron-emu run`
and print what they print in CPU eager; what the emulator cannot do (several processes) is refused by name."""
import json
import os
import subprocess
import sys

import pytest

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts")


def _run(args, cwd, env=None, rc=0):
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600,
                       env=None if env is None else {**os.environ, **env})
    assert r.returncode == rc, r.stdout[-3000:] + r.stderr[-3000:]
    return dict(l.split(" ", 1) for l in r.stdout.splitlines() if " " in l), r.stderr


def _launch(script, cwd, *opts, env=None, rc=0):
    return _run([sys.executable, "-m", "neuron_emu.cli", "run", "--no-monitor", *opts, script], cwd, env, rc)


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
