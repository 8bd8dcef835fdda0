"""Encoder latency predicted for architectures never measured: a sum of work units.

Why: a new hybrid at 1024 px takes ~30 s to build, reparameterize and time here; a search spends
most of its time timing candidates far from the front. The encoder is split into the units its
builder uses (:mod:`~fastvitsearch.profile.work_units`); calibration times each distinct unit of a
few small calibration encoders on the input it sees in the forward pass, in the device's runtime
and precision, and each whole calibration encoder (every timing cached on disk). A unit is timed
as its marginal cost in a chain, not alone: ``(t(4 copies) - t(2 copies)) / 2`` for a unit that
keeps its input's shape, ``t(unit, next) - t(next)`` for one that changes it (the final conv:
``t(previous, unit) - t(previous)``). Alone, a unit pays what a whole encoder pays once, e.g. a
compiled graph's input and output conversions (precision, blocked layouts; on a CPU with AMX 20-55 %
of an isolated RepMixer block's time in OpenVINO bf16), and graphs of one or two copies still pick
their own layouts; in eager PyTorch the sum of isolated units also ran high on that CPU. On the
30 validation architectures (AMX Xeon, one round each) units timed alone read 17 % within
+-10 % in OpenVINO bf16 (median +23 %) and 33-77 % in eager (+3 to +13 %); chained, 67 % and
83 % (benchmarks/results/latency_predictor/attempts.md).
Each unit kind gets a non-negative least-squares fit ``t = a + sum_i b_i * feature_i`` on
relative error; an encoder is predicted as the sum of its units' predictions times a glue factor
per encoder kind (whole / sum of units on the calibration encoders: the reshapes and hand-offs
between units). A prediction takes well under a millisecond: no module is built.

Every prediction carries a held-out error: the mean absolute percentage error of predicting each
calibration encoder's whole forward pass with everything refitted without it
(leave-one-encoder-out). ``benchmarks/latency_predictor.py`` measures the error that matters:
random architectures of the search space, whole encoders timed by the sweep's protocol.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.optimize import nnls

from fastvitsearch.build import build_encoder
from fastvitsearch.cache import MeasurementCache
from fastvitsearch.profile.latency_calibration import default_calibration
from fastvitsearch.profile.runtimes import check_runtime, prepare_checked
from fastvitsearch.profile.timing import TimingProtocol, device_fingerprint, measure
from fastvitsearch.profile.work_units import WorkUnit, unit_modules, work_units
from fastvitsearch.record import Sourced
from fastvitsearch.spec import EncoderSpec, SpecError
from fastvitsearch.torch_threads import fixed_threads

#: bumped when what a unit timing means changes (cache entries of older versions are not reused)
UNIT_TIMING_VERSION = 3
#: unit timings: short units, so more repeats than an encoder gets, within a small budget
UNIT_PROTOCOL = TimingProtocol(warmup_runs=1, warmup_seconds=0.0, min_runs=5, max_runs=15, budget_seconds=0.5)


@dataclass(frozen=True)
class UnitSample:
    """One calibration encoder's unit, timed: the data a kind's fit uses."""

    unit: WorkUnit
    count: int
    ms: float


class _OneInput(torch.nn.Module):
    """A unit seen as ``forward(x)``: exporters turn the optional arguments of a top-level forward
    (timm's ``Block(x, attn_mask=None)``) into graph inputs and break; a unit only ever takes ``x``."""

    def __init__(self, unit: torch.nn.Module) -> None:
        super().__init__()
        self.unit = unit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unit(x)


@dataclass(frozen=True)
class CalibrationEncoder:
    """One calibration encoder: its units' timings and its whole forward pass (the glue
    between units, and what the held-out error is measured on)."""

    label: str
    kind: str
    units: list[UnitSample]
    whole_ms: float


def time_units(
    spec: EncoderSpec,
    resolution: int,
    *,
    device: torch.device,
    runtime: str = "eager",
    precision: str = "fp32",
    threads: int = 1,
    protocol: TimingProtocol = UNIT_PROTOCOL,
    cache: MeasurementCache | None = None,
    force: bool = False,
) -> CalibrationEncoder:
    """Each distinct unit of ``spec`` at ``resolution`` timed alone on the input it receives in
    the forward pass, and the whole encoder, in ``runtime``/``precision`` (checked against eager
    fp32); cached per unit and per encoder."""
    entry = check_runtime(runtime, precision)
    units = work_units(spec, resolution)
    counts: dict[str, int] = defaultdict(int)
    first: dict[str, int] = {}
    for i, unit in enumerate(units):
        key = json.dumps(unit.key, sort_keys=True)
        counts[key] += 1
        first.setdefault(key, i)
    environment = {
        "kind": "unit",
        "version": UNIT_TIMING_VERSION,
        "device": device_fingerprint(device),
        "runtime": runtime,
        "runtime_version": entry.version(),
        "precision": precision,
        "threads": threads,
        "protocol": dataclasses.asdict(protocol),
    }
    whole_key = json.dumps({"whole": spec.content_hash, "resolution": resolution})
    keys = {key: {**environment, **json.loads(key)} for key in [*first, whole_key]}
    times: dict[str, float] = {}
    if cache is not None and not force:
        for key, full in keys.items():
            if (hit := cache.get(full)) is not None:
                times[key] = hit["median_ms"]
    missing = [key for key in keys if key not in times]
    if missing:
        torch.manual_seed(0)
        encoder = build_encoder(spec, resolution, inference_mode=True, dynamic_size=False).eval().to(device)
        modules = unit_modules(encoder.backbone, spec.kind)
        inputs: dict[int, torch.Tensor] = {}
        shapes: dict[int, torch.Size] = {}
        hooks = [
            m.register_forward_pre_hook(lambda _m, args, i=i: inputs.__setitem__(i, args[0]))
            for i, m in enumerate(modules)
        ] + [
            m.register_forward_hook(lambda _m, _a, out, i=i: shapes.__setitem__(i, out.shape))
            for i, m in enumerate(modules)
        ]
        images = torch.rand(1, 3, resolution, resolution, device=device)
        with torch.no_grad():  # not inference_mode: an exporting runtime traces units on these inputs
            encoder.features(images)
        for hook in hooks:
            hook.remove()

        def timed(chain: list[torch.nn.Module], x: torch.Tensor) -> dict[str, Any]:
            module = chain[0] if len(chain) == 1 and chain[0] is encoder else _OneInput(torch.nn.Sequential(*chain))
            with fixed_threads(threads):
                run, _ = prepare_checked(module, x, runtime, precision, threads)
            return measure(run, device=device, threads=threads, protocol=protocol, warmed_up=1).to_dict()

        for key in missing:
            if key == whole_key:
                timing = timed([encoder], images)
            else:
                timing = _marginal(first[key], modules, inputs, shapes, timed)
            times[key] = timing["median_ms"]
            if cache is not None:
                cache.put(keys[key], timing)
    label = f"{spec.name}@{resolution}"
    samples = [UnitSample(units[first[key]], counts[key], times[key]) for key in first]
    return CalibrationEncoder(label, spec.kind, samples, times[whole_key])


def _marginal(
    i: int,
    modules: list[torch.nn.Module],
    inputs: dict[int, torch.Tensor],
    shapes: dict[int, torch.Size],
    timed: Callable[[list[torch.nn.Module], torch.Tensor], dict[str, Any]],
) -> dict[str, Any]:
    """Unit ``i``'s marginal cost inside a chain (module docstring): what a graph pays once (its
    input and output conversions) cancels in the difference. A unit that keeps its input's shape is timed as four
    copies minus two (halved): graphs of one or two copies still pick their own layouts (OpenVINO
    bf16 on AMX, a RepMixer block at 192 x 128^2: t(1), t(2), t(4) = 28.1, 45.0, 70.3 ms). Floored
    at 5 % of the subtracted chain per copy (noise can make a small difference negative).
    Returns the chain's timing dict with ``median_ms`` replaced by the marginal."""
    unit, x = modules[i], inputs[i]
    if shapes[i] == x.shape:
        chain, base, copies = timed([unit] * 4, x), timed([unit] * 2, x), 2
    elif i + 1 < len(modules):
        chain, base, copies = timed([unit, modules[i + 1]], x), timed([modules[i + 1]], inputs[i + 1]), 1
    else:
        chain, base, copies = timed([modules[i - 1], unit], inputs[i - 1]), timed([modules[i - 1]], inputs[i - 1]), 1
    marginal = max((chain["median_ms"] - base["median_ms"]) / copies, 0.05 * base["median_ms"] / copies)
    return {**chain, "median_ms": marginal, "chain_ms": chain["median_ms"], "base_ms": base["median_ms"]}


@dataclass(frozen=True)
class KindModel:
    """``t = intercept + coefficients . features`` for one unit kind (ms), all terms >= 0."""

    kind: str
    intercept_ms: float
    coefficients: tuple[float, ...]
    n_points: int

    def predict(self, unit: WorkUnit) -> float:
        return self.intercept_ms + float(np.dot(self.coefficients, unit.features()))


def fit_kind(kind: str, samples: Sequence[UnitSample]) -> KindModel:
    """Non-negative least squares on relative error (every unit weighs the same, small or large)."""
    x = np.array([[1.0, *s.unit.features()] for s in samples])
    t = np.array([s.ms for s in samples])
    scale = np.abs(x).max(axis=0)
    scale[scale == 0] = 1.0
    weighted = (x / scale) / t[:, None]
    solution, _ = nnls(weighted, np.ones(len(t)))
    coef = solution / scale
    return KindModel(kind, float(coef[0]), tuple(float(c) for c in coef[1:]), len(samples))


def fit_kinds(samples: Sequence[UnitSample]) -> dict[str, KindModel]:
    by_kind: dict[str, list[UnitSample]] = defaultdict(list)
    for sample in samples:
        by_kind[sample.unit.kind].append(sample)
    return {kind: fit_kind(kind, group) for kind, group in by_kind.items()}


@dataclass
class LatencyPredictor:
    """Per-kind models fitted on one device/runtime/precision/threads, with their held-out error."""

    name: str
    models: dict[str, KindModel]
    #: per encoder kind, whole forward / sum of its units (reshapes and hand-offs between units)
    glue: dict[str, float]
    held_out_error: float | None
    #: per calibration encoder: measured unit total, leave-it-out prediction (ms)
    calibration: list[dict[str, Any]] = field(default_factory=list)
    calibration_seconds: float = 0.0

    def predict_ms(self, spec: EncoderSpec, resolution: int) -> float:
        return self.glue.get(spec.kind, 1.0) * self.units_ms(spec, resolution)

    def units_ms(self, spec: EncoderSpec, resolution: int) -> float:
        total = 0.0
        for unit in work_units(spec, resolution):
            if unit.kind not in self.models:
                raise SpecError(
                    "device.latency",
                    f"{spec.name} uses {unit.kind!r} units, which the latency model was not calibrated on "
                    f"(calibrated: {', '.join(sorted(self.models))})",
                )
            total += self.models[unit.kind].predict(unit)
        return total

    def estimate(self, spec: EncoderSpec, resolution: int) -> Sourced:
        """The prediction as a record value: ``predicted``, this model's label, its held-out error."""
        detail = {
            "model": "sum of work-unit fits (NNLS per kind on unit timings, marginal in a chain) x glue factor",
            "glue": round(self.glue.get(spec.kind, 1.0), 4),
            "units": len(work_units(spec, resolution)),
            "held_out": "leave-one-calibration-encoder-out MAPE",
            "calibration_encoders": len(self.calibration),
        }
        return Sourced(round(self.predict_ms(spec, resolution), 3), "predicted", self.name, self.held_out_error, detail)


def _units_total(models: dict[str, KindModel], encoder: CalibrationEncoder) -> float:
    return sum(models[s.unit.kind].predict(s.unit) * s.count for s in encoder.units)


def _fit(encoders: Sequence[CalibrationEncoder]) -> tuple[dict[str, KindModel], dict[str, float]]:
    models = fit_kinds([s for e in encoders for s in e.units])
    ratios: dict[str, list[float]] = defaultdict(list)
    for e in encoders:
        ratios[e.kind].append(e.whole_ms / _units_total(models, e))
    return models, {kind: float(np.median(r)) for kind, r in ratios.items()}


def fit_predictor(name: str, encoders: Sequence[CalibrationEncoder], seconds: float = 0.0) -> LatencyPredictor:
    """Fit on every calibration encoder; the held-out error is the MAPE of each encoder's whole
    forward pass predicted with the kinds and glue refitted without it (a unit kind only that
    encoder has keeps its full fit: nothing else could predict it)."""
    models, glue = _fit(encoders)
    rows = []
    for held in encoders:
        others = [e for e in encoders if e is not held]
        other_models, other_glue = _fit(others) if others else ({}, {})
        refit = {**models, **other_models}
        predicted = other_glue.get(held.kind, glue[held.kind]) * _units_total(refit, held)
        rows.append({"encoder": held.label, "measured_ms": round(held.whole_ms, 3), "held_out_ms": round(predicted, 3)})
    errors = [abs(r["held_out_ms"] - r["measured_ms"]) / r["measured_ms"] for r in rows]
    error = round(float(np.mean(errors)), 4) if len(rows) > 1 else None
    return LatencyPredictor(name, models, glue, error, rows, round(seconds, 1))


def calibrate(
    specs: Sequence[tuple[EncoderSpec, int]] | None = None,
    *,
    device: torch.device | str = "cpu",
    runtime: str = "eager",
    precision: str = "fp32",
    threads: int = 1,
    protocol: TimingProtocol = UNIT_PROTOCOL,
    cache: MeasurementCache | None = None,
    force: bool = False,
) -> LatencyPredictor:
    """Time the calibration encoders' units (cached) and fit; ``specs`` defaults to
    :func:`default_calibration`."""
    device = torch.device(device)
    start = time.perf_counter()
    encoders = [
        time_units(
            spec,
            resolution,
            device=device,
            runtime=runtime,
            precision=precision,
            threads=threads,
            protocol=protocol,
            cache=cache,
            force=force,
        )
        for spec, resolution in (specs if specs is not None else default_calibration())
    ]
    name = f"latency-model@{device.type}/{runtime}" + ("" if precision == "fp32" else f"-{precision}")
    return fit_predictor(name, encoders, time.perf_counter() - start)
