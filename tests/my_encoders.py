"""Encoder factories a user might have: the tests build them through Hydra's ``_target_``."""

import torch
from torch import nn


def small_cnn(width: int = 32, stride_log2: int = 4) -> nn.Module:
    layers, c = [], 3
    for _ in range(stride_log2):
        layers += [nn.Conv2d(c, width, 3, stride=2, padding=1), nn.ReLU()]
        c = width
    return nn.Sequential(*layers)


class TinyViT(nn.Module):
    def __init__(self, width: int = 48, patch: int = 16):
        super().__init__()
        self.embed = nn.Conv2d(3, width, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))

    def forward_features(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        return torch.cat([self.cls.expand(len(t), -1, -1), t], 1)
