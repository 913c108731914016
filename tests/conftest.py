import os
import warnings

import pytest
import torch

warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch")

# Every program the suite loads is proven by the dependency checker (csrc/dep_check.h): a missing
# dependency never changes results, only silently shortens the reported latency.
os.environ["NEMU_CHECK_DEPS"] = "1"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
