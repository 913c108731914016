"""The seed's Inf1-vs-Inf2 table, modelled: BertLargeUncased (seq 128) and ElectraLargeDiscriminator (seq 256), batch 1
and 10, traced with torch_neuronx (Inf2, `--auto-cast matmult`, the default when the seed was measured) and torch_neuron
(Inf1, its defaults), profiled on one NeuronCore of inf2.xlarge / inf1.xlarge and printed beside the seed's measured
numbers with the relative error of each cell. Models are built from their configs (random weights: latency does not
depend on weight values). Writes the comparison plot when matplotlib is installed.

    PYTHONPATH=. python examples/inf1_vs_inf2.py [--plot inf1_vs_inf2.png] [--rows bert1,electra10,...]

Cost per inference is per element of the batch, as the seed's footnote says; the seed used 1 NeuronCore per call."""
from __future__ import annotations

import argparse
import sys
import time

import torch_neuron_emu
import torch_neuronx_emu
from neuron_emu import zoo

# The seed's table (blog post "AWS Inferentia2 builds on AWS Inferentia1 ...", measured with PyTorch 1.13.1):
# (model, batch, seq) -> latency ms (Inf1, Inf2), throughput/s (Inf1, Inf2), cost per inference USD (Inf1, Inf2)
SEED = {
    ("ElectraLargeDiscriminator", 1, 256): ((35.7, 8.31), (28.01, 120.34), (0.0000023, 0.0000018)),
    ("ElectraLargeDiscriminator", 10, 256): ((343.7, 72.9), (2.91, 13.72), (0.0000022, 0.0000015)),
    ("BertLargeUncased", 1, 128): ((28.2, 3.1), (35.46, 322.58), (0.0000018, 0.0000007)),
    ("BertLargeUncased", 10, 128): ((121.1, 23.6), (8.26, 42.37), (0.0000008, 0.0000005)),
}
ROWS = {"electra1": ("ElectraLargeDiscriminator", 1, 256), "electra10": ("ElectraLargeDiscriminator", 10, 256),
        "bert1": ("BertLargeUncased", 1, 128), "bert10": ("BertLargeUncased", 10, 128)}


def build(name: str, batch: int, seq: int):
    if name == "BertLargeUncased":
        return zoo.bert("large", seq=seq, batch=batch)
    return zoo.electra_large_discriminator(seq=seq, batch=batch)


def profile_pair(name: str, batch: int, seq: int):
    """(Inf1 report or the reason it could not be produced, Inf2 report)."""
    model, inputs = build(name, batch, seq)
    inf2 = torch_neuronx_emu.profile(
        torch_neuronx_emu.trace(model, inputs, compiler_args=["--auto-cast", "matmult"]), *inputs,
        instance_type="inf2.xlarge")
    try:
        inf1 = torch_neuron_emu.profile(torch_neuron_emu.trace(model, inputs), *inputs, instance_type="inf1.xlarge")
    except Exception as e:  # the Inf1 lowering of some ops is still missing (see the README's status)
        inf1 = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
    return inf1, inf2


def _err(got, ref):
    return f"{(got / ref - 1) * 100:+.0f}%"


def table(results) -> str:
    head = ("| Model | Batch | Seq | Latency Inf1 ms (seed, err) | Latency Inf2 ms (seed, err) | Inf2 over Inf1 (seed, err) "
            "| Throughput Inf1 calls/s (seed) | Throughput Inf2 calls/s (seed) | Cost Inf1 USD (seed) | Cost Inf2 USD (seed) |")
    # the seed's throughput counts calls (1000 / latency ms, whatever the batch); its cost is per batch element
    lines = [head, "|" + "---|" * 10]
    for (name, batch, seq), (inf1, inf2) in results.items():
        (l1, l2), (t1, t2), (c1, c2) = SEED[(name, batch, seq)]
        cell2 = f"{inf2.latency_ms:.2f} ({l2}, {_err(inf2.latency_ms, l2)})"
        if isinstance(inf1, str):
            cell1 = f"n/a ({l1}): {inf1}"
            ratio = f"n/a ({l1 / l2:.2f})"
            tp1 = f"n/a ({t1})"
            cost1 = f"n/a ({c1:.2g})"
        else:
            cell1 = f"{inf1.latency_ms:.2f} ({l1}, {_err(inf1.latency_ms, l1)})"
            r = inf1.latency_ms / inf2.latency_ms
            ratio = f"{r:.2f} ({l1 / l2:.2f}, {_err(r, l1 / l2)})"
            tp1 = f"{inf1.throughput_per_s / batch:.2f} ({t1})"
            cost1 = f"{inf1.cost_per_inference_usd:.2g} ({c1:.2g})"
        lines.append(f"| {name} | {batch} | {seq} | {cell1} | {cell2} | {ratio} | {tp1} | "
                     f"{inf2.throughput_per_s / batch:.2f} ({t2}) | {cost1} | {inf2.cost_per_inference_usd:.2g} ({c2:.2g}) |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plot", help="write the Inf1/Inf2 latency, throughput and cost bars here (PNG)")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {', '.join(ROWS)}")
    args = ap.parse_args(argv)
    results = {}
    for key in args.rows.split(","):
        t0 = time.time()
        results[ROWS[key]] = profile_pair(*ROWS[key])
        print(f"[{key}: {time.time() - t0:.0f} s]", file=sys.stderr, flush=True)
    print(table(results))
    if args.plot:
        print(f"plot: {plot(results, args.plot)}", file=sys.stderr)
    return 0


def plot(results, path: str) -> str:
    """The Inf1-vs-Inf2 latency, throughput and cost bars (PNG) of `results` ({(name, batch, seq): (inf1, inf2)});
    an Inf1 cell that could not be produced (a reason string) has no bar."""
    from neuron_emu.plots import plot_comparison
    rows = []
    for (name, batch, _), reps in results.items():
        for rep in reps:
            if not isinstance(rep, str):
                rows.append(dict(label=f"{name[:5]} b{batch} {rep.instance_type[:4]}", latency_ms=rep.latency_ms,
                                 throughput_per_s=rep.throughput_per_s, instance_type=rep.instance_type,
                                 cost_per_inference_usd=rep.cost_per_inference_usd))
    return plot_comparison(rows, path)


if __name__ == "__main__":
    sys.exit(main())
