"""Spec -> ``nn.Module`` on timm's ``FastVit`` and ``VisionTransformer`` (random weights).

Nothing here re-implements a block: the hybrid builder passes the spec's per-stage lists to
timm's ``FastVit`` constructor (any number of stages), and ViTs go to timm's
``VisionTransformer`` with ``dynamic_img_size=True`` so one module accepts every resolution.
The wrapper's :meth:`VisualEncoder.features` returns what a VLM consumes: ``[B, tokens, width]``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import torch
from timm.layers import LayerNorm, LayerNorm2d
from timm.models.fastvit import FastVit, RepConditionalPosEnc
from timm.models.vision_transformer import VisionTransformer
from timm.utils.model import reparameterize_model
from torch import nn

from fastvitsearch.spec import (
    ConvNeXtSpec,
    EncoderSpec,
    HybridEncoderSpec,
    ModuleSpec,
    SpecError,
    TimmSpec,
    ViTSpec,
)

#: timm's FastViT positional encoding kernel (7x7 depthwise RepCPE).
RCPE_KERNEL = (7, 7)


class VisualEncoder(nn.Module):
    """A timm backbone plus the knowledge of which of its outputs the VLM sees.

    ``reparameterized`` records whether the module is in inference form, so timing code can
    refuse to time a train-form FastViT (whose multi-branch blocks are much slower).
    """

    def __init__(self, spec: EncoderSpec, backbone: nn.Module, reparameterized: bool) -> None:
        super().__init__()
        self.spec = spec
        self.backbone = backbone
        self.reparameterized = reparameterized

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Visual tokens ``[B, tokens, feature_width]`` for a batch ``[B, 3, res, res]``."""
        return BUILDERS[self.spec.kind].tokens(self.spec, self.backbone, self.backbone.forward_features(images))

    forward = features

    def reparameterize(self) -> VisualEncoder:
        """Fold train-time branches (RepMixer, MobileOne, RepCPE) into single convs, in place."""
        if not self.reparameterized:
            reparameterize_model(self.backbone, inplace=True)
            self.reparameterized = True
        return self


def _build_hybrid(spec: HybridEncoderSpec, inference_mode: bool, device, dtype) -> FastVit:
    stages = spec.stages
    norm = partial(LayerNorm2d, eps=1e-5) if spec.attention_norm == "layernorm" else nn.BatchNorm2d
    return FastVit(
        layers=tuple(s.depth for s in stages),
        token_mixers=tuple(s.mixer for s in stages),
        embed_dims=tuple(s.width for s in stages),
        mlp_ratios=tuple(s.mlp_ratio for s in stages),
        downsamples=tuple(s.downsample for s in stages),
        se_downsamples=tuple(s.se_downsample for s in stages),
        pos_embs=tuple(
            partial(RepConditionalPosEnc, spatial_shape=RCPE_KERNEL) if s.pos_enc == "rcpe" else None for s in stages
        ),
        cls_ratio=spec.expansion_ratio,
        lkc_use_act=spec.lkc_use_act,
        stem_use_scale_branch=spec.stem_scale_branch,
        norm_layer=norm,
        num_classes=0,
        global_pool="",
        inference_mode=inference_mode,
        device=device,
        dtype=dtype,
    )


def _build_vit(spec: ViTSpec, resolution: int, dynamic_size: bool, device, dtype) -> VisionTransformer:
    """timm's ViT, truncated after the block ``select_layer`` names (its raw output, no final norm,
    as LLaVA reads ``hidden_states[select_layer]``)."""
    vit = VisionTransformer(
        img_size=resolution,
        patch_size=spec.patch,
        embed_dim=spec.width,
        depth=spec.blocks_run,
        num_heads=spec.heads,
        mlp_ratio=spec.mlp_ratio,
        class_token=spec.class_token,
        pre_norm=spec.pre_norm,
        norm_layer=partial(LayerNorm, eps=1e-5),
        num_classes=0,
        global_pool="",
        dynamic_img_size=dynamic_size,
        device=device,
        dtype=dtype,
    )
    if spec.select_layer != -1:
        vit.norm = nn.Identity()
    return vit


