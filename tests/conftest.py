import warnings

import pytest
import torch

warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
