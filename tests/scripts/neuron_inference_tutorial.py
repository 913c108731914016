"""Inference the way the SDK's HF tutorials write it, on models built from configs (no downloads): torch_neuronx.trace
of BERT, RoBERTa, GPT-2, a T5 encoder and ViT with tuple (return_dict=False) or dict outputs, torch.jit.save/load,
torch_neuronx.DataParallel and dynamic_batch over a larger batch, torch.neuron.trace (Inf1) of BERT, and a
text-classification pipeline whose model is swapped for a wrapper around the traced one. Prints the largest
difference from CPU eager of each; tests/test_launcher_tutorials.py runs it under `neuron-emu run`."""
import torch
import torch_neuron
import torch_neuronx
from transformers import (BertConfig, BertForSequenceClassification, BertTokenizer, GPT2Config, GPT2LMHeadModel,
                          RobertaConfig, RobertaForSequenceClassification, T5Config, T5EncoderModel, ViTConfig,
                          ViTForImageClassification, pipeline)
from transformers.modeling_outputs import SequenceClassifierOutput

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
BUILD = {
    "bert": lambda c: BertForSequenceClassification(BertConfig(vocab_size=100, num_labels=3, **SMALL, **c)),
    "roberta": lambda c: RobertaForSequenceClassification(RobertaConfig(vocab_size=100, **SMALL, **c)),
    "gpt2": lambda c: GPT2LMHeadModel(GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2, bos_token_id=0,
                                                 eos_token_id=0, **c)),
    "t5_encoder": lambda c: T5EncoderModel(T5Config(vocab_size=100, d_model=32, d_kv=16, d_ff=64, num_layers=2,
                                                    num_heads=2, **c)),
    "vit": lambda c: ViTForImageClassification(ViTConfig(image_size=32, patch_size=8, **SMALL, **c)),
}


def build(name, return_dict):
    torch.manual_seed(0)
    return BUILD[name](dict(return_dict=return_dict)).eval()


def first(out):
    return next(iter(out.values())) if isinstance(out, dict) else out[0]


def diff(a, b):
    return f"{float((first(a) - first(b)).abs().max()):.3g}"


ids = torch.randint(5, 100, (1, 16))
mask = torch.ones_like(ids)
for name in BUILD:
    # transformers 5.24's GPT-2 and ViT fail in eager with config.return_dict=False: dict outputs only
    for return_dict in ((True,) if name in ("gpt2", "vit") else (False, True)):
        model = build(name, return_dict)
        example = (torch.randn(1, 3, 32, 32),) if name == "vit" else (ids,) if name == "gpt2" else (ids, mask)
        traced = torch_neuronx.trace(model, example)
        torch.jit.save(traced, f"{name}.pt")
        loaded = torch.jit.load(f"{name}.pt")
        print(f"{name}_{'dict' if return_dict else 'tuple'}", type(loaded(*example)).__name__,
              diff(traced(*example), model(*example)), diff(loaded(*example), model(*example)))

bert = build("bert", False)
big, big_mask = torch.randint(5, 100, (6, 16)), torch.ones(6, 16, dtype=torch.long)
parallel = torch_neuronx.DataParallel(torch_neuronx.trace(bert, (ids, mask)))
print("data_parallel", diff(parallel(big, big_mask), bert(big, big_mask)))
dynamic = torch_neuronx.trace(bert, (ids, mask))
torch_neuronx.dynamic_batch(dynamic)
print("dynamic_batch", diff(dynamic(big, big_mask), bert(big, big_mask)))
types = torch.zeros_like(ids)
inf1 = torch.neuron.trace(bert, example_inputs=(ids, mask, types))
inf1.save("inf1.pt")
print("inf1_bert", diff(torch.jit.load("inf1.pt")(ids, mask, types), bert(ids, mask, types)))

# the pipeline tutorial: a local vocabulary (no tokenizer download), the traced model behind a wrapper
with open("vocab.txt", "w") as f:
    f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(95)]) + "\n")
tokenizer = BertTokenizer("vocab.txt")
texts = ["w1 w2 w3", "w5 w7 w9 w11 w13", "w42"]
SEQ = 16
enc = tokenizer(texts[0], padding="max_length", max_length=SEQ, return_tensors="pt")
bert = build("bert", True)   # a pipeline reads outputs by name
traced = torch_neuronx.trace(bert, (enc["input_ids"], enc["attention_mask"]))


class TracedForPipeline(torch.nn.Module):
    """Pads to the traced length, runs one sentence per call, returns what the pipeline reads."""

    def __init__(self, traced, config):
        super().__init__()
        self.traced, self.config = traced, config

    def forward(self, input_ids, attention_mask, **_):
        pad = SEQ - input_ids.shape[1]
        input_ids = torch.nn.functional.pad(input_ids, (0, pad))
        attention_mask = torch.nn.functional.pad(attention_mask, (0, pad))
        logits = [first(self.traced(input_ids[i:i + 1], attention_mask[i:i + 1])) for i in range(len(input_ids))]
        return SequenceClassifierOutput(logits=torch.cat(logits))


want = pipeline("text-classification", model=bert, tokenizer=tokenizer, device="cpu", top_k=None)(texts)
pipe = pipeline("text-classification", model=bert, tokenizer=tokenizer, device="cpu", top_k=None)
pipe.model = TracedForPipeline(traced, bert.config)
got = pipe(texts)
same_labels = all([d["label"] for d in w] == [d["label"] for d in g] for w, g in zip(want, got))
score_diff = max(abs(a["score"] - b["score"]) for w, g in zip(want, got) for a, b in zip(w, g))
print("pipeline", same_labels, f"{score_diff:.3g}")