def _fixed_input_size(name: str) -> bool:
    """Whether timm marks the model's input size as fixed at construction (``fixed_input_size``)."""
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    return bool(cfg and cfg.fixed_input_size)


@functools.cache
def _check_fixed_size(name: str, resolution: int) -> None:
    """Refuse, naming ``resolution``, a fixed-size timm model that does not run at ``resolution``
    even when built for it (EfficientFormer's attention biases stay at 7x7 whatever ``img_size``
    says): one forward pass on the meta device, nothing allocated."""
    import timm

    native = int(timm.models.get_pretrained_cfg(name).input_size[-1])
    if resolution == native:
        return
    try:
        with torch.device("meta"):
            try:
                model = _create_timm(name, img_size=resolution)
            except TypeError:
                model = _create_timm(name)
        with torch.no_grad():
            model.eval().forward_features(torch.empty(1, 3, resolution, resolution, device="meta"))
    except SpecError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure inside timm's model at this size
        raise SpecError(
            "resolution",
            f"timm builds {name} for one input size and it does not run at {resolution} px "
            f"({type(err).__name__}); use its own {native} px",
        ) from None


def _create_timm(name: str, **kwargs) -> nn.Module:
    import timm

    if name not in timm.list_models():
        close = timm.list_models(f"*{name.split('_')[0]}*")[:8]
        raise SpecError(
            "encoder.model", f"timm has no model {name!r}" + (f"; e.g. {', '.join(close)}" if close else "")
        )
    try:
        return timm.create_model(name, pretrained=False, num_classes=0, global_pool="", **kwargs)
    except AssertionError:
        # some timm models (38 in timm 1.0.31: DeiT distilled, PiT, CoaT, CrossViT, EfficientViT-MIT, Inception v3)
        # refuse to drop their pooling; the encoder reads forward_features, which never pools
        return timm.create_model(name, pretrained=False, num_classes=0, **kwargs)


@functools.cache
def timm_spec(model: str, checkpoint: str | None = None) -> TimmSpec:
    """A :class:`TimmSpec` for timm's ``model``: its token rule read from the model, built on the
    meta device (no weights, nothing downloaded). ``checkpoint``: a local state-dict file to load
    when the model is built (checked to exist now)."""
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise SpecError("encoder.checkpoint", f"no file at {checkpoint}")
    with torch.device("meta"):
        backbone = _create_timm(model)
    patch_embed = getattr(backbone, "patch_embed", None)
    prefix = int(getattr(backbone, "num_prefix_tokens", 0) or 0)
    if patch_embed is not None and hasattr(patch_embed, "grid_size") and hasattr(backbone, "num_prefix_tokens"):
        # pixels per token: the patch of a plain ViT, the stem's stride of a hybrid (ViTamin: 16)
        patch, layout = int(patch_embed.img_size[0]) // int(patch_embed.grid_size[0]), "tokens"
    else:
        patch, layout = int(backbone.feature_info[-1]["reduction"]), "map"
    return _checked_token_rule(
        TimmSpec(model, model, patch, int(backbone.num_features), layout, prefix, checkpoint), backbone
    )


#: at most this many leading tokens beyond the grid are read as undeclared class/register tokens
MAX_PREFIX_TOKENS = 16


def timm_probe_resolution(spec: TimmSpec, input_size: tuple[int, ...] | None) -> int:
    """The model's own input size (224 px where timm gives none), rounded to a multiple of the
    reduction for a feature map: the resolution its token rule is checked at."""
    resolution = int((input_size or (3, 224, 224))[-1])
    return spec.patch * max(1, round(resolution / spec.patch)) if spec.layout == "map" else resolution


