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
83 % (benchmarks/results/latency_predictor/attempts.md). An exporting runtime's chains are composed
in ONNX from one export per unit (:mod:`~fastvitsearch.profile.unit_chains`; the same graphs as
exporting each chain; an OpenVINO bf16 calibration 28 % shorter on the AMX Xeon, attempts.md amx-10),
and so is a hybrid's whole encoder; an encoder's graphs are all compiled, two at a time, before any
of them is timed (attempts.md amx-13 to amx-16: 143 s instead of 205 s, interleaved).
Each unit kind's cost is its work (multiply-accumulates) times its milliseconds per unit of work,
interpolated in log space over the units' log pixels, log width, MLP ratio and flags (scipy's RBF
interpolator with a linear trend): efficiency varies smoothly with a unit's shape where cost spans
four orders of magnitude. A global non-negative least-squares fit of cost terms per kind (the model
until 2026-12-03) ran 10-30 % high on the search space's large units (attention at 2-4k tokens,
RepMixer blocks at 128^2 px; attempts.md). An encoder is predicted as its units' sum through a glue
per encoder kind, ``scale x units + fixed`` (reshapes and hand-offs between units, and the forward
pass's own fixed cost, ~10 ms in eager here: a quarter of a small encoder, 1 % of a large one).
A prediction takes well under a millisecond: no module is built.

Every prediction carries a held-out error: the mean absolute percentage error of predicting each
calibration encoder's whole forward pass with everything refitted without it
(leave-one-encoder-out). ``benchmarks/latency_predictor.py`` measures the error that matters:
random architectures of the search space, whole encoders timed by the sweep's protocol.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.interpolate import RBFInterpolator
from scipy.optimize import nnls

from fastvitsearch.build import BUILDERS, VisualEncoder, build_encoder
from fastvitsearch.cache import MeasurementCache
from fastvitsearch.profile.latency_calibration import default_calibration
from fastvitsearch.profile.runtimes import Run, Runtime, check_output, check_runtime, prepare_checked
from fastvitsearch.profile.timing import TimingProtocol, device_fingerprint, measure
from fastvitsearch.profile.unit_chains import OneInput, UnitChains
from fastvitsearch.profile.work_units import (
    UNITS_ARE_FORWARD,
    WorkUnit,
    coordinates,
    unit_modules,
    work,
    work_units,
)
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


@dataclass(frozen=True)
class CalibrationEncoder:
    """One calibration encoder: its units' timings and its whole forward pass (the glue
    between units, and what the held-out error is measured on)."""

    label: str
    kind: str
    units: list[UnitSample]
    whole_ms: float


class Readout(torch.nn.Module):
    """An encoder's tokens from its backbone's last feature map (a hybrid flattens and transposes):
    after :func:`~fastvitsearch.profile.work_units.unit_modules`, the rest of the forward pass."""

    def __init__(self, encoder: VisualEncoder) -> None:
        super().__init__()
        self.read = functools.partial(BUILDERS[encoder.spec.kind].tokens, encoder.spec, encoder.backbone)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.read(x)


def forward_pass(
    encoder: VisualEncoder, modules: Sequence[torch.nn.Module], images: torch.Tensor
) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor], torch.Tensor]:
    """One forward pass of ``encoder`` on ``images``: each of its unit ``modules``' input and output
    there (by index), and the encoder's output. Under ``no_grad``, not ``inference_mode``: an
    exporting runtime traces units on these inputs."""
    inputs: dict[int, torch.Tensor] = {}
    outputs: dict[int, torch.Tensor] = {}
    hooks = [
        m.register_forward_pre_hook(lambda _m, args, i=i: inputs.__setitem__(i, args[0])) for i, m in enumerate(modules)
    ] + [m.register_forward_hook(lambda _m, _a, out, i=i: outputs.__setitem__(i, out)) for i, m in enumerate(modules)]
    try:
        with torch.no_grad():
            reference = encoder.features(images)
    finally:
        for hook in hooks:
            hook.remove()
    return inputs, outputs, reference


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
    """Each distinct unit of ``spec`` at ``resolution`` timed as its marginal cost in a chain on
    the input it receives in the forward pass, and the whole encoder, in ``runtime``/``precision``
    (the whole encoder's output checked against eager fp32); cached per unit and per encoder."""
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
        # an exporting runtime's chains are composed from one export per unit (unit_chains)
        **({"chains": "onnx-composed"} if entry.exports else {}),
    }
    # an exporting runtime composes a hybrid's whole graph from its unit exports (UNITS_ARE_FORWARD)
    composed = entry.exports and spec.kind in UNITS_ARE_FORWARD
    whole_key = json.dumps(
        {"whole": spec.content_hash, "resolution": resolution, **({"graph": "units-composed"} if composed else {})}
    )
    keys = {key: {**environment, **json.loads(key)} for key in [*first, whole_key]}
    times: dict[str, float] = {}
    if cache is not None and not force:
        for key, full in keys.items():
            if (hit := cache.get(full)) is not None:
                times[key] = hit["median_ms"]
    # the whole encoder first: its output check (against eager fp32) stands for its parts' timings
    missing = [key for key in [whole_key, *first] if key not in times]
    if missing:
        torch.manual_seed(0)
        # weights as the sweep's measurements build them (random_weights: timm's truncated-normal
        # init was 7 of 190 s of an OpenVINO bf16 calibration, cProfile, AMX Xeon, 2026-12-07)
        encoder = build_encoder(
            spec, resolution, inference_mode=True, dynamic_size=False, device=device, weights="tiled"
        ).eval()
        modules = unit_modules(encoder.backbone, spec.kind)
        images = torch.rand(1, 3, resolution, resolution, device=device)
        inputs, outputs, reference = forward_pass(encoder, modules, images)  # the whole encoder's check uses it
        shapes = {i: out.shape for i, out in outputs.items()}

        # the read-out after the last unit is one more "unit" of the chains: a composed whole graph ends with it
        n = len(modules)
        chains = (
            UnitChains([*modules, Readout(encoder)], {**inputs, n: outputs[n - 1]}, {**outputs, n: reference})
            if entry.exports
            else None
        )

        plans = {key: _marginal_chains(first[key], n, inputs, shapes) for key in missing if key != whole_key}
        needs = {key: [tuple(range(n + 1))] if key == whole_key else list(plans[key][:2]) for key in missing}
        sizes = [sum(p.numel() * p.element_size() for p in m.parameters()) for m in modules] + [0]
        timings: dict[tuple[int, ...], dict[str, Any]] = {}

        def timed(chain: tuple[int, ...], loaded: dict[tuple[int, ...], Run]) -> dict[str, Any]:
            """Units ``chain`` (indices, in order) timed on the first one's input: parts of the
            encoder, whose output is checked whole (checking each chain again cost an eager
            forward per chain: 12 s of a 63-s OpenVINO calibration encoder)."""
            if chain not in timings:
                with fixed_threads(threads):
                    if chains is not None:
                        run = loaded.pop(chain)  # released once timed
                    else:
                        part = OneInput(torch.nn.Sequential(*[modules[j] for j in chain]))
                        run = entry.prepare(part, inputs[chain[0]], precision, threads, None)
                    with torch.inference_mode():
                        run()  # the warm-up prepare_checked runs
                timing = measure(run, device=device, threads=threads, protocol=protocol, warmed_up=1)
                timings[chain] = timing.to_dict()
            return timings[chain]

        try:
            for batch in _batches(missing, needs, lambda chain: sum(sizes[j] for j in chain)):
                wanted = [c for key in batch if key != whole_key for c in needs[key] if c not in timings]
                wanted = list(dict.fromkeys(wanted))  # a chain two units subtract is prepared once
                whole_run, loaded = _prepare(
                    entry, chains, wanted, whole_key in batch, composed, encoder, images, reference, precision, threads
                )
                for key in batch:
                    if key == whole_key:  # its check's run was the warm-up
                        timing = measure(whole_run, device=device, threads=threads, protocol=protocol, warmed_up=1)
                        timing = timing.to_dict()
                    else:
                        chain, base, copies = plans[key]
                        timing = _marginal(timed(chain, loaded), timed(base, loaded), copies)
                    times[key] = timing["median_ms"]
                    if cache is not None:
                        cache.put(keys[key], timing)
        finally:
            if chains is not None:
                chains.close()
    label = f"{spec.name}@{resolution}"
    samples = [UnitSample(units[first[key]], counts[key], times[key]) for key in first]
    return CalibrationEncoder(label, spec.kind, samples, times[whole_key])


