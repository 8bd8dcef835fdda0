"""Named encoder specs: the paper's three encoders, the FastViT family, tiny test variants.

Each preset is data (a spec), mirroring timm's ``fastvit_*`` / ``vit_*`` registrations so the
built modules match timm's parameter shapes exactly (tested). Sources: FastVLM (arXiv
2412.13303) Sec. 3-4, timm ``fastvit.py`` / ``vision_transformer.py``
(``fastvit_mci2`` / ``fastvit_mci3`` / ``vit_large_patch14_clip_336``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastvitsearch.spec import (
    ConvNeXtSpec,
    EncoderSpec,
    HybridEncoderSpec,
    SpecError,
    StageSpec,
    TimmSpec,
    ViTSpec,
    spec_from_dict,
)


@dataclass(frozen=True)
class Preset:
    """A spec plus the facts a user needs to pick it: timm twin and the paper's resolution."""

    spec: EncoderSpec
    family: str
    timm_model: str | None = None
    paper_resolution: int | None = None


def _rep(depth: int, width: int, mlp: float, downsample: bool = True, se: bool = False) -> StageSpec:
    return StageSpec(depth, width, "repmixer", mlp, "none", downsample, se)


def _attn(depth: int, width: int, mlp: float, se: bool = False) -> StageSpec:
    return StageSpec(depth, width, "attention", mlp, "rcpe", True, se)


def _fastvit_sa(name: str, depths: tuple[int, ...], widths: tuple[int, ...]) -> HybridEncoderSpec:
    """timm's FastViT SA/MA variants: 3 RepMixer stages, attention in stage 4, MLP ratio 4."""
    stages = [_rep(d, w, 4.0, downsample=i > 0) for i, (d, w) in enumerate(zip(depths[:3], widths[:3], strict=True))]
    return HybridEncoderSpec(name, (*stages, _attn(depths[3], widths[3], 4.0)))


def _mci(name: str, depths: tuple[int, ...], base_width: int) -> HybridEncoderSpec:
    """timm's 5-stage MCi3 (FastViTHD) / MCi4: 3 RepMixer stages, 2 attention stages, widths doubling,
    MLP ratio 4, LayerNorm in attention, no stem scale branch, activated large-kernel convs."""
    widths = [base_width * 2**i for i in range(5)]
    stages = [_rep(d, w, 4.0, downsample=i > 0) for i, (d, w) in enumerate(zip(depths[:3], widths[:3], strict=True))]
    stages += [_attn(d, w, 4.0) for d, w in zip(depths[3:], widths[3:], strict=True)]
    return HybridEncoderSpec(
        name, tuple(stages), expansion_ratio=2.0, attention_norm="layernorm", stem_scale_branch=False, lkc_use_act=True
    )


_PRESETS: dict[str, Preset] = {}


def register_preset(name: str, preset: Preset) -> None:
    if name in _PRESETS:
        raise ValueError(f"preset {name!r} is already registered")
    _PRESETS[name] = preset


def get_preset(name: str) -> Preset:
    try:
        return _PRESETS[name]
    except KeyError:
        raise SpecError("encoder", f"unknown preset {name!r}; known presets: {', '.join(sorted(_PRESETS))}") from None


def get_spec(name: str) -> EncoderSpec:
    return get_preset(name).spec


def preset_names(include_tiny: bool = True) -> list[str]:
    return sorted(n for n, p in _PRESETS.items() if include_tiny or p.family != "tiny")


# --- the paper's three encoders ----------------------------------------------------------------
register_preset(
    "fastvithd",
    Preset(
        _mci("fastvithd", (2, 12, 24, 4, 2), 96), family="FastViTHD", timm_model="fastvit_mci3", paper_resolution=1024
    ),
)
register_preset(
    "fastvit",
    Preset(
        HybridEncoderSpec(
            "fastvit",
            (
                _rep(4, 80, 3.0, downsample=False),
                _rep(12, 160, 3.0),
                _rep(24, 320, 3.0, se=True),
                _attn(4, 640, 3.0, se=True),
            ),
            lkc_use_act=True,
        ),
        family="FastViT",
        timm_model="fastvit_mci2",
        paper_resolution=768,
    ),
)
register_preset(
    "vit_l14",
    Preset(
        ViTSpec("vit_l14", patch=14, depth=24, width=1024, heads=16),
        family="ViT-L/14",
        timm_model="vit_large_patch14_clip_336",
        paper_resolution=336,
    ),
)

