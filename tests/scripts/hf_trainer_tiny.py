"""Fine-tuning with transformers' Trainer as its examples write it (no device code: under `neuron-emu run` transformers
finds torch_xla, and accelerate puts the model on the XLA device). A tiny BERT from a config, dropout off so that the
device and CPU runs see the same numbers; tests/test_lazy_hf_trainer.py runs it both ways."""
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

torch.manual_seed(0)
config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                    num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
model = BertForSequenceClassification(config)


class Pairs(torch.utils.data.Dataset):
    def __len__(self):
        return 32

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return {"input_ids": torch.randint(0, 100, (16,), generator=g), "labels": torch.tensor(i % 2)}


args = TrainingArguments(output_dir="out", per_device_train_batch_size=8, num_train_epochs=2, logging_steps=2,
                         report_to=[], save_strategy="no", disable_tqdm=True)
trainer = Trainer(model=model, args=args, train_dataset=Pairs())
result = trainer.train()
print("device", next(trainer.model.parameters()).device.type)
print("train_loss", result.training_loss)