#: graphs an exporting runtime compiles at once while a calibration encoder is prepared (nothing
#: is timed meanwhile): OpenVINO's compile is single-threaded and releases the GIL, so two compile
#: side by side while the main thread exports and composes (1.5-1.8x on 2 cores, AMX Xeon, 2026-12-07)
PREPARE_WORKERS = 2
#: weights (bytes, counted once per copy in a chain) of the graphs prepared before they are timed:
#: a compiled graph holds its weights, and with every chain of an encoder prepared at once the
#: calibration's process peaked at 9.8 GB (attempts.md amx-15; 4 copies of an attention unit at width
#: 3072 are 1.8 GB of fp32 weights alone; 5.9 GB with this bound, amx-16); a chain over it is prepared alone
PREPARE_BYTES = 2**31


def _batches(
    keys: Sequence[str], needs: dict[str, list[tuple[int, ...]]], size: Callable[[tuple[int, ...]], int]
) -> list[list[str]]:
    """``keys`` in order, split where the graphs they need (each prepared once: a chain two keys
    share counts in the first) would hold over :data:`PREPARE_BYTES` of weights."""
    batches: list[list[str]] = []
    held, seen = PREPARE_BYTES, set()
    for key in keys:
        new = [chain for chain in needs[key] if chain not in seen]
        seen.update(new)
        weight = sum(size(chain) for chain in new)
        if held + weight > PREPARE_BYTES:
            batches.append([])
            held = 0
        batches[-1].append(key)
        held += weight
    return batches


