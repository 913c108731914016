"""Report.plot() and the Inf1-vs-Inf2 bars of examples/inf1_vs_inf2.py write real PNGs (needs matplotlib, the `plot`
extra, pinned in requirements-dev.txt). Oracles: the PNG is decoded by matplotlib's own reader (Pillow); the figure
size is the one plots.py asks for at matplotlib's default 100 dpi; the colours are matplotlib's default cycle
(tab:blue, tab:orange, ...) and the bars' instance-family colours."""
import importlib.util
import os

import numpy as np
import pytest
import torch

import torch_neuron_emu
import torch_neuronx_emu
from neuron_emu import zoo

matplotlib = pytest.importorskip("matplotlib")
from matplotlib import colors as mcolors  # noqa: E402
from matplotlib import image as mimage  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def reports():
    torch.manual_seed(0)
    model, inputs = zoo.mlp(in_features=256, hidden=(512,), out=64, batch=16)
    inf2 = torch_neuronx_emu.profile(torch_neuronx_emu.trace(model, inputs), *inputs)
    inf1 = torch_neuron_emu.profile(torch_neuron_emu.trace(model, inputs), *inputs)
    return inf1, inf2


def decode(path):
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    return mimage.imread(path)[..., :3]   # float RGB in [0, 1]


def pixels_of(img, color) -> int:
    rgb = np.array(mcolors.to_rgb(color))
    return int((np.abs(img - rgb).max(axis=-1) < 0.02).sum())


def test_utilization_plot_is_a_png_with_one_line_per_busy_engine(reports, tmp_path):
    r = reports[1]
    img = decode(r.plot(str(tmp_path / "u.png")))
    assert img.shape[:2] == (400, 1000)                  # figsize (10, 4) at 100 dpi
    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    busy = [n for n, e in r.engines.items() if e.busy_ms > 0]
    # plots.py draws the busy engines in order, so they take the cycle's first colours; the next colour is unused
    for c in cycle[:len(busy)]:
        assert pixels_of(img, c) > 50, c
    assert pixels_of(img, cycle[len(busy)]) == 0


def test_inf1_vs_inf2_bars(reports, tmp_path):
    spec = importlib.util.spec_from_file_location("inf1_vs_inf2", os.path.join(ROOT, "examples", "inf1_vs_inf2.py"))
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    inf1, inf2 = reports
    results = {("MLP", 16, 0): (inf1, inf2), ("MLP-no-inf1", 16, 0): ("RuntimeError: no Inf1 lowering", inf2)}
    img = decode(example.plot(results, str(tmp_path / "bars.png")))
    assert img.shape[:2] == (400, 1400)                  # figsize (14, 4)
    # three panels, each with one Inf1 bar (blue) and two Inf2 bars (orange); in each panel the bars' pixel heights
    # keep the ratio of the values they draw (shared zero baseline, linear axis)
    third = img.shape[1] // 3
    for k, key in enumerate(("latency_ms", "throughput_per_s", "cost_per_inference_usd")):
        panel = img[:, k * third:(k + 1) * third]
        h1, h2 = bar_height(panel, "tab:blue"), bar_height(panel, "tab:orange")
        ratio = getattr(inf1, key) / getattr(inf2, key)
        assert h1 > 0 and h2 > 0, key
        assert abs(h1 - ratio * h2) <= 2 + 2 * ratio, (key, h1, h2, ratio)


def bar_height(panel, color) -> int:
    """Pixel height of the tallest bar of `color` in one panel."""
    rgb = np.array(mcolors.to_rgb(color))
    mask = np.abs(panel - rgb).max(axis=-1) < 0.02
    return int(mask.sum(axis=0).max())
