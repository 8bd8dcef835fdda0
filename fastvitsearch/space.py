"""What a sweep explores: a grid of named points, or the hybrid builder's knobs for a sampler.

Grid points are ``encoders x resolutions x llms`` plus explicit extra points; the hybrid search
space turns Optuna suggestions (number of stages = downsampling depth, base width, depth scale
of a template, first attention stage, MLP ratio, resolution, LLM) into an
:class:`~fastvitsearch.spec.HybridEncoderSpec`. The paper's encoders are anchors: enqueued once
each (per LLM), never a categorical the sampler re-draws.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from omegaconf import OmegaConf

from fastvitsearch.llm import resolve_llm
from fastvitsearch.point import Point
from fastvitsearch.presets import encoder_label, resolve_encoder
from fastvitsearch.spec import EncoderSpec, HybridEncoderSpec, SpecError, StageSpec
from fastvitsearch.tiling import parse_tiling

CONF_DIR = Path(__file__).resolve().parent / "conf"
#: per number of stages, FastViT-family depth templates (MCi2 for 4, FastViTHD for 5, + one)
DEPTH_TEMPLATES = {4: (4, 12, 24, 4), 5: (2, 12, 24, 4, 2), 6: (2, 12, 24, 4, 2, 2)}


def encoder_by_name(name: str) -> EncoderSpec:
    """A preset, or a spec file ``conf/encoder/<name>.yaml`` (e.g. ``custom_example``)."""
    path = CONF_DIR / "encoder" / f"{name}.yaml"
    if path.exists():
        return resolve_encoder(OmegaConf.to_container(OmegaConf.load(path), resolve=True))
    return resolve_encoder(name)


def _pixels(value: Any, field: str) -> int:
    """A resolution from config: a whole positive number of pixels (``256.5`` and ``abc`` refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SpecError(field, f"must be a whole number of pixels, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise SpecError(field, f"must be a whole number of pixels, got {value!r}") from None
    if number != int(number) or number <= 0:
        raise SpecError(field, f"must be a whole positive number of pixels, got {value!r}")
    return int(number)


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, str | int | float):
        return [value]
    return list(value)


def grid_points(
    grid: Mapping[str, Any],
    resolution: Any = None,
    llm: Mapping[str, Any] | None = None,
    encoder: Mapping[str, Any] | None = None,
    tiling: Any = None,
) -> list[Point]:
    """All grid points, in a stable order. Command-line choices narrow the grid: ``resolution``
    replaces every encoder's resolutions, ``llm`` / ``encoder`` (a group's config) replace the
    grid's LLMs / encoders; extra points are kept only where they match those choices. ``tiling``
    tiles every grid point; an extra point may name its own ``tiling``."""
    tiles = parse_tiling(tiling)
    llm_specs = [resolve_llm(llm)] if llm is not None else [resolve_llm(name) for name in _as_list(grid.get("llms"))]
    llm_names = {m.name for m in llm_specs}
    if encoder is not None:
        spec = resolve_encoder(encoder)
        encoders = [(encoder_label(encoder, spec), spec)]
    else:
        encoders = [(name, encoder_by_name(name)) for name in _as_list(grid.get("encoders"))]
    per_encoder = dict(grid.get("resolutions") or {})
    points: list[Point] = []
    for name, spec in encoders:
        resolutions = _as_list(resolution) if resolution is not None else _as_list(per_encoder.get(name))
        if not resolutions:
            raise SpecError(f"grid.resolutions.{name}", "no resolutions for this encoder; set resolution=[…]")
        field = "resolution" if resolution is not None else f"grid.resolutions.{name}"
        points += [Point(name, spec, _pixels(r, field), m, tiles) for r in resolutions for m in (llm_specs or [None])]
    encoder_names = {name for name, _ in encoders}
    for extra in _as_list(grid.get("extra")):
        if llm is not None and extra.get("llm") not in llm_names:
            continue
        if encoder is not None and extra["encoder"] not in encoder_names:
            continue
        extra_resolution = _pixels(extra["resolution"], "grid.extra.resolution")
        if resolution is not None and extra_resolution not in [_pixels(r, "resolution") for r in _as_list(resolution)]:
            continue
        points.append(
            Point(
                extra["encoder"],
                encoder_by_name(extra["encoder"]),
                extra_resolution,
                resolve_llm(extra["llm"]) if extra.get("llm") else None,
                parse_tiling(extra.get("tiling"), "grid.extra.tiling") or tiles,
            )
        )
    unique = {p.key: p for p in points}
    return list(unique.values())


def hybrid_from_knobs(
    n_stages: int, base_width: int, depth_scale: float, first_attention_stage: int, mlp_ratio: float
) -> HybridEncoderSpec:
    """A FastViTHD-style hybrid: widths double per stage, template depths scaled, RepMixer up to
    ``first_attention_stage`` (0-based) then attention with RepCPE, stride ``4 * 2**(n-1)``."""
    if n_stages not in DEPTH_TEMPLATES:
        raise SpecError("space.n_stages", f"{n_stages} has no depth template; one of {sorted(DEPTH_TEMPLATES)}")
    first = min(first_attention_stage, n_stages - 1)
    stages = []
    for i, template_depth in enumerate(DEPTH_TEMPLATES[n_stages]):
        attention = i >= first
        stages.append(
            StageSpec(
                depth=max(1, round(template_depth * depth_scale)),
                width=base_width * 2**i,
                mixer="attention" if attention else "repmixer",
                mlp_ratio=float(mlp_ratio),
                pos_enc="rcpe" if attention else "none",
                downsample=i > 0,
            )
        )
    name = f"hybrid_s{n_stages}_w{base_width}_d{depth_scale:.2f}_a{first}_m{mlp_ratio:g}"
    return HybridEncoderSpec(
        name, tuple(stages), expansion_ratio=2.0, attention_norm="layernorm", stem_scale_branch=False, lkc_use_act=True
    )


#: the hybrid space's knobs (each a list of choices; ``depth_scale`` a ``{low, high}`` range)
SPACE_KNOBS = ("n_stages", "base_width", "depth_scale", "first_attention_stage", "mlp_ratio", "resolution", "llm")


def validate_space(space: Mapping[str, Any]) -> None:
    """Check every value of a search space before any trial runs, naming its key.

    Why: a bad value otherwise fails only the trials that happen to draw it, after the anchors
    have trained (a proxy run each: minutes here), and a misspelt knob is ignored. Every
    combination of the choices is built, at both ends of ``depth_scale``, and counted at every
    resolution; a value that gives no valid encoder in some combination is refused with that
    combination (e.g. a base width whose attention stages do not split into 32-wide heads).
    """
    if not isinstance(space, Mapping):
        raise SpecError("space", f"must be a mapping of knobs {SPACE_KNOBS}, got {space!r}")
    unknown = sorted(set(space) - {*SPACE_KNOBS, "anchors"})
    if unknown:
        knobs = ", ".join((*SPACE_KNOBS, "anchors"))
        raise SpecError(f"space.{unknown[0]}", f"not a knob of the hybrid space; knobs: {knobs}")
    for knob in SPACE_KNOBS:
        if knob not in space:
            raise SpecError(f"space.{knob}", "is required")
    choices = {}
    for knob in ("n_stages", "base_width", "first_attention_stage", "mlp_ratio", "resolution", "llm"):
        values = _as_list(space[knob])
        if not values:
            raise SpecError(f"space.{knob}", "needs at least one choice")
        choices[knob] = values
    for knob in ("n_stages", "base_width", "first_attention_stage"):
        for value in choices[knob]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SpecError(f"space.{knob}", f"must be a list of whole numbers, got {value!r}")
    for value in choices["mlp_ratio"]:
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise SpecError("space.mlp_ratio", f"must be a list of positive numbers, got {value!r}")
    depth = space["depth_scale"]
    if not isinstance(depth, Mapping) or set(depth) != {"low", "high"}:
        raise SpecError("space.depth_scale", f"must be {{low: <number>, high: <number>}}, got {depth!r}")
    for end in ("low", "high"):
        value = depth[end]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise SpecError(f"space.depth_scale.{end}", f"must be a positive number, got {value!r}")
    if depth["low"] > depth["high"]:
        raise SpecError("space.depth_scale", f"low ({depth['low']}) must not exceed high ({depth['high']})")
    resolutions = [_pixels(r, "space.resolution") for r in choices["resolution"]]
    for name in choices["llm"]:
        try:
            resolve_llm(name)
        except SpecError as err:
            raise SpecError("space.llm", err.message) from None
    for n, width, first, ratio in itertools.product(
        choices["n_stages"], choices["base_width"], choices["first_attention_stage"], choices["mlp_ratio"]
    ):
        knobs = f"n_stages={n}, base_width={width}, first_attention_stage={first}, mlp_ratio={ratio:g}"
        for scale in (depth["low"], depth["high"]):
            try:
                spec = hybrid_from_knobs(n, width, scale, first, ratio)
            except SpecError as err:
                if err.field.startswith("space."):
                    raise
                raise SpecError("space.base_width", f"{knobs} builds no valid encoder: {err}") from None
            for resolution in resolutions:
                try:
                    spec.tokens(resolution)
                except SpecError as err:
                    raise SpecError("space.resolution", f"with {knobs}: {err}") from None
    anchors(space)


def suggest_point(trial: optuna.Trial, space: Mapping[str, Any]) -> Point:
    """Define-by-run: a hybrid from the builder's knobs, a resolution and an LLM. An anchor trial
    (enqueued with an ``anchor`` user attr, e.g. ``fastvithd@1024``) is that preset instead: the
    paper's encoders are fixed points to compare with, not a choice the sampler re-draws."""
    llm = resolve_llm(trial.suggest_categorical("llm", list(space["llm"])))
    anchor = trial.user_attrs.get("anchor")
    if anchor:
        name, resolution = anchor.rsplit("@", 1)
        return Point(name, encoder_by_name(name), _pixels(resolution, "space.anchors.resolution"), llm)
    resolution = int(trial.suggest_categorical("resolution", list(space["resolution"])))
    spec = hybrid_from_knobs(
        n_stages=trial.suggest_categorical("n_stages", list(space["n_stages"])),
        base_width=trial.suggest_categorical("base_width", list(space["base_width"])),
        depth_scale=trial.suggest_float("depth_scale", space["depth_scale"]["low"], space["depth_scale"]["high"]),
        first_attention_stage=trial.suggest_categorical("first_attention_stage", list(space["first_attention_stage"])),
        mlp_ratio=trial.suggest_categorical("mlp_ratio", list(space["mlp_ratio"])),
    )
    return Point(spec.name, spec, resolution, llm)


def anchors(space: Mapping[str, Any]) -> list[str]:
    """The anchors as ``preset@resolution`` (validated: a known encoder at a valid resolution)."""
    out = []
    for i, entry in enumerate(space.get("anchors") or []):
        field = f"space.anchors[{i}]"
        if not isinstance(entry, Mapping) or set(entry) != {"encoder", "resolution"}:
            raise SpecError(field, f"must be {{encoder: <preset>, resolution: <px>}}, got {entry!r}")
        resolution = _pixels(entry["resolution"], f"{field}.resolution")
        encoder_by_name(str(entry["encoder"])).tokens(resolution)
        out.append(f"{entry['encoder']}@{resolution}")
    return out


def anchor_trials(space: Mapping[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``(params, user_attrs)`` to enqueue: each anchor with each LLM of the space."""
    return [({"llm": llm}, {"anchor": anchor}) for anchor in anchors(space) for llm in space["llm"]]