# --- the FastViT family (timm, 4 stages, stride 32) --------------------------------------------
register_preset(
    "fastvit_t8",
    Preset(
        HybridEncoderSpec(
            "fastvit_t8",
            tuple(
                _rep(d, w, 3.0, downsample=i > 0)
                for i, (d, w) in enumerate(zip((2, 2, 4, 2), (48, 96, 192, 384), strict=True))
            ),
        ),
        family="FastViT",
        timm_model="fastvit_t8",
    ),
)
for _name, _depths, _widths in (
    ("fastvit_sa12", (2, 2, 6, 2), (64, 128, 256, 512)),
    ("fastvit_sa24", (4, 4, 12, 4), (64, 128, 256, 512)),
    ("fastvit_sa36", (6, 6, 18, 6), (64, 128, 256, 512)),
    ("fastvit_ma36", (6, 6, 18, 6), (76, 152, 304, 608)),
):
    register_preset(
        _name,
        Preset(
            _fastvit_sa(_name, _depths, _widths),
            family="FastViT",
            timm_model=_name,
        ),
    )

register_preset(
    "fastvit_mci4",
    Preset(
        _mci("fastvit_mci4", (2, 12, 24, 4, 4), 128),
        family="FastViTHD",
        timm_model="fastvit_mci4",
        paper_resolution=1024,
    ),
)

# --- the paper's competitors, as timm defines them (kind "timm": the token rule is data, checked
# against timm in the tests; paper_claims.md lists the configurations) -----------------------------
for _name, _spec, _family, _resolution in (
    ("siglip_so400m", TimmSpec("siglip_so400m", "vit_so400m_patch14_siglip_384", 14, 1152), "SigLIP-SO400M", 384),
    ("vitamin_large", TimmSpec("vitamin_large", "vitamin_large_384", 16, 1024), "ViTamin", 384),
):
    register_preset(_name, Preset(_spec, family=_family, timm_model=_spec.model, paper_resolution=_resolution))

# FastViT-Naive (the paper's Sec. B.1 / Fig. 3 ablation of the number of stages): FastViTHD's mixers and
# options in 4 stages, widths 128..1024, depths (2, 12, 16, 6), MLP ratio 3, about FastViTHD's size
register_preset(
    "fastvit_naive",
    Preset(
        HybridEncoderSpec(
            "fastvit_naive",
            (_rep(2, 128, 3.0, downsample=False), _rep(12, 256, 3.0), _rep(16, 512, 3.0), _attn(6, 1024, 3.0)),
            expansion_ratio=2.0,
            attention_norm="layernorm",
            stem_scale_branch=False,
            lkc_use_act=True,
        ),
        family="FastViT-Naive",
        paper_resolution=1024,
    ),
)

# ConvNeXt-L / -XXL (the paper's Table 3 / Table 6 competitors) as ConvNeXt stage lists, so a search
# can vary them like the hybrid; parameter shapes equal timm's convnext_large / convnext_xxlarge (tested)
for _name, _depths, _widths, _resolution in (
    ("convnext_large", (3, 3, 27, 3), (192, 384, 768, 1536), 768),
    ("convnext_xxlarge", (3, 4, 30, 3), (384, 768, 1536, 3072), 1024),
):
    register_preset(
        _name,
        Preset(
            ConvNeXtSpec(_name, _depths, _widths), family="ConvNeXt", timm_model=_name, paper_resolution=_resolution
        ),
    )

# ConvLLaVA (Ge et al., arXiv 2405.15738): ConvNeXt-L plus a fifth stage (width 3072, depth 6), stride 64;
# the paper's Table 6 compares it at 768 and 1024 px (144 and 256 tokens)
register_preset(
    "convllava",
    Preset(
        ConvNeXtSpec("convllava", (3, 3, 27, 3, 6), (192, 384, 768, 1536, 3072)),
        family="ConvNeXt",
        paper_resolution=1024,
    ),
)

