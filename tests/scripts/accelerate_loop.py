"""A training loop written against accelerate as its docs write one (Accelerator, prepare, accumulate, backward,
clip_grad_norm_, save_state/load_state, save_model; safetensors by default), with no device code: under
`neuron-emu run` accelerate finds torch_xla and puts the model on the lazy device. The DataLoader is not prepared:
accelerate 1.15's save_state reads `.dataset` of a prepared XLA loader, which torch_xla's MpDeviceLoader does not
have, on the real SDK as here. tests/test_launcher_tutorials.py runs it both ways."""
import torch
from accelerate import Accelerator
from transformers import BertConfig, BertForSequenceClassification

torch.manual_seed(0)
acc = Accelerator(gradient_accumulation_steps=2)
model = BertForSequenceClassification(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                                 num_attention_heads=2, intermediate_size=64, num_labels=2,
                                                 hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
sched = torch.optim.lr_scheduler.LinearLR(opt, 1.0, 0.1, total_iters=8)
g = torch.Generator().manual_seed(0)
data = [{"input_ids": torch.randint(0, 100, (16,), generator=g), "labels": torch.tensor(i % 2)} for i in range(32)]
loader = torch.utils.data.DataLoader(data, batch_size=4)
model, opt, sched = acc.prepare(model, opt, sched)
print("device", acc.device.type)
losses = []
for batch in loader:
    batch = {k: v.to(acc.device) for k, v in batch.items()}
    with acc.accumulate(model):
        out = model(**batch)
        acc.backward(out.loss)
        if acc.sync_gradients:
            acc.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        sched.step()
        opt.zero_grad()
    losses.append(out.loss.detach())
print("losses", " ".join(f"{float(l):.6f}" for l in losses))
acc.save_state("state")
weight = acc.unwrap_model(model).classifier.weight.detach().cpu().clone()
with torch.no_grad():
    acc.unwrap_model(model).classifier.weight.zero_()
acc.load_state("state")
print("reloaded", torch.equal(weight, acc.unwrap_model(model).classifier.weight.detach().cpu()))
acc.save_model(model, "saved")
print("weight_sum", f"{float(weight.sum()):.6f}")
