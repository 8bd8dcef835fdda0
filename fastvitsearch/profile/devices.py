"""Device profiles: where each latency part comes from.

- ``cpu`` / ``cuda`` (:class:`LocalDevice`): measured here with the timing protocol; LLMs too
  large to measure (over ``max_measured_llm_params``) are predicted from a prefill model
  calibrated on the LLMs that were measured, labelled ``predicted`` with its held-out error.
- ``paper_m1max`` (:class:`PaperM1Max`): the FastVLM paper's M1 Max components (encoder
  latency and LLM prefill, Table 10 first), used directly where published; elsewhere a
  work-based fit on the published points, labelled ``predicted`` with its leave-one-out error.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from fastvitsearch.llm import LLM_PRESETS, PAPER_NAMES, LLMSpec, build_llm
from fastvitsearch.paper import ENCODER_NAMES, paper_results, rows_for
from fastvitsearch.presets import get_spec
from fastvitsearch.profile.cache import MeasurementCache
from fastvitsearch.profile.count import count_encoder
from fastvitsearch.profile.estimate import Estimate
from fastvitsearch.profile.latency_model import LinearLatencyModel, fit_latency
from fastvitsearch.profile.measure import measure_encoder, measure_prefill, measure_projector, prefill_dtype
from fastvitsearch.profile.runtimes import check_runtime
from fastvitsearch.profile.timing import TimingProtocol
from fastvitsearch.spec import EncoderSpec, SpecError

DEVICES = ("cpu", "cuda", "paper_m1max", "coreml")


@dataclass
class LocalDevice:
    """Measures on this machine's CPU or GPU; caches every measurement on disk."""

    device: str = "cpu"
    runtime: str = "eager"
    threads: int = 1
    protocol: TimingProtocol = field(default_factory=TimingProtocol)
    cache: MeasurementCache | None = field(default_factory=MeasurementCache)
    force: bool = False
    max_measured_llm_params: float = 2e9
    calibration_llms: tuple[str, ...] = ("qwen2_0_5b", "qwen2_1_5b")
    calibration_tokens: tuple[int, ...] = (16, 64, 256)
    #: "measure": time every prefill length asked for; "calibrated": time the calibration lengths
    #: per LLM and predict the others from that LLM's t = a + FLOPs/R (with its held-out error)
    prefill: str = "measure"

    def __post_init__(self) -> None:
        check_runtime(self.runtime)
        if self.prefill not in ("measure", "calibrated"):
            raise SpecError("device.prefill", f"must be 'measure' or 'calibrated', got {self.prefill!r}")
        if self.threads < 1:
            raise SpecError("device.threads", f"must be >= 1, got {self.threads}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise SpecError("device", "cuda was asked for but torch sees no CUDA device")
        self.torch_device = torch.device(self.device)
        self.name = self.device
        self._llm: tuple[str, torch.nn.Module] | None = None
        self._prefill_model: LinearLatencyModel | None = None
        self._per_llm_models: dict[str, LinearLatencyModel] = {}

    def encoder_latency(self, spec: EncoderSpec, resolution: int) -> Estimate:
        return measure_encoder(
            spec,
            resolution,
            device=self.torch_device,
            runtime=self.runtime,
            threads=self.threads,
            protocol=self.protocol,
            cache=self.cache,
            force=self.force,
        )

    def projector_latency(self, feature_width: int, tokens: int, llm: LLMSpec) -> Estimate:
        return measure_projector(
            feature_width,
            tokens,
            llm,
            device=self.torch_device,
            threads=self.threads,
            protocol=self.protocol,
            cache=self.cache,
            force=self.force,
        )

    def _model(self, llm: LLMSpec) -> torch.nn.Module:
        """One random-weight LLM kept at a time: building a 1.5B model costs seconds and GBs."""
        if self._llm is None or self._llm[0] != llm.name:
            self._llm = None
            self._llm = (llm.name, build_llm(llm, device=self.torch_device, dtype=prefill_dtype(self.torch_device)))
        return self._llm[1]

    def _measured_prefill(self, llm: LLMSpec, tokens: int) -> Estimate:
        kwargs = dict(device=self.torch_device, threads=self.threads, cache=self.cache, force=self.force)
        return measure_prefill(llm, tokens, model_factory=lambda: self._model(llm), **kwargs)

    def prefill_latency(self, llm: LLMSpec, tokens: int) -> Estimate:
        if llm.params > self.max_measured_llm_params:
            return self.prefill_model().estimate(llm.prefill_flops(tokens))
        if self.prefill == "measure" or tokens in self.calibration_tokens:
            return self._measured_prefill(llm, tokens)
        if llm.name not in self._per_llm_models:
            lengths = self.calibration_tokens
            times = [self._measured_prefill(llm, t).value for t in lengths]
            self._per_llm_models[llm.name] = fit_latency(
                f"prefill-fit[{llm.name}]@{self.name}", [llm.prefill_flops(t) for t in lengths], times
            )
        return self._per_llm_models[llm.name].estimate(llm.prefill_flops(tokens))

    def prefill_model(self) -> LinearLatencyModel:
        """``t = a + FLOPs/R`` over every measured (LLM, length); error: leave-one-LLM-out."""
        if self._prefill_model is None:
            self._prefill_model = self._calibrate_prefill()
        return self._prefill_model

    def _calibrate_prefill(self) -> LinearLatencyModel:
        llms = [LLM_PRESETS[n] for n in self.calibration_llms if LLM_PRESETS[n].params <= self.max_measured_llm_params]
        if not llms:
            raise SpecError("device.calibration_llms", "no calibration LLM is small enough to measure")
        points = [
            (llm, llm.prefill_flops(t), self._measured_prefill(llm, t).value)
            for llm in llms
            for t in self.calibration_tokens
        ]
        model = fit_latency(
            f"prefill-fit[{'+'.join(self.calibration_llms)}]@{self.name}",
            [p[1] for p in points],
            [p[2] for p in points],
        )
        if len(llms) > 1:  # held-out error across model sizes, the error that matters for 7B
            errors = []
            for held in llms:
                fit = fit_latency(
                    "held", [p[1] for p in points if p[0] != held], [p[2] for p in points if p[0] != held]
                )
                errors += [abs(fit.predict(f) - t) / t for llm, f, t in points if llm == held]
            model = LinearLatencyModel(**{**model.__dict__, "loo_error": round(sum(errors) / len(errors), 4)})
        return model


# --- the paper's M1 Max ---------------------------------------------------------------------------
#: Table 4 is left out: its FastViTHD latencies are a second series, ~2x Table 10's, and every
#: Table 6 TTFT is built from Table 10 (see the CSV's notes).
_TABLE_PRIORITY = ("Table 10", "Table 1", "Table 12", "Table 3")


def _table_rank(table: str) -> int:
    return next(
        (i for i, prefix in enumerate(_TABLE_PRIORITY) if table.startswith(prefix + " ") or table == prefix),
        len(_TABLE_PRIORITY),
    )


@dataclass
class PaperM1Max:
    """Published M1 Max components (Core ML encoder on the ANE, MLX FP16 LLM on the GPU)."""

    name: str = "paper_m1max"

    def __post_init__(self) -> None:
        self._encoder_points = self._published_encoder_latencies()
        self._prefill_points = self._published_prefills()

    @staticmethod
    def _published_encoder_latencies() -> dict[tuple[str, int], tuple[float, str]]:
        """(spec hash, resolution) -> (ms, table); Table 10 wins (every Table 6 TTFT uses it)."""
        points: dict[tuple[str, int], tuple[float, str, int]] = {}
        for preset in ENCODER_NAMES:
            spec = get_spec(preset)
            for row in rows_for(preset, "encoder_latency").itertuples():
                resolution = row.resolution_px
                if resolution != resolution or int(resolution) % spec.output_stride:
                    continue  # not a single resolution, or one our spec cannot take (e.g. 224 @ stride 64)
                key = (spec.content_hash, int(resolution))
                rank = _table_rank(row.source_table_or_figure)
                if rank == len(_TABLE_PRIORITY):
                    continue
                if key not in points or rank < points[key][2]:
                    points[key] = (float(row.value), row.source_table_or_figure, rank)
        return {k: (v, t) for k, (v, t, _) in points.items()}

    @staticmethod
    def _published_prefills() -> dict[tuple[str, int], tuple[float, str]]:
        """(LLM preset, visual tokens) -> (ms, tables); conflicting rows resolved by majority."""
        frame = paper_results()
        values: dict[tuple[str, int], list[tuple[float, str]]] = {}
        for preset, paper_name in PAPER_NAMES.items():
            rows = frame[(frame["metric"] == "LLM_prefill") & (frame["llm"] == paper_name)]
            for row in rows.itertuples():
                encoder = next((p for p, names in ENCODER_NAMES.items() if row.encoder in names), None)
                resolution = row.resolution_px
                if encoder is None or resolution != resolution or int(resolution) % get_spec(encoder).output_stride:
                    continue
                tokens = get_spec(encoder).tokens(int(resolution))
                values.setdefault((preset, tokens), []).append((float(row.value), row.source_table_or_figure))
        chosen = {}
        for key, entries in values.items():
            value, _ = Counter(v for v, _ in entries).most_common(1)[0]
            tables = sorted({t for v, t in entries if v == value})
            chosen[key] = (value, ", ".join(tables))
        return chosen

    def encoder_latency(self, spec: EncoderSpec, resolution: int) -> Estimate:
        spec.tokens(resolution)
        if (hit := self._encoder_points.get((spec.content_hash, resolution))) is not None:
            return Estimate(hit[0], f"published:{hit[1]}")
        return self._encoder_fit(spec).estimate(count_encoder(spec, resolution).macs)

    def _encoder_fit(self, spec: EncoderSpec) -> LinearLatencyModel:
        """Per-family fit when the spec is a published encoder, else over all published points."""
        same = [(k, v) for k, v in self._encoder_points.items() if k[0] == spec.content_hash]
        points = same if len(same) >= 2 else list(self._encoder_points.items())
        label = "family" if points is same else "all-encoders"
        specs = {get_spec(p).content_hash: get_spec(p) for p in ("fastvithd", "fastvit", "vit_l14")}
        xs = [count_encoder(specs[h], r).macs for (h, r), _ in points]
        return fit_latency(
            f"m1max-encoder-fit[{label},MACs]",
            xs,
            [v for _, (v, _) in points],
            unit="MACs",
            through_origin=points is not same,
        )

    def projector_latency(self, feature_width: int, tokens: int, llm: LLMSpec) -> Estimate:
        return Estimate(0.0, "not-timed:the paper's TTFT is encoder latency + LLM prefill")

    def prefill_latency(self, llm: LLMSpec, tokens: int) -> Estimate:
        if (hit := self._prefill_points.get((llm.name, tokens))) is not None:
            return Estimate(hit[0], f"published:{hit[1]}")
        points = [(t, v) for (name, t), (v, _) in self._prefill_points.items() if name == llm.name]
        if not points:
            raise SpecError("llm", f"the paper publishes no M1 Max prefill for {llm.name}")
        model = fit_latency(
            f"m1max-prefill-fit[{llm.name}]", [llm.prefill_flops(t) for t, _ in points], [v for _, v in points]
        )
        return model.estimate(llm.prefill_flops(tokens))


@dataclass
class CoreMLDevice:
    """Encoder latencies timed on an Apple device (``time_coreml.py``'s results file).

    Points the file covers (matched by spec hash and resolution, for ``compute_unit``) take its
    median, labelled ``measured:coreml:<device>/<unit>``; every other part and every point it
    does not cover comes from ``fallback`` with that device's own source label.
    """

    results: str
    fallback: LocalDevice | PaperM1Max
    compute_unit: str = "ALL"

    def __post_init__(self) -> None:
        path = Path(self.results)
        if not path.exists():
            raise SpecError("device.results", f"no Core ML results file at {path}")
        payload = json.loads(path.read_text())
        self.device_name = payload.get("device_name", "unknown Apple device")
        self.name = f"coreml:{self.device_name}"
        self._latency = {}
        for row in payload.get("results", []):
            if row.get("compute_unit") == self.compute_unit and row.get("spec_hash"):
                self._latency[(row["spec_hash"], int(row["resolution"]))] = row
        if not self._latency:
            raise SpecError("device.compute_unit", f"{path} has no results for compute unit {self.compute_unit}")

    def covers(self, spec: EncoderSpec, resolution: int) -> bool:
        return (spec.content_hash, resolution) in self._latency

    def encoder_latency(self, spec: EncoderSpec, resolution: int) -> Estimate:
        row = self._latency.get((spec.content_hash, resolution))
        if row is None:
            return self.fallback.encoder_latency(spec, resolution)
        detail = {
            "median_ms": row["median_ms"],
            "p90_ms": row.get("p90_ms"),
            "n": row.get("n"),
            "package": row.get("package"),
            "precision": row.get("precision"),
            "results_file": self.results,
        }
        return Estimate(
            float(row["median_ms"]), f"measured:coreml:{self.device_name}/{self.compute_unit}", None, detail
        )

    def projector_latency(self, feature_width: int, tokens: int, llm: LLMSpec) -> Estimate:
        return self.fallback.projector_latency(feature_width, tokens, llm)

    def prefill_latency(self, llm: LLMSpec, tokens: int) -> Estimate:
        return self.fallback.prefill_latency(llm, tokens)


def make_device(name: str, **options) -> LocalDevice | PaperM1Max:
    """``cpu`` | ``cuda`` | ``paper_m1max`` -> a device profile."""
    if name == "paper_m1max":
        return PaperM1Max()
    if name in ("cpu", "cuda"):
        return LocalDevice(device=name, **options)
    raise SpecError("device", f"unknown device {name!r}; one of {', '.join(DEVICES)}")


def device_from_config(options: dict[str, Any]) -> LocalDevice | PaperM1Max | CoreMLDevice:
    """A device profile from a ``conf/device/*.yaml`` mapping (name, threads, timing, cache_dir…)."""
    options = dict(options)
    name = options.pop("name")
    if name == "paper_m1max":
        return make_device(name)
    if name == "coreml":
        fallback = device_from_config(options.pop("fallback", None) or {"name": "paper_m1max"})
        if not options.get("results"):
            raise SpecError("device.results", "name the results file written by time_coreml.py")
        return CoreMLDevice(str(options["results"]), fallback, options.get("compute_unit", "ALL"))
    protocol = TimingProtocol(**(options.pop("timing", None) or {}))
    cache = MeasurementCache(options.pop("cache_dir", None))
    known = {f.name for f in fields(LocalDevice)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise SpecError(
            f"device.{unknown[0]}", f"unknown option; known: {sorted(known - {'device', 'cache', 'protocol'})}"
        )
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    return make_device(name, protocol=protocol, cache=cache, **options)
