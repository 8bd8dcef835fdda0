"""Random weights written fast: one block of random values tiled over every weight.

Why: timing needs weights of the right shapes and magnitudes, not of a particular distribution,
and drawing one random number per weight dominates building a large model (timm's truncated-normal
init of ViT-L/14: 3 s of a 3.1-s build here; Qwen2-1.5B: 8 s). A model built on the ``meta``
device, moved with ``to_empty`` and filled from a 1 M-value block builds in a fraction of that.
Runtime does not depend on the values as long as they stay normal floats (no denormals, no
inf/NaN); a runtime's numerics check (bf16 against eager fp32) does, so the scales are the ones the
models' own init uses: conv weights PyTorch's default bound ``1/sqrt(fan_in)``, linear weights
timm's spread (std 0.02), biases a tenth of their weight's bound (distinct, never all zero), unit
norms with zero-mean unit-variance statistics, 1e-5 for everything else (layer scales: timm's init;
position tables and class tokens). With larger (variance-preserving) weights OpenVINO bf16 drifted
up to 7e-2 from eager on a search architecture (tolerance 5e-2); with these its error is the
init's (0.004-0.008 on 8 architectures). Measured on FastViTHD@1024, FastViT@1024, ViT-L/14@336
(eager, 1 thread, alternating builds, 4 runs each): medians -1.9 %, +2.2 %, +0.2 % from
timm-initialised copies, inside this machine's run-to-run spread.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

#: values in the tiled block (4 MiB in fp32)
BLOCK_SIZE = 1 << 20
#: linear weights: timm's truncated normal (std 0.02) as a uniform of the same spread
LINEAR_BOUND = 0.02 * math.sqrt(3.0)
#: biases: this share of their layer's weight bound (timm zeroes linear biases, PyTorch draws conv
#: ones at the weight bound; small and distinct is what matters here)
BIAS_SHARE = 0.1
#: scale of parameters that are neither conv/linear weights nor norms: timm's layer-scale init
#: (FastViT). With 0.02 the residual branches dominate and OpenVINO fp32 drifts 2.6e-3 from eager
#: on tiny_fastvithd (tolerance 1e-4), a check timm-initialised weights never made
OTHER_SCALE = 1e-5
_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
_WEIGHTED = (nn.Linear, nn.modules.conv._ConvNd)


def random_block(device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """``BLOCK_SIZE`` values uniform in [-1, 1], reproducible from ``seed``."""
    generator = torch.Generator(device=device).manual_seed(seed)
    return torch.empty(BLOCK_SIZE, device=device, dtype=dtype).uniform_(-1.0, 1.0, generator=generator)


@torch.no_grad()
def fill_tiled_(tensor: torch.Tensor, block: torch.Tensor, scale: float, offset: int = 0) -> torch.Tensor:
    """Write ``scale * block`` repeated over ``tensor`` (in place), starting at ``offset`` in the
    block: give every tensor its own offset, since an exporter or runtime may merge equal constants
    (OpenVINO then folded normalisations into shared weights: outputs 20 % off eager)."""
    flat = tensor.view(-1)
    source = torch.roll(block, -(offset % block.numel())) if offset % block.numel() else block
    for start in range(0, flat.numel(), source.numel()):
        part = flat[start : start + source.numel()]
        torch.mul(source[: part.numel()], scale, out=part)
    return tensor


def unfillable(module: nn.Module) -> list[str]:
    """Names of the tensors :func:`materialize_random` cannot fill with meaning: buffers other than
    norm statistics (index tables, rotary frequencies: garbage would change the computation) and
    non-float parameters."""
    names = []
    for module_name, child in module.named_modules():
        prefix = f"{module_name}." if module_name else ""
        if not isinstance(child, _NORMS):
            names += [prefix + name for name, _ in child.named_buffers(recurse=False)]
        names += [prefix + n for n, p in child.named_parameters(recurse=False) if not p.is_floating_point()]
    return names


@torch.no_grad()
def materialize_random(module: nn.Module, device: torch.device | str = "cpu", seed: int = 0) -> nn.Module:
    """Move a ``meta`` module to ``device`` (``to_empty``) and fill every tensor (see the module
    docstring for the scales). Raises ``ValueError`` naming what it cannot fill (:func:`unfillable`)."""
    if names := unfillable(module):
        raise ValueError(f"cannot fill {names[0]} (and {len(names) - 1} more) with random values")
    module = module.to_empty(device=device)
    filled: set[int] = set()
    offsets = itertools.count(0, 7919)  # a prime stride: no two tensors start alike
    blocks: dict[torch.dtype, torch.Tensor] = {}

    def block_for(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.dtype not in blocks:
            blocks[tensor.dtype] = random_block(tensor.device, tensor.dtype, seed)
        return blocks[tensor.dtype]

    for child in module.modules():
        if isinstance(child, _NORMS):
            child.reset_parameters()  # unit scale, zero shift, zero mean / unit variance statistics
            filled.update(id(t) for t in (*child.parameters(recurse=False), *child.buffers(recurse=False)))
        elif isinstance(child, _WEIGHTED):
            fan_in = max(1, child.weight[0].numel())
            bound = LINEAR_BOUND if isinstance(child, nn.Linear) else 1.0 / math.sqrt(fan_in)
            for tensor, scale in ((child.weight, bound), (child.bias, BIAS_SHARE * bound)):
                if tensor is not None:  # biases too: equal zero biases would be merged constants
                    fill_tiled_(tensor, block_for(tensor), scale, next(offsets))
                    filled.add(id(tensor))
    for parameter in module.parameters():
        if id(parameter) not in filled:
            fill_tiled_(parameter, block_for(parameter), OTHER_SCALE, next(offsets))
    return module
