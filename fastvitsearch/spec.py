"""Encoder architectures as plain, frozen data.

A spec says *what* an encoder is (stages, depths, widths, token mixers, strides); it knows
nothing of torch. Everything that can be derived from a spec — output stride, visual tokens
at a resolution, feature width, a content hash used as a cache key — is a function of it and
is never stored twice. Validation happens at construction and every error names the field
that is wrong, so a bad Hydra override or search-space sample fails with a readable message.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, ClassVar

MIXERS = ("repmixer", "attention")
POS_ENCODINGS = ("none", "rcpe")
ATTENTION_NORMS = ("batchnorm", "layernorm")
#: timm's FastViT ``Attention`` hard-codes 32 channels per head.
ATTENTION_HEAD_DIM = 32
#: the FastViT convolutional stem downsamples by 4 (two stride-2 MobileOne blocks).
STEM_STRIDE = 4
MIN_STAGES, MAX_STAGES = 1, 7


class SpecError(ValueError):
    """An invalid spec or (spec, resolution) pair; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message  # without the field: to re-raise it under the key the user set
        super().__init__(f"{field}: {message}")


def _require_positive(field: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise SpecError(field, f"must be a positive number, got {value!r}")


def _require_positive_int(field: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SpecError(field, f"must be a positive integer, got {value!r}")


def _content_hash(kind: str, payload: dict[str, Any]) -> str:
    """Stable 16-hex-digit hash of the architecture (names excluded, so renames share caches)."""
    canonical = json.dumps({"kind": kind, **payload}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def check_resolution(resolution: int, stride: int, field: str = "resolution") -> None:
    """Raise a :class:`SpecError` unless ``resolution`` is a positive multiple of ``stride``.

    The message proposes the nearest valid resolutions, because "not divisible" alone leaves
    the user to do the arithmetic.
    """
    _require_positive_int(field, resolution)
    if resolution % stride:
        lower = (resolution // stride) * stride
        options = [r for r in (lower, lower + stride) if r > 0]
        raise SpecError(
            field,
            f"{resolution} px is not a multiple of the output stride {stride}; "
            f"use {' or '.join(str(r) for r in options)}",
        )


class EncoderSpec:
    """What every encoder kind shares: tokens from the output stride, plain data, a content hash.

    A kind (hybrid, ViT, …) is a frozen dataclass deriving from this with a ``kind`` name, an
    ``output_stride`` and ``feature_width``, and :meth:`scaled` (the thinner, shallower copy the
    accuracy proxy trains); :func:`register_kind` makes it readable from YAML.
    """

    kind: ClassVar[str]
    name: str

    @property
    def output_stride(self) -> int:
        raise NotImplementedError

    def grid(self, resolution: int) -> int:
        """Token grid side at ``resolution`` (validated: the resolution must fit the stride)."""
        check_resolution(resolution, self.output_stride)
        return resolution // self.output_stride

    def tokens(self, resolution: int) -> int:
        """Visual tokens the LLM sees (a ViT's class token excluded, as LLaVA drops it)."""
        return self.grid(resolution) ** 2

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}

    @property
    def content_hash(self) -> str:
        payload = dataclasses.asdict(self)
        payload.pop("name")
        return _content_hash(self.kind, payload)

    def scaled(self, width_scale: float, depth_scale: float) -> EncoderSpec:
        raise NotImplementedError


def _scaled_depth(depth: int, depth_scale: float) -> int:
    return max(1, round(depth * depth_scale))


@dataclass(frozen=True)
class StageSpec:
    """One stage of a hybrid (FastViT-style) encoder.

    ``downsample`` puts a stride-2 patch embedding (7x7 large-kernel conv + 1x1) in front of
    the stage; a width change needs one. ``pos_enc="rcpe"`` adds timm's 7x7 depthwise
    conditional positional encoding before the blocks (used before attention stages).
    """

    depth: int
    width: int
    mixer: str = "repmixer"
    mlp_ratio: float = 3.0
    pos_enc: str = "none"
    downsample: bool = True
    se_downsample: bool = False

    def validate(self, prefix: str) -> None:
        _require_positive_int(f"{prefix}.depth", self.depth)
        _require_positive_int(f"{prefix}.width", self.width)
        _require_positive(f"{prefix}.mlp_ratio", self.mlp_ratio)
        if self.mixer not in MIXERS:
            raise SpecError(f"{prefix}.mixer", f"unknown token mixer {self.mixer!r}; one of {MIXERS}")
        if self.pos_enc not in POS_ENCODINGS:
            raise SpecError(
                f"{prefix}.pos_enc", f"unknown positional encoding {self.pos_enc!r}; one of {POS_ENCODINGS}"
            )
        if self.mixer == "attention" and self.width % ATTENTION_HEAD_DIM:
            raise SpecError(
                f"{prefix}.width",
                f"{self.width} is not divisible by the attention head dim {ATTENTION_HEAD_DIM} "
                "(fixed in timm's FastViT attention)",
            )


@dataclass(frozen=True)
class HybridEncoderSpec(EncoderSpec):
    """A FastViT-family encoder: conv stem, stages of RepMixer or attention blocks, final conv.

    The final expansion conv (``final_conv`` in timm, ``conv_exp`` in Apple's code) widens the
    last stage by ``expansion_ratio``; its output is what the VLM projector consumes.
    """

    name: str
    stages: tuple[StageSpec, ...]
    expansion_ratio: float = 2.0
    attention_norm: str = "batchnorm"
    stem_scale_branch: bool = True
    lkc_use_act: bool = False

    kind: ClassVar[str] = "hybrid"

    def __post_init__(self) -> None:
        # Accept lists (from YAML) but store tuples so the spec stays hashable and frozen.
        stages = tuple(s if isinstance(s, StageSpec) else StageSpec(**dict(s)) for s in self.stages)
        object.__setattr__(self, "stages", stages)
        if not MIN_STAGES <= len(stages) <= MAX_STAGES:
            raise SpecError("stages", f"needs {MIN_STAGES} to {MAX_STAGES} stages, got {len(stages)}")
        previous_width = stages[0].width
        for i, stage in enumerate(stages):
            stage.validate(f"stages[{i}]")
            if stage.width != previous_width and not stage.downsample:
                raise SpecError(
                    f"stages[{i}].downsample",
                    f"width changes {previous_width}->{stage.width} but downsample is False; "
                    "only a patch embedding can change the width",
                )
            previous_width = stage.width
        _require_positive("expansion_ratio", self.expansion_ratio)
        if self.attention_norm not in ATTENTION_NORMS:
            raise SpecError("attention_norm", f"unknown norm {self.attention_norm!r}; one of {ATTENTION_NORMS}")

    @property
    def downsampling_depth(self) -> int:
        """Number of stride-2 stages after the stem; stride 32 vs 64 differ by one."""
        return sum(s.downsample for s in self.stages)

    @property
    def output_stride(self) -> int:
        return STEM_STRIDE * 2**self.downsampling_depth

    @property
    def feature_width(self) -> int:
        return int(self.stages[-1].width * self.expansion_ratio)

    def scaled(self, width_scale: float, depth_scale: float) -> HybridEncoderSpec:
        """Same stages, mixers and strides, thinner and shallower: depths x ``depth_scale`` (at least
        1); the first width x ``width_scale`` (a multiple of 8), each later width the previous one
        times the original's ratio, so every patch embedding still divides (timm's 7x7 conv is
        grouped by its input channels), and attention widths a multiple of the head dim."""
        stages = []
        for i, s in enumerate(self.stages):
            if i == 0:
                width = max(8, int(round(s.width * width_scale / 8)) * 8)
            else:
                ratio = s.width / self.stages[i - 1].width
                previous = stages[-1].width
                width = (
                    previous * int(ratio) if ratio == int(ratio) else max(8, int(round(s.width * width_scale / 8)) * 8)
                )
            if s.mixer == "attention" and width % ATTENTION_HEAD_DIM:
                width = math.lcm(width, ATTENTION_HEAD_DIM)
            stages.append(dataclasses.replace(s, depth=_scaled_depth(s.depth, depth_scale), width=width))
        return dataclasses.replace(self, name=f"{self.name}_proxy", stages=tuple(stages))


class PatchTokenRule:
    """Kinds whose token rule is ``patch`` pixels per token side and ``width`` feature channels."""

    patch: int
    width: int

    @property
    def output_stride(self) -> int:
        return self.patch

    @property
    def feature_width(self) -> int:
        return self.width


class ReadTokenRule(PatchTokenRule):
    """Kinds whose token rule is read from a built model (timm's, the user's): a feature map needs a
    multiple of its reduction, a token sequence takes any resolution of at least one patch."""

    layout: str

    def grid(self, resolution: int) -> int:
        if self.layout == "map":
            return super().grid(resolution)  # type: ignore[misc]
        _require_positive_int("resolution", resolution)
        if resolution < self.patch:
            raise SpecError("resolution", f"{resolution} px is smaller than one {self.patch}-px patch")
        return resolution // self.patch


@dataclass(frozen=True)
class ViTSpec(PatchTokenRule, EncoderSpec):
    """A plain ViT (CLIP-style: pre-norm, class token); tokens exclude the class token."""

    name: str
    patch: int
    depth: int
    width: int
    heads: int
    mlp_ratio: float = 4.0
    class_token: bool = True
    pre_norm: bool = True
    #: which block's output the VLM reads, as LLaVA's ``mm_vision_select_layer``: -1 = the last
    #: (then the final norm), -2 = the penultimate block's raw output (LLaVA-1.5), so the blocks
    #: after it are never run, counted or timed
    select_layer: int = -1

    kind: ClassVar[str] = "vit"

    def __post_init__(self) -> None:
        for field in ("patch", "depth", "width", "heads"):
            _require_positive_int(field, getattr(self, field))
        _require_positive("mlp_ratio", self.mlp_ratio)
        if self.width % self.heads:
            raise SpecError("width", f"{self.width} is not divisible by heads={self.heads} (head dim must be whole)")
        if isinstance(self.select_layer, bool) or not isinstance(self.select_layer, int):
            raise SpecError("select_layer", f"must be a negative block index, got {self.select_layer!r}")
        if not -self.depth <= self.select_layer <= -1:
            raise SpecError(
                "select_layer", f"must be in [-{self.depth}, -1] for depth {self.depth}, got {self.select_layer}"
            )

    @property
    def blocks_run(self) -> int:
        """Blocks the VLM's features need (all of them for ``select_layer=-1``)."""
        return self.depth + 1 + self.select_layer

    @property
    def content_hash(self) -> str:
        payload = dataclasses.asdict(self)
        payload.pop("name")
        if payload["select_layer"] == -1:  # the default keeps the hash specs had before the option
            payload.pop("select_layer")
        return _content_hash(self.kind, payload)

    @property
    def downsampling_depth(self) -> int:
        """A ViT downsamples once, by the patch size; reported for table symmetry."""
        return 1

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    def scaled(self, width_scale: float, depth_scale: float) -> ViTSpec:
        """Same patch and layout; heads x ``width_scale`` (at least 1, head dim at least 16)."""
        heads = max(1, round(self.heads * width_scale))
        width = max(heads * 16, int(round(self.width * width_scale / heads)) * heads)
        return dataclasses.replace(
            self, name=f"{self.name}_proxy", depth=_scaled_depth(self.depth, depth_scale), width=width, heads=heads
        )


@dataclass(frozen=True)
class TimmSpec(ReadTokenRule, EncoderSpec):
    """Any timm model by name (random weights, or the user's ``checkpoint`` file).

    Its token rule is data read from the model once, when the spec is made
    (:func:`fastvitsearch.build.timm_spec`): ``patch`` = pixels per token side (a ViT's patch, a
    CNN's final reduction), ``width`` = feature channels, ``prefix_tokens`` = class/register
    tokens the VLM drops. Token-sequence models (``layout="tokens"``) take any resolution of at
    least one patch, as timm and LLaVA-OneVision do (SigLIP at 384 px: 27x27 patches, the last
    6 px unused); feature-map models need a multiple of their reduction.
    """

    name: str
    model: str
    patch: int
    width: int
    layout: str = "tokens"
    prefix_tokens: int = 0
    checkpoint: str | None = None

    kind: ClassVar[str] = "timm"

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise SpecError("encoder.model", f"must name a timm model, got {self.model!r}")
        for field in ("patch", "width"):
            _require_positive_int(field, getattr(self, field))
        if self.layout not in ("tokens", "map"):
            raise SpecError("layout", f"must be 'tokens' or 'map', got {self.layout!r}")

    def scaled(self, width_scale: float, depth_scale: float) -> TimmSpec:
        raise SpecError("accuracy.proxy", f"the proxy cannot scale a timm model ({self.model}); use a hybrid spec")


@dataclass(frozen=True)
class ConvNeXtSpec(EncoderSpec):
    """A ConvNeXt from stage lists: timm's four stages (stem stride 4, then x2 per stage) plus, for a
    fifth entry, one more stride-2 ConvNeXt stage — ConvLLaVA's encoder (arXiv 2405.15738): ConvNeXt-L
    with a 5th stage of width 3072 and depth 6, output stride 64 (1024 px -> 256 tokens)."""

    name: str
    depths: tuple[int, ...]
    widths: tuple[int, ...]

    kind: ClassVar[str] = "convnext"

    def __post_init__(self) -> None:
        object.__setattr__(self, "depths", tuple(self.depths))
        object.__setattr__(self, "widths", tuple(self.widths))
        if len(self.depths) not in (4, 5) or len(self.widths) != len(self.depths):
            raise SpecError("depths", f"needs 4 or 5 stages with one width each, got {self.depths} / {self.widths}")
        for i, (depth, width) in enumerate(zip(self.depths, self.widths, strict=True)):
            _require_positive_int(f"depths[{i}]", depth)
            _require_positive_int(f"widths[{i}]", width)

    @property
    def downsampling_depth(self) -> int:
        return len(self.depths) - 1

    @property
    def output_stride(self) -> int:
        return STEM_STRIDE * 2**self.downsampling_depth

    @property
    def feature_width(self) -> int:
        return self.widths[-1]

    def scaled(self, width_scale: float, depth_scale: float) -> ConvNeXtSpec:
        """Same stages and strides; widths x ``width_scale`` (multiples of 8), depths x ``depth_scale``."""
        return dataclasses.replace(
            self,
            name=f"{self.name}_proxy",
            depths=tuple(_scaled_depth(d, depth_scale) for d in self.depths),
            widths=tuple(max(8, int(round(w * width_scale / 8)) * 8) for w in self.widths),
        )


@dataclass(frozen=True)
class ModuleSpec(ReadTokenRule, EncoderSpec):
    """Any ``nn.Module`` factory the user has, by import path (Hydra's ``_target_``) and keyword
    arguments; its token rule (pixels per token, feature width, layout, prefix tokens) is read from
    the module once, on the meta device (:func:`fastvitsearch.build.module_spec`). The module's
    ``forward_features`` (else ``forward``) must return a map ``[B, C, H, W]`` or tokens ``[B, N, C]``."""

    name: str
    target: str
    kwargs: dict[str, Any]
    patch: int
    width: int
    layout: str = "map"
    prefix_tokens: int = 0

    kind: ClassVar[str] = "module"

    def __post_init__(self) -> None:
        if not isinstance(self.target, str) or "." not in self.target:
            raise SpecError(
                "encoder._target_", f"must be an import path like 'pkg.module.factory', got {self.target!r}"
            )
        for field in ("patch", "width"):
            _require_positive_int(field, getattr(self, field))
        if self.layout not in ("tokens", "map"):
            raise SpecError("layout", f"must be 'tokens' or 'map', got {self.layout!r}")

    def __hash__(self) -> int:  # kwargs is a dict: hash the content instead
        return hash(self.content_hash)

    def scaled(self, width_scale: float, depth_scale: float) -> ModuleSpec:
        raise SpecError("accuracy.proxy", f"the proxy cannot scale your module ({self.target}); use a hybrid spec")


#: every encoder kind by its ``kind`` name: a new kind is a spec class registered here, a builder
#: in ``build.BUILDERS`` and its presets
SPEC_KINDS: dict[str, type[EncoderSpec]] = {}


def register_kind(cls: type[EncoderSpec]) -> type[EncoderSpec]:
    if cls.kind in SPEC_KINDS:
        raise ValueError(f"encoder kind {cls.kind!r} is already registered")
    SPEC_KINDS[cls.kind] = cls
    return cls


register_kind(HybridEncoderSpec)
register_kind(ViTSpec)
register_kind(TimmSpec)
register_kind(ConvNeXtSpec)
register_kind(ModuleSpec)


def spec_from_dict(data: dict[str, Any]) -> EncoderSpec:
    """Build a spec from plain data (YAML/JSON), naming the field on unknown keys."""
    data = dict(data)
    kind = data.pop("kind", "hybrid")
    if kind not in SPEC_KINDS:
        raise SpecError("kind", f"unknown encoder kind {kind!r}; one of {tuple(SPEC_KINDS)}")
    cls = SPEC_KINDS[kind]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SpecError(unknown[0], f"unknown field for a {kind} encoder; known: {sorted(known)}")
    data.setdefault("name", "custom")
    if cls is HybridEncoderSpec:
        stages = data.get("stages")
        if not isinstance(stages, list | tuple):
            raise SpecError("stages", f"must be a list of stage mappings, got {stages!r}")
        stage_fields = {f.name for f in dataclasses.fields(StageSpec)}
        parsed = []
        for i, stage in enumerate(stages):
            if isinstance(stage, StageSpec):
                parsed.append(stage)
                continue
            extra = sorted(set(stage) - stage_fields)
            if extra:
                raise SpecError(f"stages[{i}].{extra[0]}", f"unknown stage field; known: {sorted(stage_fields)}")
            missing = sorted({"depth", "width"} - set(stage))
            if missing:
                raise SpecError(f"stages[{i}].{missing[0]}", "is required")
            parsed.append(StageSpec(**stage))
        data["stages"] = tuple(parsed)
    try:
        return cls(**data)
    except TypeError as err:  # a missing required field
        raise SpecError(kind, str(err)) from err
