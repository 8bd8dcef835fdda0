"""``cpu`` / ``cuda``: latencies measured on this machine with the timing protocol (cached).

LLMs too large to measure (over ``max_measured_llm_params``) are predicted from a prefill model
calibrated on the LLMs that were measured, labelled ``predicted`` with its held-out error.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastvitsearch.cache import MeasurementCache
from fastvitsearch.llm import LLM_PRESETS, LLMSpec
from fastvitsearch.profile.latency_calibration import CALIBRATIONS
from fastvitsearch.profile.latency_model import LinearLatencyModel, fit_latency
from fastvitsearch.profile.runtimes import check_runtime
from fastvitsearch.profile.timing import TimingProtocol
from fastvitsearch.record import Sourced
from fastvitsearch.spec import EncoderSpec, SpecError
from fastvitsearch.tiling import Tiling

if TYPE_CHECKING:  # torch, timm and the measuring modules load on the first measurement: a rerun
    import torch  # of a finished sweep builds its device without them

    from fastvitsearch.profile.latency_predictor import LatencyPredictor

#: where a local device's encoder latency comes from (``device.latency``)
LATENCY_MODES = ("measured", "predicted", "both")
#: how a tiled point's passes are timed (``device.tiles``)
TILE_MODES = ("sequential", "batched")


@dataclass
class LocalDevice:
    """Measures on this machine's CPU or GPU; caches every measurement on disk."""

    device: str = "cpu"
    runtime: str = "eager"
    precision: str = "fp32"
    threads: int = 1
    #: measured | predicted | both (``LocalDeviceConfig.latency``)
    latency: str = "measured"
    #: default | tiny (``latency_predictor.CALIBRATIONS``)
    latency_calibration: str = "default"
    protocol: TimingProtocol = field(default_factory=TimingProtocol)
    cache: MeasurementCache | None = field(default_factory=MeasurementCache)
    force: bool = False
    max_measured_llm_params: float = 2e9
    calibration_llms: tuple[str, ...] = ("qwen2_0_5b", "qwen2_1_5b")
    calibration_tokens: tuple[int, ...] = (16, 64, 256)
    #: "measure": time every prefill length asked for; "calibrated": time the calibration lengths
    #: per LLM and predict the others from that LLM's t = a + FLOPs/R (with its held-out error)
    prefill: str = "measure"
    #: sequential | batched (``LocalDeviceConfig.tiles``)
    tiles: str = "sequential"

    def __post_init__(self) -> None:
        self._runtime = check_runtime(self.runtime, self.precision)
        if self.latency not in LATENCY_MODES:
            raise SpecError("device.latency", f"must be one of {', '.join(LATENCY_MODES)}, got {self.latency!r}")
        if self.latency_calibration not in CALIBRATIONS:
            raise SpecError(
                "device.latency_calibration",
                f"unknown calibration {self.latency_calibration!r}; one of {', '.join(CALIBRATIONS)}",
            )
        if self.tiles not in TILE_MODES:
            raise SpecError("device.tiles", f"must be one of {', '.join(TILE_MODES)}, got {self.tiles!r}")
        if self.prefill not in ("measure", "calibrated"):
            raise SpecError("device.prefill", f"must be 'measure' or 'calibrated', got {self.prefill!r}")
        cores = os.cpu_count() or 1
        if not 1 <= self.threads <= cores:
            raise SpecError(
                "device.threads",
                f"must be 1..{cores} (this machine's cores), got {self.threads}: more threads "
                "than cores makes every timing wait on descheduled threads",
            )
        unknown = sorted(set(self.calibration_llms) - set(LLM_PRESETS))
        if unknown:
            raise SpecError("device.calibration_llms", f"unknown LLM {unknown[0]!r}; known: {', '.join(LLM_PRESETS)}")
        if self.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise SpecError("device", "cuda was asked for but torch sees no CUDA device")
        self.name = self.device
        self._llm: tuple[str, torch.nn.Module] | None = None
        self._prefill_model: LinearLatencyModel | None = None
        self._per_llm_models: dict[str, LinearLatencyModel] = {}
        self._calibration_prefills: dict[str, dict[int, Sourced]] = {}
        self._predictor: LatencyPredictor | None = None

    @functools.cached_property
    def torch_device(self) -> torch.device:
        import torch

        return torch.device(self.device)

    def record_fields(self, spec: EncoderSpec, resolution: int) -> dict[str, Any]:
        from fastvitsearch.profile.timing import device_fingerprint

        return {
            "device": self.name,
            "device_fingerprint": device_fingerprint(self.torch_device),
            "threads": self.threads,
            "runtime": self.runtime,
            "runtime_version": self._runtime.version(),
            "precision": self.precision,
        }

    def encoder_latency(self, spec: EncoderSpec, resolution: int) -> Sourced:
        if self.latency == "predicted" and (predicted := self.predicted_encoder_latency(spec, resolution)):
            return predicted
        return self.measured_encoder_latency(spec, resolution)

    def predictor(self) -> LatencyPredictor:
        """The work-unit latency model of this device, runtime, precision and threads: calibrated
        on first use (150 s in eager on the 2-core Xeon), from the unit-timing cache after that."""
        if self._predictor is None:
            from fastvitsearch.profile.latency_predictor import calibrate

            self._predictor = calibrate(
                CALIBRATIONS[self.latency_calibration](),
                device=self.torch_device,
                runtime=self.runtime,
                precision=self.precision,
                threads=self.threads,
                cache=self.cache,
                force=self.force,
            )
        return self._predictor

    def predicted_encoder_latency(self, spec: EncoderSpec, resolution: int, required: bool = False) -> Sourced | None:
        """None for encoder kinds the latency model cannot decompose (they are measured), and in
        ``measured`` mode unless ``required``."""
        from fastvitsearch.profile.work_units import UNIT_RULES

        if (self.latency == "measured" and not required) or spec.kind not in UNIT_RULES:
            return None
        return self.predictor().estimate(spec, resolution)

    def measured_encoder_latency(self, spec: EncoderSpec, resolution: int, batch: int = 1) -> Sourced:
        from fastvitsearch.profile.measure import measure_encoder

        return measure_encoder(
            spec,
            resolution,
            batch=batch,
            device=self.torch_device,
            runtime=self.runtime,
            precision=self.precision,
            threads=self.threads,
            protocol=self.protocol,
            cache=self.cache,
            force=self.force,
        )

    def tiled_encoder_latency(self, spec: EncoderSpec, resolution: int, tiling: Tiling) -> Sourced | None:
        """``batched``: every tile and the base image in one measured run (batch = passes);
        ``sequential``: None, so the point takes passes x one measured pass (the paper's convention)."""
        if self.tiles == "sequential":
            return None
        one_batch = self.measured_encoder_latency(spec, resolution, batch=tiling.passes)
        label = f"{one_batch.label} batch of {tiling.passes} ({tiling.label} tiles in one run)"
        detail = {**(one_batch.detail or {}), "passes": tiling.passes, "tiles": "batched"}
        return Sourced(one_batch.value, one_batch.kind, label, one_batch.error, detail)

    def projector_latency(self, feature_width: int, tokens: int, llm: LLMSpec) -> Sourced:
        from fastvitsearch.profile.measure import measure_projector

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
        from fastvitsearch.llm import build_llm
        from fastvitsearch.profile.measure import prefill_dtype

        if self._llm is None or self._llm[0] != llm.name:
            self._llm = None
            self._llm = (llm.name, build_llm(llm, device=self.torch_device, dtype=prefill_dtype(self.torch_device)))
        return self._llm[1]

    def _measured_prefill(self, llm: LLMSpec, tokens: int) -> Sourced:
        from fastvitsearch.profile.measure import measure_prefill

        kwargs = dict(device=self.torch_device, threads=self.threads, cache=self.cache, force=self.force)
        return measure_prefill(llm, tokens, model_factory=lambda: self._model(llm), **kwargs)

    def prefill_latency(self, llm: LLMSpec, tokens: int) -> Sourced:
        if llm.params > self.max_measured_llm_params:
            return self.prefill_model().estimate(llm.prefill_flops(tokens))
        if self.prefill == "measure":
            return self._measured_prefill(llm, tokens)
        if llm.name not in self._per_llm_models:  # every calibration length while this LLM is built
            lengths = self.calibration_tokens
            measured = {t: self._measured_prefill(llm, t) for t in lengths}
            self._calibration_prefills[llm.name] = measured
            self._per_llm_models[llm.name] = fit_latency(
                f"prefill-fit[{llm.name}]@{self.name}",
                [llm.prefill_flops(t) for t in lengths],
                [m.value for m in measured.values()],
            )
        if tokens in self.calibration_tokens:
            return self._calibration_prefills[llm.name][tokens]
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
