"""Main demo: trace a model for Inferentia2 (torch_neuronx) and Inferentia1 (torch_neuron), run it
with real numbers on the emulated NeuronCores, and print the per-engine and cost report.

    python examples/demo.py [--model resnet50|bert-base|bert-hf-default|mlp] [--auto-cast matmult]
"""
import argparse
import time

import torch

import torch_neuron_emu
import torch_neuronx_emu
from neuron_emu import zoo
from neuron_emu.report import cost_table, engine_table

def hf_default_bert(seq: int = 128):
    """BERT-base as users build it: the library's defaults (SDPA attention), random weights, nothing downloaded."""
    import transformers

    torch.manual_seed(0)
    model = transformers.AutoModel.from_config(transformers.BertConfig()).eval()
    ids = torch.randint(0, model.config.vocab_size, (1, seq))
    return model, (ids, torch.ones_like(ids))


MODELS = {"resnet50": lambda: zoo.resnet50(), "bert-base": lambda: zoo.bert("base", seq=128),
          "bert-hf-default": hf_default_bert, "mlp": lambda: zoo.mlp()}


def flat(out):
    return [t for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet50", choices=sorted(MODELS))
    p.add_argument("--auto-cast", default="matmult", choices=["none", "matmult", "all"])
    a = p.parse_args()
    model, inputs = MODELS[a.model]()
    with torch.no_grad():
        t = time.perf_counter()
        ref = flat(model(*inputs))
        eager_s = time.perf_counter() - t
    print(f"model {a.model}: PyTorch CPU eager {eager_s * 1e3:.1f} ms")

    runs = [("Inferentia2 (torch_neuronx.trace, NeuronCore-v2)",
             lambda: torch_neuronx_emu.trace(model, inputs, compiler_args=f"--auto-cast {a.auto_cast}"),
             torch_neuronx_emu.last_call, ["inf2.xlarge", "inf2.8xlarge", "inf2.48xlarge", "trn1.2xlarge"]),
            ("Inferentia1 (torch_neuron.trace, NeuronCore-v1, --fast-math all)",
             lambda: torch_neuron_emu.trace(model, inputs),
             torch_neuron_emu.last_call, ["inf1.xlarge", "inf1.2xlarge", "inf1.6xlarge", "inf1.24xlarge"])]
    for title, do_trace, last, instances in runs:
        t = time.perf_counter()
        try:
            traced = do_trace()
            trace_s = time.perf_counter() - t
            t = time.perf_counter()
            out = flat(traced(*inputs))
        except Exception as e:  # e.g. a model this target cannot compile yet: say so and go on to the next
            print(f"\n== {title}\n  not available for this model: {type(e).__name__}: {e}")
            continue
        run_s = time.perf_counter() - t
        err = max((o.float() - r.float()).abs().max().item() / (r.float().abs().max().item() + 1e-9)
                  for o, r in zip(out, ref) if r.dtype.is_floating_point)
        s = last()
        print(f"\n== {title}\n  trace+compile {trace_s:.2f} s, emulated run {run_s * 1e3:.1f} ms wall, "
              f"max rel. error vs fp32 eager {err:.2e}")
        print(engine_table(s))
        print(cost_table(s, instances))


if __name__ == "__main__":
    main()
