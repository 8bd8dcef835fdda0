"""An inference-form encoder as a list of work units: the kinds of work its builder uses.

A unit is one module of the reparameterized encoder that the latency model times and predicts
as a whole (a stem, a patch embedding, a RepCPE, a RepMixer block, an attention block, the final
conv; a ViT's patch embedding and transformer blocks) with the dimensions that set its cost.
:func:`work_units` derives the list from a spec alone, in forward order, with no torch module
built: that is what makes a prediction take microseconds instead of the ~0.3 s a meta-device build
costs. :func:`unit_modules` finds the same units, in the same order, in a built encoder, so the
calibration can time each one in isolation (a test checks the two lists agree).

Each kind's cost features are the terms of its operation count that scale differently: per
pixel-channel work (depthwise convs, norms, activations, residual adds), dense channel mixing
(1x1 convs, linear layers: ``P*C*C``), and attention's ``P*P*C``. A kind's latency is a
non-negative combination of its features plus a fixed cost (:mod:`~fastvitsearch.profile.latency_predictor`).
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

    def features(self) -> list[float]:
        return FEATURES[self.kind][1](self)

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


#: knots of the working-set basis, log2 bytes: 256 KiB to 256 MiB, every 4x
MEMORY_KNOTS = (18, 20, 22, 24, 26, 28)


def memory_basis(elements: float, bytes_per_element: int = 4) -> list[float]:
    """Hat functions over log2(working-set bytes) at :data:`MEMORY_KNOTS` (they sum to 1): a
    per-element cost that is any piecewise-linear curve of the working set, fitted per kind.
    Per-element work slows ~3x here between a tensor that fits the L2 cache and one far beyond
    the last-level cache (a FastViT stem at 1024 px costs 3x its 256-px cost per pixel)."""
    x = min(max(math.log2(max(elements * bytes_per_element, 1.0)), MEMORY_KNOTS[0]), MEMORY_KNOTS[-1])
    weights = []
    for i, knot in enumerate(MEMORY_KNOTS):
        left = MEMORY_KNOTS[i - 1] if i else knot
        right = MEMORY_KNOTS[i + 1] if i + 1 < len(MEMORY_KNOTS) else knot
        if left < x <= knot:
            weights.append((x - left) / (knot - left))
        elif knot <= x < right:
            weights.append((right - x) / (right - knot))
        else:
            weights.append(1.0 if x == knot else 0.0)
    return weights


def _pc(u: WorkUnit) -> float:
    return float(u.pixels * u.width)


def _memory(u: WorkUnit, expansion: float) -> list[float]:
    """Per-element work split into the in-cache and the out-of-cache part of its largest tensor
    (``expansion`` x the output: the stem's first conv, an MLP's hidden layer)."""
    return [_pc(u) * w for w in memory_basis(_pc(u) * expansion)]


def _attention(u: WorkUnit) -> list[float]:
    m = u.mlp_ratio
    return [
        *_memory(u, max(3.0, m)),
        _pc(u) * u.flag("layernorm"),
        _pc(u) * m,
        _pc(u) * u.width * (4 + 2 * m),
        _pc(u) * u.pixels,
        u.width * u.width * (4 + 2 * m),
    ]


#: kind -> (feature names, features of a unit); the fixed cost is the fit's intercept. ``P``:
#: pixels (tokens), ``C``: width, ``m``: MLP ratio, ``mem``: the out-of-cache share, ``C*C``: weights
MEM = tuple(f"P*C*mem{k}" for k in MEMORY_KNOTS)
FEATURES: dict[str, tuple[tuple[str, ...], Callable[[WorkUnit], list[float]]]] = {
    "stem": ((*MEM, "P*C*C"), lambda u: [*_memory(u, 4.0), _pc(u) * u.width]),
    "patch_embed": (
        (*MEM, "P*C*act", "P*C*se", "P*C*Cin", "Cin*C"),
        lambda u: [
            *_memory(u, 1.0 + 4.0 * u.in_width / u.width),
            _pc(u) * u.flag("act"),
            _pc(u) * u.flag("se"),
            _pc(u) * u.width,
            float(u.width * u.width),
        ],
    ),
    "rcpe": (MEM, lambda u: _memory(u, 2.0)),
    "repmixer": (
        (*MEM, "P*C*m", "P*C*C*m", "C*C*m"),
        lambda u: [
            *_memory(u, u.mlp_ratio),
            _pc(u) * u.mlp_ratio,
            _pc(u) * u.width * u.mlp_ratio,
            u.width * u.width * u.mlp_ratio,
        ],
    ),
    "attention": ((*MEM, "P*C*layernorm", "P*C*m", "P*C*C*(4+2m)", "P*P*C", "C*C*(4+2m)"), _attention),
    "final_conv": ((*MEM, "C*C"), lambda u: [*_memory(u, 1.0), float(u.width * u.width)]),
    "vit_patch_embed": (("P*C", "P*C*p*p"), lambda u: [_pc(u), _pc(u) * u.flag("patch") ** 2]),
    "vit_block": (
        (*MEM, "P*C*m", "P*C*C*(4+2m)", "P*P*C", "C*C*(4+2m)"),
        lambda u: [f for i, f in enumerate(_attention(u)) if i != 2],
    ),
}


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
