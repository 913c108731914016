"""A training and evaluation script written the way the Neuron SDK's MNIST MLP tutorial writes one (device = 'xla',
NLLLoss, SGD, mark_step per step, xm.save of the checkpoint, evaluation counting matches with the builtin sum over a
device tensor), on synthetic data (no download). tests/test_lazy_tutorial_script.py runs it unmodified under
`neuron-emu run` and, with the device lines turned into CPU ones, in CPU eager."""
import os
import time
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import torch_xla.core.xla_model as xm


class MLP(nn.Module):
    def __init__(self, input_size=784, output_size=10, layers=(120, 84)):
        super().__init__()
        self.fc1 = nn.Linear(input_size, layers[0])
        self.fc2 = nn.Linear(layers[0], layers[1])
        self.fc3 = nn.Linear(layers[1], output_size)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return F.log_softmax(self.fc3(x), dim=1)


def dataset(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g)
    y = (x.view(n, -1)[:, :10].argmax(dim=1))   # a learnable rule
    return TensorDataset(x, y)


def main():
    torch.manual_seed(0)
    device = 'xla'
    model = MLP().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = torch.nn.NLLLoss()
    model.train()
    for epoch in range(2):  # (the second epoch runs the cached step graphs: full batches and the last one)
        for idx, (train_x, train_label) in enumerate(DataLoader(dataset(330, 1), batch_size=32)):
            optimizer.zero_grad()
            train_x = train_x.view(train_x.size(0), -1)
            train_x = train_x.to(device)
            train_label = train_label.to(device)
            output = model(train_x)
            loss = loss_fn(output, train_label)
            loss.backward()
            optimizer.step()
            xm.mark_step()
    print("Final loss is {:0.4f}".format(loss.detach().to('cpu')))
    os.makedirs("checkpoints", exist_ok=True)
    xm.save({'state_dict': model.state_dict()}, 'checkpoints/checkpoint.pt')

    device = xm.xla_device()
    model = MLP().to(device)
    checkpoint = torch.load('checkpoints/checkpoint.pt', map_location='cpu')
    model.load_state_dict(checkpoint['state_dict'])
    model.eval()
    match_count = 0
    for idx, (test_x, test_label) in enumerate(DataLoader(dataset(320, 2), batch_size=32)):
        test_x = test_x.view(test_x.size(0), -1).to(device)
        pred_label = torch.argmax(model(test_x), dim=1)
        match_count += sum(pred_label == test_label.to(device))
        xm.mark_step()
    print("Accuracy: {}".format(match_count / ((idx + 1) * 32)))


if __name__ == '__main__':
    main()
