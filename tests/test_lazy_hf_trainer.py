"""transformers' Trainer runs unmodified under `neuron-emu run`: transformers and accelerate find torch_xla (our
aliases: find_spec, torch_xla.runtime, xla_multiprocessing, spmd, the collectives of one process), train on the lazy
device with their default fused AdamW and pinned DataLoader, and reach CPU eager's loss."""
import os
import subprocess
import sys

import pytest

pytest.importorskip("accelerate", reason="transformers' Trainer needs accelerate (requirements-dev.txt has it)")
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts", "hf_trainer_tiny.py")


def _run(args, cwd):
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = dict(l.split(" ", 1) for l in r.stdout.splitlines() if l.startswith(("device ", "train_loss ")))
    return out, r.stderr


def test_trainer_under_launcher_matches_cpu(tmp_path):
    want, _ = _run([sys.executable, SCRIPT], tmp_path)
    got, err = _run([sys.executable, "-m", "neuron_emu.cli", "run", "--no-monitor", SCRIPT], tmp_path)
    assert want["device"] == "cpu" and got["device"] == "neuron"
    assert abs(float(got["train_loss"]) - float(want["train_loss"])) < 1e-5 * float(want["train_loss"])
    assert "NeuronCore 0" in err   # the launcher's summary: steps ran on the emulated core