def _checked_token_rule(spec: TimmSpec, backbone: nn.Module) -> TimmSpec:
    """``spec`` once one forward pass on the meta device, at the model's own input size, gives the
    tokens its rule says; class tokens the model does not declare (VOLO, CoaT-Lite) are added to
    ``prefix_tokens``. A model whose ``forward_features`` is not one token grid (PiT: its class
    tokens only; CoaT, CrossViT: a list) is refused naming it, instead of recording a wrong
    token count. A model that does not run on the meta device is left to the real build."""
    resolution = timm_probe_resolution(spec, (getattr(backbone, "pretrained_cfg", None) or {}).get("input_size"))
    try:
        if spec.layout == "map" and _fixed_input_size(spec.model):  # its size rounded to the reduction
            backbone = _build_timm(dataclasses.replace(spec, checkpoint=None), resolution, False, "meta", None)
        with torch.no_grad():
            out = backbone.eval().forward_features(torch.empty(1, 3, resolution, resolution, device="meta"))
    except Exception:  # noqa: BLE001 - only a check: the real build reports what fails there
        return spec
    wrap = "; wrap it as encoder=module with a forward that returns one"
    if not isinstance(out, torch.Tensor) or out.ndim not in (3, 4):
        what = f"a {type(out).__name__}" if not isinstance(out, torch.Tensor) else f"a {out.ndim}-d tensor"
        raise SpecError(
            "encoder.model", f"{spec.model}'s forward_features returns {what}, not a token sequence or map{wrap}"
        )
    tokens, expected = _timm_tokens(spec, backbone, out).shape[1], spec.tokens(resolution)
    if tokens == expected:
        return spec
    if out.ndim == 3 and 0 < tokens - expected <= MAX_PREFIX_TOKENS:
        return dataclasses.replace(spec, prefix_tokens=spec.prefix_tokens + tokens - expected)
    raise SpecError(
        "encoder.model",
        f"{spec.model}'s forward_features gives {tokens} tokens at {resolution} px where {spec.patch} px a token "
        f"gives {expected}: not a token grid{wrap}",
    )


def _build_timm(spec: TimmSpec, resolution: int, dynamic_size: bool, device, dtype) -> nn.Module:
    # timm's patch embedding takes a resolution that is not a multiple of the patch only at its fixed
    # img_size (the conv drops the remainder, as LLaVA-OneVision's SigLIP at 384 px does)
    dynamic = dynamic_size and resolution % spec.patch == 0
    if spec.layout == "tokens":
        kwargs = {"img_size": resolution, "dynamic_img_size": dynamic}
    elif _fixed_input_size(spec.model):
        # a feature map sized when built (Swin's window grids, LeViT's attention biases): at this resolution
        kwargs = {"img_size": resolution}
        _check_fixed_size(spec.model, resolution)
    else:
        kwargs = {}
    with torch.device(device or "cpu"):
        try:
            backbone = _create_timm(spec.model, **kwargs)
        except TypeError as err:
            if "dynamic_img_size" in str(err):
                # CaiT, BEiT, ConViT, relative-position ViTs take no dynamic size: built at this resolution
                backbone = _create_timm(spec.model, img_size=resolution)
            elif "img_size" in str(err) and spec.layout == "map":
                backbone = _create_timm(spec.model)  # says it is fixed-size but takes no size: as it is
            else:
                raise
    if dtype is not None:
        backbone = backbone.to(dtype)
    if spec.checkpoint is not None:
        state = torch.load(spec.checkpoint, map_location="cpu", weights_only=True)
        missing, unexpected = backbone.load_state_dict(state.get("state_dict", state), strict=False)
        if missing:
            raise SpecError("encoder.checkpoint", f"{spec.checkpoint} lacks {len(missing)} weights, e.g. {missing[0]}")
    return backbone


