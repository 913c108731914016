"""A script in the Neuron MNIST tutorial's style runs unmodified under `neuron-emu run` (torch_xla imports resolve to
the lazy device, `device = 'xla'` names it) and prints what the same script prints in CPU eager."""
import os

import script_runs

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts", "xla_mnist_style.py")
# the script's device lines, and what they are in its CPU eager twin
TO_CPU = [("device = 'xla'", "device = 'cpu'"), ("device = xm.xla_device()", "device = 'cpu'"),
          ("xm.mark_step()", "pass"), ("xm.save(", "torch.save("),
          ("import torch_xla.core.xla_model as xm", "")]


def _run(run, script, cwd):
    out, _ = run(script, cwd, timeout=300)
    return [l for l in out.splitlines() if l.startswith(("Final loss", "Accuracy"))]


def test_tutorial_style_script_matches_cpu_eager(tmp_path):
    src = open(SCRIPT).read()
    for a, b in TO_CPU:
        assert a in src, a
        src = src.replace(a, b)
    (tmp_path / "cpu.py").write_text(src)
    want = _run(script_runs.python, "cpu.py", tmp_path)
    got = _run(script_runs.launched, SCRIPT, tmp_path)
    assert len(want) == 2 and got == want
    assert os.path.exists(tmp_path / "checkpoints" / "checkpoint.pt")
