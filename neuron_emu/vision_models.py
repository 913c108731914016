"""Vision models written here (torchvision is not available): MobileNet-v2, EfficientNet-B0, a YOLO-style detector and
a UNet, each with the features users' models bring: depthwise/grouped convolutions, hardswish/SiLU/ReLU6,
squeeze-excite (global pooling + gating), nearest upsampling + concatenation, transposed convolutions.

Every builder returns ``(model.eval(), example_inputs)``; ``width`` scales the channel counts (1.0 = the published
architecture), ``image`` the input size. Weights are random (seeded); batch-norm statistics are randomised so that
folding is exercised."""
from __future__ import annotations

import math
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from neuron_emu.zoo import _randomize_bn, _seeded

__all__ = ["mobilenet_v2", "efficientnet_b0", "yolo_style", "unet", "VISION_BUILDERS", "TINY_VISION_BUILDERS"]


def _ch(c: float, width: float, divisor: int = 8) -> int:
    v = max(divisor, int(c * width + divisor / 2) // divisor * divisor)
    return v if v >= 0.9 * c * width else v + divisor


class ConvBNAct(nn.Sequential):
    def __init__(self, cin, cout, k=3, stride=1, groups=1, act=nn.ReLU6):
        super().__init__(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout),
                         act() if act is not None else nn.Identity())


class InvertedResidual(nn.Module):
    """MobileNet-v2 block: 1x1 expand, 3x3 depthwise, 1x1 project (linear), residual when shapes allow."""

    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers: List[nn.Module] = [ConvBNAct(cin, hidden, 1)] if expand != 1 else []
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden), ConvBNAct(hidden, cout, 1, act=None)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.block(x)
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, width=1.0, num_classes=1000, depth=1.0):
        super().__init__()
        c = _ch(32, width)
        layers: List[nn.Module] = [ConvBNAct(3, c, 3, 2)]
        for t, ch, n, s in self.SETTINGS:
            out = _ch(ch, width)
            for i in range(max(1, round(n * depth))):
                layers.append(InvertedResidual(c, out, s if i == 0 else 1, t))
                c = out
        last = _ch(1280, max(width, 1.0) if width >= 1 else width)
        layers.append(ConvBNAct(c, last, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self.classifier(x)


class SqueezeExcite(nn.Module):
    def __init__(self, c, squeeze):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, squeeze, 1), nn.Conv2d(squeeze, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.silu(self.fc1(s))))