def _prepare(
    entry: Runtime,
    chains: UnitChains | None,
    wanted: Sequence[tuple[int, ...]],
    whole: bool,
    composed: bool,
    encoder: torch.nn.Module,
    images: torch.Tensor,
    reference: torch.Tensor,
    precision: str,
    threads: int,
) -> tuple[Run | None, dict[tuple[int, ...], Run]]:
    """The whole encoder's run, checked against eager fp32 (its check is its warm-up), and, for an
    exporting runtime, every chain in ``wanted`` loaded, all before anything is timed: the main
    thread exports and composes while :data:`PREPARE_WORKERS` threads compile, so the machine is
    busy with preparation or with one timing, never both. A torch runtime's chains cost nothing to
    prepare and are prepared as they are timed (an empty dict here).

    A hybrid's whole graph is composed from its unit exports (``composed``: the units are its forward
    pass, then the read-out): exporting the encoder again was 20 of 243 s of an OpenVINO bf16
    calibration (cProfile, AMX Xeon, 2026-12-07), and the composed graph has the exported one's
    operators (test_whole_encoder_composed_from_units)."""
    runtime = entry.name
    whole_run: Run | None = None
    if whole and not composed:
        with fixed_threads(threads):
            whole_run, _ = prepare_checked(encoder, images, runtime, precision, threads, reference=reference)
    if chains is None:
        return whole_run, {}
    with ThreadPoolExecutor(max_workers=min(PREPARE_WORKERS, os.cpu_count() or 1)) as pool:
        pending: dict[tuple[int, ...], Future] = {}
        if whole and composed:
            everything = tuple(range(len(chains.modules)))  # the units, then the read-out
            pending[everything] = pool.submit(entry.load, chains.chain(everything), images, precision, threads)
        for chain in wanted:
            pending[chain] = pool.submit(entry.load, chains.chain(chain), chains.inputs[chain[0]], precision, threads)
        loaded = {chain: future.result() for chain, future in pending.items()}
    if whole and composed:
        whole_run = loaded.pop(everything)
        with fixed_threads(threads):
            check_output(whole_run, reference, runtime, precision)
    return whole_run, loaded


