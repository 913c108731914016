"""Check the cost model against AWS's published inference measurements, none of which was used to build it.

Each row is one row of the Neuron SDK's performance tables (aws-neuron/aws-neuron-sdk at commit 81ce03ae,
about-neuron/benchmarks/{inf2,inf1}/*.csv; the page and file of each row are in docs/cost-model.md), rebuilt offline
from its config (random weights: the timeline depends on shapes only) with the published batch size, sequence length
and cast setting, on one NeuronCore. Inf2: `--auto-cast matmult` (bf16), the rows' "Matmult-BF16"; the modelled
latency is the loaded program's timeline (device time plus host<->device transfer), benchmarks/seed_table.py's path.
Inf1: torch_neuron_emu.trace with its defaults and torch_neuron_emu.profile (the Neuron subgraphs; the partitioner's
CPU parts, e.g. the embeddings, are not in it).

What a published number means (neuronperf: "Latency: time to execute a single model(input)",
archive/neuronperf/neuronperf_terminology.rst; it runs n_models copies, one per NeuronCore, with workers_per_model
threads each):
- "latency" rows (Real Time): throughput = copies x batch / P50 with one worker per copy, so one call is in flight per
  NeuronCore and its P50 is one call on one core: compared as is.
- "throughput" rows (Batch, Inf2): several calls in flight per core wait for each other, so the P50 includes queueing.
  One core's time per call is cores x batch / throughput, with both NeuronCores of the inf2.xlarge running a copy
  (neuronperf's default n_models = [1, MAX]; the published row is the best): that is compared.

Usage: python benchmarks/published_check.py [row-name ...]   (names as printed; default: every row; a few minutes)"""
import os
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seed_table import modelled  # noqa: E402  (the seed table's path: capture, compile, load, read the timeline)

INF2_XLARGE_CORES = 2
INF2_CAST = "fp32, --auto-cast matmult (bf16)"
INF1_CAST = "fp32, neuron-cc defaults (--fast-math all)"


@dataclass(frozen=True)
class Row:
    name: str
    build: Callable            # (batch, seq) -> (model, inputs)
    batch: int
    seq: Optional[int]         # None: 224x224 images
    p50_ms: float              # published P50 latency
    throughput: float          # published inferences per second
    kind: str                  # "latency" (Real Time) or "throughput" (Batch)
    csv: str                   # file under about-neuron/benchmarks/
    version: str               # Neuron SDK release of the measurement
    generation: int = 2        # NeuronCore-v2 (Inf2) or v1 (Inf1)

    @property
    def cast(self) -> str:
        return INF2_CAST if self.generation == 2 else INF1_CAST

    @property
    def in_flight(self) -> float:
        """Calls in flight over the instance, from Little's law on the published pair (throughput x P50 / batch)."""
        return self.throughput * self.p50_ms * 1e-3 / self.batch

    @property
    def reference_ms(self) -> float:
        """One call's time on one NeuronCore: the P50 (latency row) or cores x batch / throughput (throughput row)."""
        if self.kind == "latency":
            return self.p50_ms
        return INF2_XLARGE_CORES * self.batch / self.throughput * 1e3


def _ids(batch, seq):  # the published script's inputs: input_ids and attention_mask
    return (torch.zeros(batch, seq, dtype=torch.int), torch.zeros(batch, seq, dtype=torch.int))


def _hf(model_cls, config_cls, **cfg):
    """A transformers model from its hub config's values (random weights)."""
    def build(batch, seq):
        import transformers
        torch.manual_seed(0)
        config = getattr(transformers, config_cls)(attn_implementation="eager", **cfg)
        return getattr(transformers, model_cls)(config).eval(), _ids(batch, seq)
    return build


def _vit(batch, seq):  # google/vit-base-patch16-224 as the benchmark script loads it: ViTForImageClassification
    import transformers
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(image_size=224, patch_size=16, num_labels=1000, attn_implementation="eager", **BASE)
    return transformers.ViTForImageClassification(cfg).eval(), (torch.randn(batch, 3, 224, 224),)


def _resnet(block, depths):  # torchvision's ResNets, as neuron_emu.zoo writes them
    def build(batch, seq):
        from neuron_emu import zoo
        torch.manual_seed(0)
        return zoo.ResNet(getattr(zoo, block), depths).eval(), (torch.randn(batch, 3, 224, 224),)
    return build


BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
ROBERTA = dict(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1)
DISTIL = dict(vocab_size=30522, dim=768, n_layers=6, n_heads=12, hidden_dim=3072)
# Inf2: AutoModel (inf2_benchmark.py)
BERT_BASE = _hf("BertModel", "BertConfig", vocab_size=30522, **BASE)
BERT_LARGE = _hf("BertModel", "BertConfig", vocab_size=30522, **LARGE)
ROBERTA_BASE = _hf("RobertaModel", "RobertaConfig", **ROBERTA, **BASE)
ROBERTA_LARGE = _hf("RobertaModel", "RobertaConfig", **ROBERTA, **LARGE)
DISTILBERT = _hf("DistilBertModel", "DistilBertConfig", **DISTIL)
ALBERT_BASE = _hf("AlbertModel", "AlbertConfig", vocab_size=30000, embedding_size=128, hidden_act="gelu_new", **BASE)
ELECTRA_BASE = _hf("ElectraModel", "ElectraConfig", vocab_size=30522, embedding_size=768, **BASE)
RESNET18, RESNET50 = _resnet("BasicBlock", [2, 2, 2, 2]), _resnet("Bottleneck", [3, 4, 6, 3])
# Inf1: AutoModelForSequenceClassification (the *_compile.py / *_benchmark.py scripts)
BERT_BASE_CASED_CLS = _hf("BertForSequenceClassification", "BertConfig", vocab_size=28996, **BASE)
BERT_BASE_CLS = _hf("BertForSequenceClassification", "BertConfig", vocab_size=30522, **BASE)
DISTILBERT_CLS = _hf("DistilBertForSequenceClassification", "DistilBertConfig", **DISTIL)
DISTILROBERTA_CLS = _hf("RobertaForSequenceClassification", "RobertaConfig", **ROBERTA,
                        **dict(BASE, num_hidden_layers=6))

ENC, ENC_T = "inf2/latency_data_encoder.csv", "inf2/throughput_data_encoder.csv"
CNN, CNN_T = "inf2/latency_data_vision_cnn.csv", "inf2/throughput_data_vision_cnn.csv"
VIT, VIT_T = "inf2/latency_data_vision_transformers.csv", "inf2/throughput_data_vision_transformers.csv"
INF1 = "inf1/latency_data_encoder.csv"
L, T = "latency", "throughput"
ROWS = [
    Row("albert-base-v2", ALBERT_BASE, 1, 128, 0.93722343, 2119.78480993, L, ENC, "2.26.0"),
    Row("bert-base-uncased", BERT_BASE, 1, 128, 0.99897385, 1998.20950133, L, ENC, "2.26.0"),
    Row("bert-large-uncased", BERT_LARGE, 1, 128, 2.69365311, 738.64502335, L, ENC, "2.25.0"),
    Row("distilbert-base-uncased", DISTILBERT, 1, 128, 0.57864189, 3401.96550351, L, ENC, "2.26.0"),
    Row("electra-base-discriminator", ELECTRA_BASE, 1, 128, 0.9958744, 2020.45540243, L, ENC, "2.26.0"),
    Row("roberta-base", ROBERTA_BASE, 1, 128, 0.99945068, 1989.26102482, L, ENC, "2.26.0"),
    Row("roberta-large", ROBERTA_LARGE, 1, 128, 2.69317627, 738.88441011, L, ENC, "2.26.0"),
    Row("resnet18", RESNET18, 1, None, 0.596, 1669.796, L, CNN, "2.21.0"),
    Row("resnet34", _resnet("BasicBlock", [3, 4, 6, 3]), 1, None, 0.718, 1394.211, L, CNN, "2.21.0"),
    Row("resnet50", RESNET50, 1, None, 0.83, 1218.875, L, CNN, "2.21.0"),
    Row("resnet101", _resnet("Bottleneck", [3, 4, 23, 3]), 1, None, 1.007, 994.691, L, CNN, "2.21.0"),
    Row("resnet152", _resnet("Bottleneck", [3, 8, 36, 3]), 1, None, 1.185, 837.784, L, CNN, "2.21.0"),
    Row("vit-base-patch16-224", _vit, 1, None, 1.322, 746.139, L, VIT, "2.21.0"),
    Row("albert-base-v2 b8", ALBERT_BASE, 8, 128, 5.0675869, 3147.09984049, T, ENC_T, "2.25.0"),
    Row("bert-base-uncased b8", BERT_BASE, 8, 128, 5.97381591, 2674.18956433, T, ENC_T, "2.27.0"),
    Row("bert-large-uncased b4", BERT_LARGE, 4, 128, 8.41140747, 950.0496231, T, ENC_T, "2.21.0"),
    Row("distilbert-base-uncased b16", DISTILBERT, 16, 128, 6.01053237, 5307.87660777, T, ENC_T, "2.27.0"),
    Row("electra-base-discriminator b16", ELECTRA_BASE, 16, 128, 11.02411747, 2889.75325068, T, ENC_T, "2.25.0"),
    Row("roberta-base b8", ROBERTA_BASE, 8, 128, 5.42390347, 2920.37954741, T, ENC_T, "2.25.0"),
    Row("roberta-large b4", ROBERTA_LARGE, 4, 128, 8.31007957, 962.70185508, T, ENC_T, "2.25.0"),
    Row("resnet18 b8", RESNET18, 8, None, 4.587, 6949.174, T, CNN_T, "2.21.0"),
    Row("resnet50 b8", RESNET50, 8, None, 7.283, 4393.304, T, CNN_T, "2.21.0"),
    Row("vit-base-patch16-224 b2", _vit, 2, None, 4.087, 1955.406, T, VIT_T, "2.21.0"),
    Row("inf1 bert-base-cased", BERT_BASE_CASED_CLS, 1, 128, 7.9, 125.7, L, INF1, "2.20.0", 1),
    Row("inf1 bert-base-uncased b3", BERT_BASE_CLS, 3, 128, 10.5, 284.7, L, INF1, "2.20.0", 1),
    Row("inf1 distilbert-base-uncased-finetuned-sst-2-english b5", DISTILBERT_CLS, 5, 128, 10.0, 593.4, L, INF1,
        "2.20.0", 1),
    Row("inf1 distilbert-base-uncased b6", DISTILBERT_CLS, 6, 128, 11.1, 538.2, L, INF1, "2.20.0", 1),
    Row("inf1 distilroberta-base b3", DISTILROBERTA_CLS, 3, 128, 7.0, 417.0, L, INF1, "2.20.0", 1),
]