# --- tiny variants: same structure, seconds to build and run on a CPU --------------------------
register_preset(
    "tiny_fastvit",
    Preset(
        HybridEncoderSpec(
            "tiny_fastvit",
            (_rep(1, 16, 2.0, downsample=False), _rep(1, 32, 2.0), _rep(1, 64, 2.0), _attn(1, 128, 2.0)),
        ),
        family="tiny",
        paper_resolution=256,
    ),
)
register_preset(
    "tiny_fastvithd",
    Preset(
        HybridEncoderSpec(
            "tiny_fastvithd",
            (
                _rep(1, 16, 2.0, downsample=False),
                _rep(1, 32, 2.0),
                _rep(1, 64, 2.0),
                _attn(1, 64, 2.0),
                _attn(1, 128, 2.0),
            ),
            attention_norm="layernorm",
            stem_scale_branch=False,
            lkc_use_act=True,
        ),
        family="tiny",
        paper_resolution=256,
    ),
)
register_preset(
    "tiny_vit",
    Preset(
        ViTSpec("tiny_vit", patch=16, depth=2, width=64, heads=2),
        family="tiny",
        paper_resolution=64,
    ),
)


#: the keys of each ``encoder`` config form, told apart by the key that selects the form
ENCODER_FORMS = {
    "spec": {"spec"},
    "preset": {"preset", "select_layer"},
    "_target_": {"_target_", "kwargs", "name"},
    "model": {"model", "checkpoint"},
}


def _check_encoder_keys(value: Mapping[str, Any]) -> None:
    """Refuse a key the encoder's form does not read (``+encoder.select_layr=-2`` would otherwise be
    ignored and the sweep would time the last layer)."""
    form = next((key for key in ENCODER_FORMS if value.get(key) is not None), None)
    if form is None:
        return  # resolve_encoder says what forms there are
    unknown = sorted(set(value) - ENCODER_FORMS[form])
    if unknown:
        keys = sorted(ENCODER_FORMS[form])
        raise SpecError(f"encoder.{unknown[0]}", f"not read for an encoder given by {form!r}; its keys: {keys}")


def resolve_encoder(value: str | Mapping[str, Any] | EncoderSpec) -> EncoderSpec:
    """Turn a config value into a spec: a preset name, ``{preset: name}`` or ``{spec: {...}}``."""
    if isinstance(value, EncoderSpec):
        return value
    if isinstance(value, str):
        return get_spec(value)
    if isinstance(value, Mapping):
        _check_encoder_keys(value)
        if "spec" in value and value["spec"] is not None:
            return spec_from_dict(dict(value["spec"]))
        if "preset" in value:
            spec = get_spec(value["preset"])
            layer = value.get("select_layer")
            if layer is None:
                return spec
            if not hasattr(spec, "select_layer"):
                raise SpecError(
                    "encoder.select_layer", f"{value['preset']} is a {spec.kind} encoder; only ViTs have one"
                )
            return dataclasses.replace(spec, name=f"{spec.name}_l{layer}", select_layer=int(layer))
        if value.get("_target_"):  # any nn.Module factory: its token rule is read from the module
            from fastvitsearch.build import module_spec

            kwargs = dict(value.get("kwargs") or {})
            return module_spec(str(value["_target_"]), kwargs, value.get("name"))
        if "model" in value:  # any timm model: its token rule is read from timm (torch side, on demand)
            from fastvitsearch.build import timm_spec

            return timm_spec(value["model"], value.get("checkpoint"))
    raise SpecError(
        "encoder",
        f"expected a preset name, {{preset: name}}, {{spec: ...}}, {{model: <timm name>}} or "
        f"{{_target_: <factory>, kwargs: {{...}}}}, got {value!r}",
    )


def default_resolution(value: str | Mapping[str, Any] | EncoderSpec) -> int:
    """The paper's resolution for a preset; custom specs must say their resolution."""
    name = value if isinstance(value, str) else (value.get("preset") if isinstance(value, Mapping) else None)
    resolution = get_preset(name).paper_resolution if name else None
    if resolution is None:
        raise SpecError("resolution", "required: this encoder has no default resolution")
    return resolution


def encoder_label(value: str | Mapping[str, Any] | EncoderSpec, spec: EncoderSpec) -> str:
    """The name a config value gives its encoder in tables: the preset's, else the spec's."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and value.get("preset") and not value.get("spec"):
        return spec.name if value.get("select_layer") is not None else str(value["preset"])
    return spec.name