def _marginal_chains(
    i: int, n: int, inputs: dict[int, torch.Tensor], shapes: dict[int, torch.Size]
) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """The chain that times unit ``i`` (of ``n``) as its marginal cost, the chain it subtracts and
    the copies of ``i`` the difference holds (module docstring): what a graph pays once (its input
    and output conversions) cancels in the difference. A unit that keeps its input's shape is timed
    as four copies minus two (halved): graphs of one or two copies still pick their own layouts
    (OpenVINO bf16 on AMX, a RepMixer block at 192 x 128^2: t(1), t(2), t(4) = 28.1, 45.0, 70.3 ms).
    One that changes it is timed with its successor, minus the successor (the last unit: with its
    predecessor)."""
    if shapes[i] == inputs[i].shape:
        return (i,) * 4, (i,) * 2, 2
    if i + 1 < n:
        return (i, i + 1), (i + 1,), 1
    return (i - 1, i), (i - 1,), 1


def _marginal(chain: dict[str, Any], base: dict[str, Any], copies: int) -> dict[str, Any]:
    """The chain's timing dict with ``median_ms`` replaced by the marginal cost of one copy,
    floored at 5 % of the subtracted chain per copy (noise can make a small difference negative)."""
    marginal = max((chain["median_ms"] - base["median_ms"]) / copies, 0.05 * base["median_ms"] / copies)
    return {**chain, "median_ms": marginal, "chain_ms": chain["median_ms"], "base_ms": base["median_ms"]}


#: RBF smoothing of log(ms per unit of work): tolerates the few-% noise of one timing and
#: duplicate coordinates; chosen on the design set (benchmarks/results/latency_predictor/attempts.md)
SMOOTHING = 0.01


@dataclass(frozen=True)
class KindModel:
    """A kind's milliseconds per unit of :func:`~fastvitsearch.profile.work_units.work`,
    interpolated in log space over the units' coordinates (scipy's RBF interpolator, linear kernel
    with a linear trend, so it extrapolates by the trend); constant when too few samples vary."""

    kind: str
    n_points: int
    #: coordinate columns that vary among the samples (the others carry no information)
    columns: tuple[int, ...]
    interpolator: RBFInterpolator | None
    log_ms_per_work: float

    def predict_many(self, units: Sequence[WorkUnit]) -> np.ndarray:
        work_done = np.array([work(u) for u in units])
        if self.interpolator is None:
            return np.exp(self.log_ms_per_work) * work_done
        points = np.array([coordinates(u) for u in units])[:, list(self.columns)]
        return np.exp(self.interpolator(points)) * work_done

    def predict(self, unit: WorkUnit) -> float:
        return float(self.predict_many([unit])[0])


def fit_kind(kind: str, samples: Sequence[UnitSample]) -> KindModel:
    """Interpolate log(ms / work) over the samples' coordinates: efficiency varies smoothly with a
    unit's shape where its cost does not (a global linear fit of cost terms ran 10-30 % off at
    the search space's large units; attempts.md)."""
    points = np.array([coordinates(s.unit) for s in samples])
    values = np.log([s.ms / work(s.unit) for s in samples])
    columns = tuple(int(i) for i in np.flatnonzero(np.ptp(points, axis=0) > 0))
    interpolator = None
    for degree in (1, 0):  # a linear trend needs more samples than coordinates; else a constant one
        if not columns or len(samples) <= len(columns) + 1 and degree == 1:
            continue
        try:
            interpolator = RBFInterpolator(
                points[:, list(columns)], values, kernel="linear", degree=degree, smoothing=SMOOTHING
            )
            break
        except (np.linalg.LinAlgError, ValueError):  # collinear coordinates: try a simpler trend
            continue
    return KindModel(kind, len(samples), columns, interpolator, float(np.mean(values)))


def fit_kinds(samples: Sequence[UnitSample]) -> dict[str, KindModel]:
    by_kind: dict[str, list[UnitSample]] = defaultdict(list)
    for sample in samples:
        by_kind[sample.unit.kind].append(sample)
    return {kind: fit_kind(kind, group) for kind, group in by_kind.items()}


