"""`model.generate()` as the tutorials call it, on CPU and on the device (`model.to(xm.xla_device())`): under
`neuron-emu run` transformers sees torch_xla and takes its XLA branch in generate (a mark_step per token). Greedy
decoding of a GPT-2 and a T5 built from configs; prints whether the device's tokens are CPU eager's and how many
graphs each call compiled (the second, identical call must reuse them)."""
import torch
import torch_xla.core.xla_model as xm
import torch_xla.debug.metrics as met
from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration


def compiles():
    data = met.metric_data("CompileTime")
    return data[0] if data else 0


torch.manual_seed(0)
gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0,
                                  pad_token_id=0)).eval()
t5 = T5ForConditionalGeneration(T5Config(vocab_size=100, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2,
                                         decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)).eval()
ids = torch.randint(2, 100, (2, 8))
mask = torch.ones_like(ids)
dev = xm.xla_device()
for name, model, new in (("gpt2", gpt2, 10), ("t5", t5, 6)):
    want = model.generate(ids, attention_mask=mask, max_new_tokens=new, do_sample=False)
    model.to(dev)
    counts = []
    for _ in range(2):
        before = compiles()
        got = model.generate(ids.to(dev), attention_mask=mask.to(dev), max_new_tokens=new, do_sample=False)
        counts.append(compiles() - before)
    print(name, "same_tokens", torch.equal(got.cpu(), want), "new_tokens", new, "compiles", *counts)
