"""Exact counting for any (spec, resolution): parameters, visual tokens, MACs by op class.

Method (the fast path, the default): build the encoder in inference form on the ``meta``
device — no weights are allocated — and run one forward under torch's ``FlopCounterMode``.
On ``meta`` the fused ``scaled_dot_product_attention`` decomposes into ``bmm`` and is counted;
on real CPU tensors it runs as ``_scaled_dot_product_flash_attention_for_cpu``, which torch's
counter does not know and would silently count as zero, so we register a handler for it.
fvcore's ``FlopCountAnalysis`` (JIT trace, real tensors, seconds) is kept as an independent
cross-check (:func:`count_macs_fvcore`) that the tests compare against.

Unit: MACs (multiply-accumulates). FLOPs = 2 x MACs. Only conv and matmul work is counted;
every other op that ran (norms, activations, softmax, adds) is listed in ``uncounted_ops``
so nothing is hidden.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from typing import Any

import torch
from timm.models.fastvit import Attention as FastVitAttention
from timm.models.vision_transformer import Attention as ViTAttention
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, flop_registry

from fastvitsearch.build import BUILDERS, build_encoder
from fastvitsearch.spec import EncoderSpec

aten = torch.ops.aten

#: MACs = FLOPs / 2 (torch's counter reports FLOPs with 2 per multiply-add).
FLOPS_PER_MAC = 2
_CONV_OPS = {aten.convolution, aten._convolution}
#: modules whose own matmuls (QK^T, AV), outside their Linear children, are "attention".
ATTENTION_MODULES: tuple[type[nn.Module], ...] = (FastVitAttention, ViTAttention)
#: ops that move or reinterpret memory; they do no arithmetic worth listing as uncounted.
_SHAPE_OPS = {
    "view",
    "_unsafe_view",
    "reshape",
    "permute",
    "transpose",
    "t",
    "expand",
    "unsqueeze",
    "squeeze",
    "flatten",
    "clone",
    "contiguous",
    "detach",
    "alias",
    "slice",
    "select",
    "split",
    "split_with_sizes",
    "unbind",
    "cat",
    "empty",
    "empty_like",
    "zeros",
    "ones",
    "new_empty",
    "new_zeros",
    "as_strided",
    "_to_copy",
    "copy_",
    "lift_fresh",
    "unflatten",
}


def _sdpa_cpu_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of ``softmax(QK^T)V`` (2 per MAC), as torch counts its other SDPA kernels."""
    b, h, s_q, d_qk = query_shape
    s_k = key_shape[-2]
    d_v = value_shape[-1]
    return FLOPS_PER_MAC * b * h * s_q * s_k * (d_qk + d_v)


# torch registers flop formulas for the CUDA SDPA kernels but not for the CPU one.
_CUSTOM_FLOPS = {aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops}
_COUNTED = {getattr(op, "_overloadpacket", op) for op in (*flop_registry, *_CUSTOM_FLOPS)}


class _OpRecorder(TorchDispatchMode):
    """Records every aten op that ran, so the count can say which ones it did not count."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter[str] = Counter()
        self.uncounted: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        # Composite ops (conv2d, linear, sdpa) reach a mode before they decompose; record
        # only the ops that do the work, as the FLOP counter does.
        packet = func._overloadpacket
        if packet not in _COUNTED:
            with self:
                decomposed = func.decompose(*args, **kwargs)
            if decomposed is not NotImplemented:
                return decomposed
        name = packet.__name__
        self.seen[name] += 1
        if packet not in _COUNTED and name.rstrip("_") not in _SHAPE_OPS:
            self.uncounted[f"aten.{name}"] += 1
        return func(*args, **kwargs)


@dataclasses.dataclass(frozen=True)
class MacCount:
    """MACs of one forward pass, by op class, and the ops that were not counted."""

    macs: int
    macs_by_op: dict[str, int]
    uncounted_ops: dict[str, int]


def count_macs(model: torch.nn.Module, images: torch.Tensor) -> MacCount:
    """Count MACs of ``model(images)`` with torch's counter plus our CPU SDPA handler."""
    recorder = _OpRecorder()
    counter = FlopCounterMode(display=False, custom_mapping=_CUSTOM_FLOPS)
    with torch.inference_mode(), counter, recorder:
        model(images)
    by_op = _macs_by_op_class(model, counter.get_flop_counts())
    return MacCount(sum(by_op.values()), by_op, dict(sorted(recorder.uncounted.items())))


