"""TensorE time of the ResNets' convolutions under two contraction layouts (docs/cost-model.md, "Convolutions: the
contraction layout"): taps packed with the channels (`Cin*kh*kw` in 128-partition tiles, what the model charges) and
one accumulating matmul per filter tap (`Cin` partitions). Both use the `nc_matmul` tile formula the model uses
(csrc/tensor_engine.cpp `tile_cycles`: max(min(64, stationary cols), moving cols) per [128, 128] x [128, 512] tile) at
2.8 GHz, bf16. An estimate for comparison only; nothing here is in the model.

    PYTHONPATH=. python benchmarks/conv_contraction.py"""
import math

import torch

from neuron_emu import zoo

TENSOR_GHZ = 2.8


def tile_cycles(m: int, n: int, k: int) -> int:
    """Cycles of an [m x k] stationary by [k x n] moving product cut into 128 x 128 x 512 tiles."""
    cycles = 0
    for mt in range(math.ceil(m / 128)):
        cols = min(128, m - mt * 128)
        for nt in range(math.ceil(n / 512)):
            cycles += max(min(64, cols), min(512, n - nt * 512))
    return cycles * math.ceil(k / 128)


def conv_shapes(model, x):
    shapes = []
    hooks = [m.register_forward_hook(lambda mod, i, o: shapes.append((mod.in_channels, mod.out_channels,
                                                                       mod.kernel_size, o.shape)))
             for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return shapes


def main():
    nets = [("ResNet-18", zoo.BasicBlock, [2, 2, 2, 2]), ("ResNet-50", zoo.Bottleneck, [3, 4, 6, 3])]
    for name, block, depths in nets:
        model = zoo.ResNet(block, depths).eval()
        for batch in (1, 8):
            packed = per_tap = 0
            for cin, cout, (kh, kw), out in conv_shapes(model, torch.randn(batch, 3, 224, 224)):
                pixels = out[0] * out[2] * out[3]
                packed += tile_cycles(cout, pixels, cin * kh * kw)
                per_tap += kh * kw * tile_cycles(cout, pixels, cin)
            print(f"{name} b{batch}: packed {packed / TENSOR_GHZ * 1e-6:.3f} ms, "
                  f"one matmul per tap {per_tap / TENSOR_GHZ * 1e-6:.3f} ms")


if __name__ == "__main__":
    main()
