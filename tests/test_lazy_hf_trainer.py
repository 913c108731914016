"""transformers' Trainer runs unmodified under `neuron-emu run`: transformers and accelerate find torch_xla (our
aliases: find_spec, torch_xla.runtime, xla_multiprocessing, spmd, the collectives of one process), train on the lazy
device with their default fused AdamW and pinned DataLoader, and reach CPU eager's loss."""
import os

import pytest

import script_runs

pytest.importorskip("accelerate", reason="transformers' Trainer needs accelerate (requirements-dev.txt has it)")
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts", "hf_trainer_tiny.py")


def _run(run, cwd):
    out, err = run(SCRIPT, cwd)
    return script_runs.fields(out, ("device ", "train_loss ")), err


def test_trainer_under_launcher_matches_cpu(tmp_path):
    want, _ = _run(script_runs.python, tmp_path)
    got, err = _run(script_runs.launched, tmp_path)
    assert want["device"] == "cpu" and got["device"] == "neuron"
    assert abs(float(got["train_loss"]) - float(want["train_loss"])) < 1e-5 * float(want["train_loss"])
    assert "NeuronCore 0" in err   # the launcher's summary: steps ran on the emulated core