def modelled_ms(row: Row, model, inputs) -> tuple:
    """(latency of one call on one NeuronCore in ms, busy ms per engine, SBUF spill MiB)."""
    if row.generation == 2:
        stats, timeline = modelled(model, inputs)
        busy = {k: round(v["busy_ns"] * 1e-6, 3) for k, v in stats["engines"].items()}
        return stats["latency_ns"] * 1e-6, busy, timeline.get("memory", {}).get("spill_bytes", 0) / 2**20
    import torch_neuron_emu
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch_neuron_emu.trace(model, inputs, strict=False)
    report = torch_neuron_emu.profile(traced, *inputs)
    return report.latency_ms, {k: round(e.busy_ms, 3) for k, e in report.engines.items()}, report.spill_bytes / 2**20


def check(row: Row) -> dict:
    model, inputs = row.build(row.batch, row.seq or 0)
    t0 = time.time()
    ms, busy, spill = modelled_ms(row, model, inputs)
    return dict(modelled_ms=ms, error=ms / row.reference_ms - 1, busy=busy, spill_mib=spill, seconds=time.time() - t0)


def table_line(row: Row, result: dict) -> str:
    pub = (f"P50 {row.p50_ms:.3f} ms" if row.kind == "latency"
           else f"{row.throughput:.0f}/s (P50 {row.p50_ms:.2f} ms)")
    return (f"| {row.name} | {row.batch} | {row.seq or '224x224'} | {row.cast} | {pub} | {row.reference_ms:.3f} ms "
            f"| {result['modelled_ms']:.3f} ms | **{result['error']:+.0%}** |")


def main(names):
    rows = [r for r in ROWS if not names or r.name in names]
    print("| model | batch | seq | cast | published | one call, one core | modelled | error |")
    print("|---|---:|---:|---|---|---:|---:|---:|")
    for r in rows:
        res = check(r)
        print(table_line(r, res), flush=True)
        print(f"    busy ms {res['busy']}, spill {res['spill_mib']:.0f} MiB, {res['seconds']:.0f} s", file=sys.stderr,
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
