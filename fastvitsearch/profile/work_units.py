"""An inference-form encoder as a list of work units: the kinds of work its builder uses.

A unit is one module of the reparameterized encoder that the latency model times and predicts
as a whole (a stem, a patch embedding, a RepCPE, a RepMixer block, an attention block, the final
conv; a ViT's patch embedding and transformer blocks) with the dimensions that set its cost.
:func:`work_units` derives the list from a spec alone, in forward order, with no torch module
built: that is what makes a prediction take microseconds instead of the ~0.3 s a meta-device build
costs. :func:`unit_modules` finds the same units, in the same order, in a built encoder, so the
calibration can time each one, as its marginal cost in a chain of copies (a test checks the two lists agree).

Each unit has its ``work`` (multiply-accumulates: dense channel mixing ``P*C*C``, depthwise convs
``P*C*k*k``, attention's ``P*P*C``) and its ``coordinates`` (log pixels, log width, MLP ratio,
flags); the latency model interpolates a kind's milliseconds per unit of work over those
coordinates (:mod:`~fastvitsearch.profile.latency_predictor`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from fastvitsearch.spec import STEM_STRIDE, EncoderSpec, HybridEncoderSpec, SpecError, ViTSpec


@dataclass(frozen=True)
class WorkUnit:
    """One module's worth of work: its kind and the dimensions its cost depends on.

    ``pixels`` is the token count the unit works on (``H*W`` of its output, a ViT's tokens with the
    class token); ``width`` its output channels; ``in_width`` its input channels.
    """

    kind: str
    width: int
    pixels: int
    in_width: int = 0
    mlp_ratio: float = 0.0
    #: kind-specific switches that change the work: ``layernorm`` (attention norm), ``act``
    #: (GELU after the large-kernel conv), ``se`` (squeeze-excite in the patch embedding), ``patch``
    flags: tuple[tuple[str, float], ...] = ()

    def flag(self, name: str) -> float:
        return dict(self.flags).get(name, 0.0)

    @property
    def key(self) -> dict:
        """What identifies the unit's timing (a cache key part)."""
        return {
            "unit": self.kind,
            "width": self.width,
            "pixels": self.pixels,
            "in_width": self.in_width,
            "mlp_ratio": self.mlp_ratio,
            "flags": dict(self.flags),
        }


def _macs(u: WorkUnit) -> float:
    P, C, m = float(u.pixels), float(u.width), u.mlp_ratio  # noqa: N806 (the cost formulas' names)
    return {
        # 3x3 stride-2 conv at 4P pixels, depthwise 3x3, 1x1
        "stem": P * C * (4 * 27 + 9 + C),
        # grouped 7x7 stride-2 conv (one input channel per output), 1x1; squeeze-excite is small
        "patch_embed": P * C * (49 + C),
        "rcpe": P * C * 49,
        # depthwise 3x3 mixer, ConvMlp: depthwise 7x7, C -> mC -> C
        "repmixer": P * C * (58 + 2 * m * C),
        # qkv and projection, ConvMlp, scores and weighted sum
        "attention": P * C * (49 + C * (4 + 2 * m)) + 2 * P * P * C,
        # grouped 3x3 (one input channel per output)
        "final_conv": P * C * 9,
        "vit_patch_embed": P * C * 3 * u.flag("patch") ** 2,
        "vit_block": P * C * C * (4 + 2 * m) + 2 * P * P * C,
    }[u.kind]


def work(u: WorkUnit) -> float:
    """The unit's multiply-accumulates (dense and depthwise layers, attention's two matrix
    products) plus its weights: the bulk of how its cost scales, so that what the latency model
    interpolates — milliseconds per unit of work — varies slowly with the unit's size."""
    return _macs(u) + float(u.width * u.width)


def coordinates(u: WorkUnit) -> list[float]:
    """Where a unit sits among its kind's calibration samples: log2 of its pixels (tokens) and
    width, its MLP ratio and its flags. Cost per unit of work changes with these (a GEMM's
    efficiency with its shape, elementwise work with whether the tensor fits the cache), and
    smoothly enough in log space to interpolate between a few calibration samples."""
    return [math.log2(max(u.pixels, 1)), math.log2(max(u.width, 1)), u.mlp_ratio, *(v for _, v in sorted(u.flags))]


def _hybrid_units(spec: HybridEncoderSpec, resolution: int) -> list[WorkUnit]:
    side = resolution // STEM_STRIDE
    width = spec.stages[0].width
    units = [WorkUnit("stem", width, side * side, in_width=3)]
    layernorm = 1.0 if spec.attention_norm == "layernorm" else 0.0
    for stage in spec.stages:
        if stage.downsample:
            side //= 2
            flags = (("act", float(spec.lkc_use_act)), ("se", float(stage.se_downsample)))
            units.append(WorkUnit("patch_embed", stage.width, side * side, in_width=width, flags=flags))
        width = stage.width
        if stage.pos_enc == "rcpe":
            units.append(WorkUnit("rcpe", width, side * side, in_width=width))
        flags = (("layernorm", layernorm),) if stage.mixer == "attention" else ()
        block = WorkUnit(stage.mixer, width, side * side, in_width=width, mlp_ratio=stage.mlp_ratio, flags=flags)
        units += [block] * stage.depth
    units.append(WorkUnit("final_conv", spec.feature_width, side * side, in_width=width))
    return units


def _vit_units(spec: ViTSpec, resolution: int) -> list[WorkUnit]:
    patches = spec.tokens(resolution)
    tokens = patches + int(spec.class_token)
    embed = WorkUnit("vit_patch_embed", spec.width, patches, in_width=3, flags=(("patch", float(spec.patch)),))
    block = WorkUnit("vit_block", spec.width, tokens, in_width=spec.width, mlp_ratio=spec.mlp_ratio)
    return [embed] + [block] * spec.blocks_run


#: encoder kinds the latency model knows how to decompose
UNIT_RULES: dict[str, Callable[..., list[WorkUnit]]] = {"hybrid": _hybrid_units, "vit": _vit_units}


def work_units(spec: EncoderSpec, resolution: int) -> list[WorkUnit]:
    """The spec's units in forward order (validated: the resolution must fit the stride)."""
    if spec.kind not in UNIT_RULES:
        raise SpecError(
            "device.latency",
            f"the latency model has no decomposition for {spec.kind!r} encoders ({spec.name}); "
            f"it knows {', '.join(UNIT_RULES)}: use device.latency=measured",
        )
    spec.tokens(resolution)
    return UNIT_RULES[spec.kind](spec, resolution)


#: encoder kinds whose forward pass is their units in order and then the tokens read-out (a hybrid:
#: stem, stages, final conv), so an exporting runtime's whole-encoder graph can be composed from the
#: unit exports; a ViT adds its class token and position table outside any unit
UNITS_ARE_FORWARD = frozenset({"hybrid"})


def unit_modules(backbone: nn.Module, kind: str) -> list[nn.Module]:
    """The modules of a built backbone that :func:`work_units` describes, in the same order."""
    if kind == "vit":
        return [backbone.patch_embed, *backbone.blocks]
    modules: list[nn.Module] = [backbone.stem]
    for stage in backbone.stages:
        if not isinstance(stage.downsample, nn.Identity):
            modules.append(stage.downsample)
        if not isinstance(stage.pos_emb, nn.Identity):
            modules.append(stage.pos_emb)
        modules += list(stage.blocks)
    modules.append(backbone.final_conv)
    return modules
