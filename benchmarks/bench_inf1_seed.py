"""The seed's Inf1 table: BERT-large (seq 128) and ELECTRA-large-discriminator (seq 256) at batch 1 and 10 through
torch_neuron_emu.trace with its defaults (partitioner, --fast-math all). Prints the modelled latency of the Neuron
subgraphs (NeuronCore-v1 cost model) and the emulator's wall time. Slow (minutes per configuration).

    PYTHONPATH=. python benchmarks/bench_inf1_seed.py [bert_large:128:1 ...]"""
import sys
import time
import warnings

import torch

import torch_neuron_emu
from torch_neuronx_emu.experimental.placement import artifacts
from neuron_emu.runtime.placement import model_for

sys.path.insert(0, "tests")
from test_inf1_models import bert, electra  # noqa: E402  (configs identical to the real models)

CONFIGS = ["bert_large:128:1", "bert_large:128:10", "electra_large:256:1", "electra_large:256:10"]


def main(configs):
    for cfg in configs:
        name, seq, batch = cfg.split(":")
        build = bert if name == "bert_large" else electra
        torch.manual_seed(0)
        model, inputs = build("large", int(seq), int(batch))
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch_neuron_emu.trace(model, inputs, strict=False)
        t_trace = time.perf_counter() - t0
        t0 = time.perf_counter()
        traced(*inputs)
        t_run = time.perf_counter() - t0
        lat = 0.0
        for blob in artifacts(traced):
            t = model_for(blob).timeline()
            lat += float(t["end_ns"].max(initial=0.0)) * 1e-9
        print(f"{name} seq {seq} batch {batch}: modelled Neuron latency {lat * 1e3:.2f} ms "
              f"({int(batch) / lat:.1f} inferences/s on one NeuronCore-v1); trace {t_trace:.0f} s, run {t_run:.1f} s",
              flush=True)
        del traced, model


if __name__ == "__main__":
    main(sys.argv[1:] or CONFIGS)