@dataclass(frozen=True)
class Glue:
    """Whole forward pass from the sum of its units: ``scale x units + fixed_ms``, what passes
    between units (reshapes, hand-offs, the forward's own fixed cost: ~10 ms per encoder in eager
    on the AMX Xeon, 25 % of a small encoder and 1 % of a large one, so one ratio cannot fit both)."""

    scale: float
    fixed_ms: float

    def __call__(self, units_ms: float) -> float:
        return self.scale * units_ms + self.fixed_ms


@dataclass
class LatencyPredictor:
    """Per-kind models fitted on one device/runtime/precision/threads, with their held-out error."""

    name: str
    models: dict[str, KindModel]
    #: per encoder kind: whole forward from the sum of its units
    glue: dict[str, Glue]
    held_out_error: float | None
    #: per calibration encoder: measured unit total, leave-it-out prediction (ms)
    calibration: list[dict[str, Any]] = field(default_factory=list)
    calibration_seconds: float = 0.0

    def predict_ms(self, spec: EncoderSpec, resolution: int) -> float:
        return self.glue.get(spec.kind, Glue(1.0, 0.0))(self.units_ms(spec, resolution))

    def units_ms(self, spec: EncoderSpec, resolution: int) -> float:
        units = work_units(spec, resolution)
        missing = sorted({u.kind for u in units} - set(self.models))
        if missing:
            raise SpecError(
                "device.latency",
                f"{spec.name} uses {', '.join(map(repr, missing))} units, which the latency model was not "
                f"calibrated on (calibrated: {', '.join(sorted(self.models))})",
            )
        return _units_total(self.models, list(Counter(units).items()))

    def estimate(self, spec: EncoderSpec, resolution: int) -> Sourced:
        """The prediction as a record value: ``predicted``, this model's label, its held-out error."""
        glue = self.glue.get(spec.kind, Glue(1.0, 0.0))
        detail = {
            "model": "sum of work units (ms per MAC interpolated per kind over log size; units timed as "
            "their marginal cost in a chain) x glue scale + glue fixed cost",
            "glue": {"scale": round(glue.scale, 4), "fixed_ms": round(glue.fixed_ms, 3)},
            "units": len(work_units(spec, resolution)),
            "held_out": "leave-one-calibration-encoder-out MAPE",
            "calibration_encoders": len(self.calibration),
        }
        return Sourced(round(self.predict_ms(spec, resolution), 3), "predicted", self.name, self.held_out_error, detail)


def _units_total(models: dict[str, KindModel], counted: Sequence[tuple[WorkUnit, int]]) -> float:
    """Sum over distinct units (with their counts), one interpolator call per kind."""
    by_kind: dict[str, list[tuple[WorkUnit, int]]] = defaultdict(list)
    for unit, count in counted:
        by_kind[unit.kind].append((unit, count))
    return sum(
        float(np.dot(models[kind].predict_many([u for u, _ in group]), [c for _, c in group]))
        for kind, group in by_kind.items()
    )


def _encoder_units(models: dict[str, KindModel], encoder: CalibrationEncoder) -> float:
    return _units_total(models, [(s.unit, s.count) for s in encoder.units])


def fit_glue(units_ms: Sequence[float], whole_ms: Sequence[float]) -> Glue:
    """Non-negative least squares of ``whole = scale x units + fixed`` on relative error; one
    encoder gives a ratio."""
    units, whole = np.asarray(units_ms, dtype=float), np.asarray(whole_ms, dtype=float)
    if len(units) < 2:
        return Glue(float(whole[0] / units[0]), 0.0)
    (scale, fixed), _ = nnls(np.stack([units, np.ones_like(units)], axis=1) / whole[:, None], np.ones(len(units)))
    return Glue(float(scale), float(fixed))


def _fit(encoders: Sequence[CalibrationEncoder]) -> tuple[dict[str, KindModel], dict[str, Glue]]:
    models = fit_kinds([s for e in encoders for s in e.units])
    by_kind: dict[str, list[CalibrationEncoder]] = defaultdict(list)
    for e in encoders:
        by_kind[e.kind].append(e)
    glue = {
        kind: fit_glue([_encoder_units(models, e) for e in group], [e.whole_ms for e in group])
        for kind, group in by_kind.items()
    }
    return models, glue


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
        predicted = other_glue.get(held.kind, glue[held.kind])(_encoder_units(refit, held))
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
