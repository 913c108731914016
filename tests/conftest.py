import os
import warnings

import pytest
import torch

warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch")

# Every program the suite loads is proven by the dependency checker (csrc/dep_check.h): a missing
# dependency never changes results, only silently shortens the reported latency.
os.environ["NEMU_CHECK_DEPS"] = "1"

# The lazy device must exist before the process's first backward (autograd sizes its per-device queues then, and a
# later device aborts it), and some test files run a backward before any of them imports torch_neuronx_emu.
import torch_neuronx_emu  # noqa: E402,F401


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
