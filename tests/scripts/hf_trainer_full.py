"""Trainer as the fine-tuning tutorials use it beyond train(): evaluation every few steps with compute_metrics,
checkpoints every few steps and a resume from one, predict(), gradient accumulation, max_grad_norm, torch_compile
off, and `--bf16` (TrainingArguments.bf16: accelerate's autocast to bfloat16). `--cpu` sets use_cpu (the CPU
oracle of a bf16 run: plain CPU refuses bf16 without it). tests/test_launcher_tutorials.py runs it both ways."""
import sys

import numpy as np
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                    num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


class Pairs(torch.utils.data.Dataset):
    def __init__(self, n, offset=0):
        self.n, self.offset = n, offset

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i + self.offset)
        return {"input_ids": torch.randint(0, 100, (16,), generator=g), "labels": torch.tensor(i % 2)}


def accuracy(p):
    return {"accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean())}


def trainer(max_steps, seed):
    torch.manual_seed(seed)
    args = TrainingArguments(output_dir="out", per_device_train_batch_size=4, per_device_eval_batch_size=8,
                             max_steps=max_steps, gradient_accumulation_steps=2, max_grad_norm=0.5, learning_rate=1e-3,
                             logging_steps=2, eval_strategy="steps", eval_steps=3, save_strategy="steps", save_steps=3,
                             report_to=[], disable_tqdm=True, bf16="--bf16" in sys.argv, use_cpu="--cpu" in sys.argv,
                             torch_compile=False, seed=0)
    return Trainer(model=BertForSequenceClassification(config), args=args, train_dataset=Pairs(48),
                   eval_dataset=Pairs(12, 1000), compute_metrics=accuracy)


tr = trainer(6, 0)
result = tr.train()
print("device", next(tr.model.parameters()).device.type)
print("train_loss", result.training_loss)
ev = tr.evaluate()
print("eval_loss", ev["eval_loss"])
print("eval_accuracy", ev["eval_accuracy"])
pred = tr.predict(Pairs(10, 2000))
print("predictions", " ".join(f"{v:.6f}" for v in pred.predictions.ravel()))
resumed = trainer(9, 1)     # another initialisation: the checkpoint's weights and state must replace it
r = resumed.train(resume_from_checkpoint="out/checkpoint-6")
print("resumed_step", r.global_step)
print("resumed_eval_loss", resumed.evaluate()["eval_loss"])