def _build_convnext(spec: ConvNeXtSpec, device, dtype) -> nn.Module:
    """timm's ConvNeXt for the first four stages; a fifth is one more timm ``ConvNeXtStage`` (stride
    2), appended as ConvLLaVA does."""
    from timm.layers import LayerNorm, LayerNorm2d
    from timm.models.convnext import ConvNeXt, ConvNeXtStage

    with torch.device(device or "cpu"):
        backbone = ConvNeXt(depths=spec.depths[:4], dims=spec.widths[:4], num_classes=0, global_pool="")
        for depth, width, previous in zip(spec.depths[4:], spec.widths[4:], spec.widths[3:], strict=False):
            stage = ConvNeXtStage(
                previous,
                width,
                stride=2,
                depth=depth,
                ls_init_value=1e-6,
                norm_layer=LayerNorm2d,
                norm_layer_cl=LayerNorm,
            )
            backbone.stages.append(stage)
    return backbone.to(dtype) if dtype is not None else backbone


#: resolutions tried, in order, to read a user module's token rule on the meta device
PROBE_RESOLUTIONS = (224, 256, 336, 384, 448, 512)


def _instantiate(target: str, kwargs: dict[str, Any]) -> nn.Module:
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        module = instantiate({"_target_": target, **kwargs})
    except InstantiationException as err:
        raise SpecError("encoder._target_", f"could not build {target}: {err}") from None
    if not isinstance(module, nn.Module):
        raise SpecError("encoder._target_", f"{target} returned a {type(module).__name__}, not an nn.Module")
    return module


def _module_features(module: nn.Module, images: torch.Tensor) -> torch.Tensor:
    forward = getattr(module, "forward_features", None) or module
    return forward(images)


def module_spec(target: str, kwargs: dict[str, Any] | None = None, name: str | None = None) -> ModuleSpec:
    """A :class:`ModuleSpec` for the factory ``target(**kwargs)``: built and run on the meta device
    at two probe resolutions (nothing allocated or downloaded) to read pixels per token, feature
    width, layout and prefix tokens (a token output ``N = prefix + g*g``)."""
    kwargs = dict(kwargs or {})
    with torch.device("meta"):
        module = _instantiate(target, kwargs)
        grids = []
        for resolution in PROBE_RESOLUTIONS:
            try:
                out = _module_features(module, torch.empty(1, 3, resolution, resolution))
            except Exception:  # noqa: BLE001 - a fixed-size module refuses other sizes; try the next
                continue
            if out.ndim == 4:
                grids.append((resolution, int(out.shape[2]), int(out.shape[1]), "map", 0))
            elif out.ndim == 3:
                side = math.isqrt(int(out.shape[1]))
                grids.append((resolution, side, int(out.shape[2]), "tokens", int(out.shape[1]) - side * side))
            if len(grids) == 2:
                break
    if not grids:
        raise SpecError(
            "encoder._target_",
            f"{target}'s forward_features/forward took none of {PROBE_RESOLUTIONS} px or returned neither "
            "[B, C, H, W] nor [B, N, C]",
        )
    resolution, side, width, layout, prefix = grids[0]
    if len(grids) == 2 and grids[1][1] > side:  # the grid grows with the input: pixels per token from both
        patch = (grids[1][0] - resolution) // (grids[1][1] - side)
    else:
        patch = resolution // side
    return ModuleSpec(name or target.rsplit(".", 1)[-1], target, kwargs, patch, width, layout, prefix)


def _build_module(spec: ModuleSpec, device, dtype) -> nn.Module:
    with torch.device(device or "cpu"):
        module = _instantiate(spec.target, dict(spec.kwargs))
    if not hasattr(module, "forward_features"):  # VisualEncoder calls forward_features
        module.forward_features = module.forward
    return module.to(dtype) if dtype is not None else module


