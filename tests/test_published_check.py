"""benchmarks/published_check.py: the published rows as transcribed, the conversion of each to one call on one
NeuronCore, and (slow) that the check's modelled latency is the one the public profile API reports."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import published_check as pc  # noqa: E402


@pytest.mark.parametrize("row", pc.ROWS, ids=lambda r: r.name)
def test_row_reads_as_whole_calls_in_flight(row):
    # Little's law on each transcribed (throughput, P50, batch): the calls in flight are a whole number of model copies
    # x workers. A mistyped figure breaks this. (One Inf1 row, distilbert-sst2 b5, is 19% off: its throughput is an
    # average, the P50 a median.)
    n = row.in_flight
    whole = round(n)
    assert whole in ((1, 2) if row.kind == "latency" else (2, 4)), (row.name, n)
    assert abs(n / whole - 1) < 0.2, (row.name, n)


@pytest.mark.parametrize("row", pc.ROWS, ids=lambda r: r.name)
def test_reference_is_one_call_on_one_core(row):
    per_core_calls = row.in_flight / (pc.INF2_XLARGE_CORES if round(row.in_flight) >= 2 else 1)
    if row.kind == "latency":  # one call in flight per core: the P50 is that call
        assert round(per_core_calls) == 1
        assert row.reference_ms == row.p50_ms
    else:  # k calls queued per core: the core spends P50 / k on each
        assert row.reference_ms == pytest.approx(row.p50_ms / per_core_calls, rel=0.02)
        assert row.reference_ms == pytest.approx(pc.INF2_XLARGE_CORES * row.batch / row.throughput * 1e3)


@pytest.mark.slow
def test_check_is_the_profile_api_latency():
    import torch_neuronx_emu

    row = next(r for r in pc.ROWS if r.name == "distilbert-base-uncased")
    res = pc.check(row)
    model, inputs = row.build(row.batch, row.seq)
    traced = torch_neuronx_emu.trace(model, inputs, compiler_args=["--auto-cast", "matmult"])
    report = torch_neuronx_emu.profile(traced, *inputs)
    assert res["modelled_ms"] == pytest.approx(report.latency_ms, rel=1e-6)
    assert res["error"] == pytest.approx(report.latency_ms / row.p50_ms - 1, rel=1e-6)
    line = pc.table_line(row, res)
    assert line.startswith("| distilbert-base-uncased | 1 | 128 | fp32, --auto-cast matmult (bf16) | P50 0.579 ms")
    assert f"{report.latency_ms:.3f} ms" in line