class MBConv(nn.Module):
    """EfficientNet block: expand (SiLU), depthwise k x k, squeeze-excite, project; residual when shapes allow."""

    def __init__(self, cin, cout, k, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers: List[nn.Module] = [ConvBNAct(cin, hidden, 1, act=nn.SiLU)] if expand != 1 else []
        layers += [ConvBNAct(hidden, hidden, k, stride, groups=hidden, act=nn.SiLU),
                   SqueezeExcite(hidden, max(1, cin // 4)), ConvBNAct(hidden, cout, 1, act=None)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.block(x)
        return x + y if self.residual else y


class EfficientNetB0(nn.Module):
    SETTINGS = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
                (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]

    def __init__(self, width=1.0, num_classes=1000, depth=1.0):
        super().__init__()
        c = _ch(32, width)
        layers: List[nn.Module] = [ConvBNAct(3, c, 3, 2, act=nn.SiLU)]
        for t, k, s, ch, n in self.SETTINGS:
            out = _ch(ch, width)
            for i in range(max(1, int(math.ceil(n * depth)))):
                layers.append(MBConv(c, out, k, s if i == 0 else 1, t))
                c = out
        last = _ch(1280, width)
        layers.append(ConvBNAct(c, last, 1, act=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

    def forward(self, x):
        return self.classifier(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


class YoloStyle(nn.Module):
    """A YOLOv5-like detector: a strided conv backbone with hardswish, an FPN neck (nearest 2x upsampling and
    concatenation with the lateral feature) and two detection heads (sigmoid box/objectness/class maps)."""

    def __init__(self, width=1.0, num_classes=80, anchors=3):
        super().__init__()
        c1, c2, c3, c4 = (_ch(c, width) for c in (32, 64, 128, 256))
        act = nn.Hardswish
        self.stem = ConvBNAct(3, c1, 3, 2, act=act)
        self.s2 = nn.Sequential(ConvBNAct(c1, c2, 3, 2, act=act), ConvBNAct(c2, c2, 3, act=act))
        self.s3 = nn.Sequential(ConvBNAct(c2, c3, 3, 2, act=act), ConvBNAct(c3, c3, 3, act=act))
        self.s4 = nn.Sequential(ConvBNAct(c3, c4, 3, 2, act=act), ConvBNAct(c4, c4, 1, act=act))
        self.lateral = ConvBNAct(c4, c3, 1, act=act)
        self.fuse = ConvBNAct(2 * c3, c3, 3, act=act)
        out = anchors * (5 + num_classes)
        self.head_small, self.head_large = nn.Conv2d(c3, out, 1), nn.Conv2d(c4, out, 1)

    def forward(self, x):
        p3 = self.s3(self.s2(self.stem(x)))
        p4 = self.s4(p3)
        up = F.interpolate(self.lateral(p4), scale_factor=2, mode="nearest")
        f3 = self.fuse(torch.cat([up, p3], dim=1))
        return torch.sigmoid(self.head_small(f3)), torch.sigmoid(self.head_large(p4))


class UNet(nn.Module):
    """UNet: double-conv encoder with max pooling, transposed-convolution upsampling, skip concatenation."""

    def __init__(self, width=1.0, in_ch=3, num_classes=2, levels=4):
        super().__init__()
        chs = [_ch(64 * 2 ** i, width) for i in range(levels + 1)]

        def double(cin, cout):
            return nn.Sequential(ConvBNAct(cin, cout, 3, act=nn.ReLU), ConvBNAct(cout, cout, 3, act=nn.ReLU))
        self.down = nn.ModuleList([double(in_ch, chs[0])] + [double(chs[i], chs[i + 1]) for i in range(levels)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(chs[i + 1], chs[i], 2, stride=2) for i in reversed(range(levels))])
        self.dec = nn.ModuleList([double(2 * chs[i], chs[i]) for i in reversed(range(levels))])
        self.out = nn.Conv2d(chs[0], num_classes, 1)

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for up, dec in zip(self.up, self.dec):
            x = dec(torch.cat([skips.pop(), up(x)], dim=1))
        return self.out(x)


def _build(cls, image, batch, seed, **kw) -> Tuple[nn.Module, tuple]:
    with _seeded(seed):
        model = cls(**kw)
        _randomize_bn(model)
        x = torch.randn(batch, kw.get("in_ch", 3), image, image)
    return model.eval(), (x,)


def mobilenet_v2(width=1.0, image=224, batch=1, seed=0, depth=1.0):
    return _build(MobileNetV2, image, batch, seed, width=width, depth=depth)


def efficientnet_b0(width=1.0, image=224, batch=1, seed=0, depth=1.0):
    return _build(EfficientNetB0, image, batch, seed, width=width, depth=depth)


def yolo_style(width=1.0, image=320, batch=1, seed=0):
    return _build(YoloStyle, image, batch, seed, width=width)


def unet(width=1.0, image=256, batch=1, seed=0, levels=4):
    return _build(UNet, image, batch, seed, width=width, levels=levels)


TINY_VISION_BUILDERS = {
    "mobilenet_v2_tiny": lambda: mobilenet_v2(width=0.25, image=32, depth=0.34),
    "efficientnet_b0_tiny": lambda: efficientnet_b0(width=0.25, image=32, depth=0.34),
    "yolo_tiny": lambda: yolo_style(width=0.125, image=64),
    "unet_tiny": lambda: unet(width=0.0625, image=32, levels=2),
}

VISION_BUILDERS = {
    **TINY_VISION_BUILDERS,
    "mobilenet_v2": lambda: mobilenet_v2(),
    "efficientnet_b0": lambda: efficientnet_b0(),
    "yolo_style": lambda: yolo_style(),
    "unet": lambda: unet(),
}