def _timm_tokens(spec: TimmSpec, backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if x.ndim == 4:  # a feature map: [B, C, H, W], or [B, H, W, C] where timm says so (Swin, MambaOut, Hiera)
        return x.flatten(1, 2) if getattr(backbone, "output_fmt", "NCHW") == "NHWC" else x.flatten(2).transpose(1, 2)
    return x[:, spec.prefix_tokens :]


class Builder(NamedTuple):
    """How one encoder kind becomes a module: ``build(spec, resolution, inference_mode,
    dynamic_size, device, dtype)`` and ``tokens(spec, backbone, forward_features output)``; ``has_train_form``
    says whether the module has train-time branches to fold (a ViT has none);
    ``resolution_free`` that the module built does not depend on the resolution (a ViT's position
    table does), so one build serves every resolution (counting caches it)."""

    build: Callable[..., nn.Module]
    tokens: Callable[[EncoderSpec, nn.Module, torch.Tensor], torch.Tensor]
    has_train_form: bool
    resolution_free: bool = False


#: one entry per encoder kind (``spec.SPEC_KINDS``)
BUILDERS: dict[str, Builder] = {
    "hybrid": Builder(
        lambda spec, resolution, inference_mode, dynamic_size, device, dtype: _build_hybrid(
            spec, inference_mode, device, dtype
        ),
        lambda spec, backbone, x: x.flatten(2).transpose(1, 2),
        has_train_form=True,
        resolution_free=True,
    ),
    "vit": Builder(
        lambda spec, resolution, inference_mode, dynamic_size, device, dtype: _build_vit(
            spec, resolution, dynamic_size, device, dtype
        ),
        lambda spec, backbone, x: x[:, backbone.num_prefix_tokens :],  # drop CLS, as LLaVA does
        has_train_form=False,
    ),
    "convnext": Builder(
        lambda spec, resolution, inference_mode, dynamic_size, device, dtype: _build_convnext(spec, device, dtype),
        lambda spec, backbone, x: x.flatten(2).transpose(1, 2),
        has_train_form=False,
        resolution_free=True,
    ),
    "module": Builder(
        lambda spec, resolution, inference_mode, dynamic_size, device, dtype: _build_module(spec, device, dtype),
        lambda spec, backbone, x: _timm_tokens(spec, backbone, x),
        has_train_form=False,
    ),
    # any timm model: reparameterize() folds what timm knows how to fold (RepVGG-style blocks)
    "timm": Builder(
        lambda spec, resolution, inference_mode, dynamic_size, device, dtype: _build_timm(
            spec, resolution, dynamic_size, device, dtype
        ),
        _timm_tokens,
        has_train_form=True,
    ),
}


def build_encoder(
    spec: EncoderSpec,
    resolution: int,
    *,
    inference_mode: bool = False,
    dynamic_size: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    weights: str = "init",
) -> VisualEncoder:
    """Build ``spec`` with random weights for input ``resolution`` (validated against the stride).

    ``inference_mode=True`` builds the reparameterized form directly (no train branches ever
    allocated); with ``device="meta"`` nothing is allocated at all, which is how counting runs.
    A ViT's learned position table is sized for ``resolution`` (so its parameter count depends
    on it) and is interpolated by timm for other sizes; ``dynamic_size=False`` fixes the ViT to
    ``resolution`` (no interpolation op in the graph: what Core ML export needs).

    ``weights``: ``init`` = the backbone's own initialisation (what training starts from);
    ``tiled`` = built on ``meta`` and filled from one block of random values
    (:mod:`fastvitsearch.random_weights`; ViT-L/14 in 0.7 s instead of 2.9 s, same latency), for timing.
    A module with tensors that cannot be filled that way (index buffers) gets ``init``.
    """
    if weights not in ("init", "tiled"):
        raise SpecError("weights", f"unknown weights {weights!r}; one of init, tiled")
    if weights == "tiled" and str(device) != "meta":
        from fastvitsearch.random_weights import materialize_random, unfillable

        skeleton = build_encoder(
            spec, resolution, inference_mode=inference_mode, dynamic_size=dynamic_size, device="meta", dtype=dtype
        )
        if not unfillable(skeleton):
            return materialize_random(skeleton, device or "cpu")
    spec.tokens(resolution)  # raises a SpecError naming `resolution` if it does not fit
    builder = BUILDERS[spec.kind]
    backbone = builder.build(spec, resolution, inference_mode, dynamic_size, device, dtype)
    return VisualEncoder(spec, backbone, reparameterized=inference_mode or not builder.has_train_form)
