"""Train a convolutional proxy in channels-last on a CPU, around a oneDNN crash.

Why: on a CPU the scaled FastViTHD@1024 trains 1.5-1.7x faster per step in channels-last than in
NCHW and FastViT@768 1.3-2.1x (1-2 threads, torch 2.14.1, the AMX Xeon:
``benchmarks/results/proxy_cost_2026-12-07_intel-xeon-processor.md``); a ViT, whose only conv is
the patch embedding, shows no clear gain, so only conv kinds use it.

The crash: oneDNN's 1x1 convolution backward-by-weights overruns its workspace for a strided
1x1 conv in NHWC with fewer input channels than its channel block (16 on AVX-512, 8 on AVX2)
(uxlfoundation/oneDNN#6035, open): the paper's FastViT has one in its stem (3 -> 80 channels,
stride 2), and training it in channels-last corrupted the heap ("corrupted size vs. prev_size") or segfaulted.
Such a conv computes exactly a stride-1 1x1 conv over the subsampled input, which oneDNN runs
correctly, so that is what it runs here: the same numbers, the same parameters.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn

#: encoder kinds (spec.SPEC_KINDS) whose proxies train in channels-last on a CPU
CHANNELS_LAST_KINDS = frozenset({"hybrid", "convnext"})
#: oneDNN's largest input-channel block: a strided 1x1 conv with fewer channels per group is rerouted
ONEDNN_CHANNEL_BLOCK = 16


def _subsampled_1x1(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for a 1x1, unpadded, strided ``conv``, as a stride-1 conv over ``x[..., ::s, ::s]``."""
    step_h, step_w = conv.stride
    return F.conv2d(x[:, :, ::step_h, ::step_w], conv.weight, conv.bias, 1, 0, conv.dilation, conv.groups)


def crashes_onednn(module: nn.Module) -> bool:
    """Whether ``module`` is a conv whose channels-last backward hits oneDNN#6035."""
    return (
        isinstance(module, nn.Conv2d)
        and module.kernel_size == (1, 1)
        and module.padding == (0, 0)
        and max(module.stride) > 1
        and module.in_channels // module.groups < ONEDNN_CHANNEL_BLOCK
    )


def to_channels_last(model: nn.Module) -> nn.Module:
    """``model`` in channels-last (in place), each conv that :func:`crashes_onednn` rerouted."""
    model.to(memory_format=torch.channels_last)
    for module in model.modules():
        if crashes_onednn(module):
            module.forward = types.MethodType(_subsampled_1x1, module)  # a deepcopy rebinds it to the copy
    return model