def _macs_by_op_class(model: nn.Module, flops_by_module: dict[str, dict[Any, int]]) -> dict[str, int]:
    """Split FLOPs into conv / linear / attention by the module that ran them, not by aten op.

    Classifying by op is fragile: torch lowers a Linear on a transposed input to ``bmm`` in
    some modes, which would then pass for attention. The module hierarchy does not change.
    """
    root = type(model).__name__
    modules = {f"{root}.{name}" if name else root: m for name, m in model.named_modules()}

    def total(ops: dict[Any, int]) -> int:
        return sum(ops.values())

    everything = flops_by_module.get("Global", {})  # absent when nothing multiplies (e.g. an identity module)
    conv = sum(f for op, f in everything.items() if op in _CONV_OPS)
    linear = sum(total(ops) for fqn, ops in flops_by_module.items() if isinstance(modules.get(fqn), nn.Linear))
    attention = 0
    for fqn, ops in flops_by_module.items():
        if isinstance(modules.get(fqn), ATTENTION_MODULES):
            inner_linear = sum(
                total(o)
                for f, o in flops_by_module.items()
                if f.startswith(fqn + ".") and isinstance(modules.get(f), nn.Linear)
            )
            attention += total(ops) - inner_linear
    by_class = {"conv": conv, "linear": linear, "attention": attention}
    other = total(everything) - conv - linear - attention
    if other:  # the three named classes are always reported (0 is a count: a CNN has no linear MACs)
        by_class["other_matmul"] = other
    return {k: v // FLOPS_PER_MAC for k, v in sorted(by_class.items())}


@dataclasses.dataclass(frozen=True)
class EncoderCounts:
    """Everything counted (not measured) about one (encoder, resolution) point."""

    encoder: str
    spec_hash: str
    resolution: int
    visual_tokens: int
    output_stride: int
    feature_width: int
    params: int
    params_reparameterized: int
    macs: int
    macs_by_op: dict[str, int]
    uncounted_ops: dict[str, int]
    unit: str = "MACs (FLOPs = 2 x MACs)"
    source: str = "counted: torch FlopCounterMode on meta, inference form, batch 1"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _param_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@functools.lru_cache(maxsize=32)
def _meta_forms(spec: EncoderSpec, resolution: int | None) -> tuple[int, nn.Module]:
    """Train-form parameter count and the inference-form module on ``meta``; ``resolution`` None
    where the builder's module does not depend on it (a hybrid's, unlike a ViT's): built once for all."""
    at = resolution or spec.output_stride  # any resolution the stride accepts builds the same module
    params = _param_count(build_encoder(spec, at, device="meta"))
    return params, build_encoder(spec, at, inference_mode=True, device="meta").eval()


@functools.lru_cache(maxsize=256)
def count_encoder(spec: EncoderSpec, resolution: int) -> EncoderCounts:
    """Params (train and inference form), tokens and MACs, without allocating any weights."""
    tokens = spec.tokens(resolution)
    params, inference = _meta_forms(spec, None if BUILDERS[spec.kind].resolution_free else resolution)
    macs = count_macs(inference, torch.empty(1, 3, resolution, resolution, device="meta"))
    return EncoderCounts(
        encoder=spec.name,
        spec_hash=spec.content_hash,
        resolution=resolution,
        visual_tokens=tokens,
        output_stride=spec.output_stride,
        feature_width=spec.feature_width,
        params=params,
        params_reparameterized=_param_count(inference),
        macs=macs.macs,
        macs_by_op=macs.macs_by_op,
        uncounted_ops=macs.uncounted_ops,
    )


# --- fvcore cross-check --------------------------------------------------------------------------
_FVCORE_CLASSES = {
    "conv": "conv",
    "linear": "linear",
    "addmm": "linear",
    "matmul": "attention",
    "bmm": "attention",
    "scaled_dot_product_attention": "attention",
}


def _fvcore_sdpa_handle(inputs, outputs) -> int:
    """fvcore handle for ``aten::scaled_dot_product_attention``: MACs of QK^T and AV."""
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(x) for x in inputs[:3])
    *batch, s_q, d_qk = q
    heads = 1
    for dim in batch:
        heads *= dim
    return heads * s_q * k[-2] * (d_qk + v[-1])


def count_macs_fvcore(model: torch.nn.Module, images: torch.Tensor) -> MacCount:
    """Independent count with fvcore (JIT trace on real tensors; needs real weights)."""
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, images)
    analysis.set_op_handle("aten::scaled_dot_product_attention", _fvcore_sdpa_handle)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_op: Counter[str] = Counter()
    for op, macs in analysis.by_operator().items():
        by_op[_FVCORE_CLASSES.get(op, f"other:{op}")] += int(macs)
    return MacCount(sum(by_op.values()), dict(sorted(by_op.items())), dict(sorted(analysis.unsupported_ops().items())))
