"""Peak RSS of a deployed model: a loaded traced model (`torch.jit.load` + one call) vs PyTorch eager fp32 (the
weights loaded from a state dict onto a model built on the meta device, + one call), each in a fresh process.
Prints the ratio per model and compiler args, measured in this run.

    python benchmarks/bench_memory.py [--models bert-base,bert-large] [--args "--auto-cast matmult"]

Target (issue #13): a loaded `--auto-cast matmult` BERT-large <= 0.7x eager fp32's peak RSS (its matmul weights
are stored in bf16, neuron_emu/compiler/const_storage.py)."""
import argparse
import subprocess
import sys
import tempfile

_CHILD = """
import resource, sys, torch, transformers
from neuron_emu import zoo
mode, d, size, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
if mode == "trace":
    import torch_neuronx_emu
    model, inputs = zoo.bert(size, seq=128)
    model.config.to_json_file(d + "/config.json")
    torch.save(model.state_dict(), d + "/weights.pt")
    torch.save(inputs, d + "/inputs.pt")
    torch.jit.save(torch_neuronx_emu.trace(model, inputs, compiler_args=args), d + "/traced.pt")
else:
    inputs = torch.load(d + "/inputs.pt")
    if mode == "eager":
        with torch.device("meta"):
            model = transformers.BertModel(transformers.BertConfig.from_json_file(d + "/config.json")).eval()
        model.load_state_dict(torch.load(d + "/weights.pt", mmap=True), assign=True)
        with torch.no_grad():
            model(*inputs)
    else:
        import torch_neuronx_emu
        torch.jit.load(d + "/traced.pt")(*inputs)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def peak_rss(size: str, args: str) -> dict:
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, "-c", _CHILD, "trace", d, size, args], check=True, capture_output=True)
        return {mode: float(subprocess.run([sys.executable, "-c", _CHILD, mode, d, size, args], check=True,
                                           capture_output=True, text=True).stdout.split()[-1])
                for mode in ("eager", "load")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", default="bert-base,bert-large")
    p.add_argument("--args", action="append", help="compiler args (repeatable); default: none and matmult")
    a = p.parse_args()
    for model in a.models.split(","):
        size = model.split("-", 1)[1]
        for args in a.args or ["--auto-cast none", "--auto-cast matmult"]:
            r = peak_rss(size, args)
            print(f"{model:10s} {args:20s} peak RSS: eager fp32 {r['eager']:7.0f} MiB | loaded traced {r['load']:7.0f} MiB"
                  f" | ratio {r['load'] / r['eager']:.2f}x", flush=True)


if __name__ == "__main__":
    main()
