"""The ``Device`` protocol and the one device table: where each latency part comes from.

A device answers three questions — encoder latency, projector latency, LLM prefill — each as a
:class:`~fastvitsearch.record.Sourced` value, and says which fields of the record describe it.
Adding a device or runtime is one class meeting :class:`Device`, one config schema and one row
of :data:`DEVICE_TABLE`.

| name          | class            | numbers                                                         |
|---------------|------------------|-----------------------------------------------------------------|
| ``cpu``/``cuda`` | ``LocalDevice`` | measured here (timing protocol, cached) or predicted by the     |
|               |                  | work-unit latency model (``latency``); big LLMs predicted       |
| ``paper_m1max`` | ``PaperM1Max``  | the paper's published components; fits where it has none        |
| ``coreml``    | ``CoreMLDevice`` | encoder timed on a Mac (results file), the rest from a fallback |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from fastvitsearch.cache import MeasurementCache
from fastvitsearch.llm import LLMSpec
from fastvitsearch.profile.coreml_device import CoreMLDevice
from fastvitsearch.profile.local_device import LocalDevice
from fastvitsearch.profile.paper_device import PaperM1Max
from fastvitsearch.profile.timing import TimingProtocol
from fastvitsearch.record import Sourced
from fastvitsearch.spec import EncoderSpec, SpecError
from fastvitsearch.tiling import Tiling


class Device(Protocol):
    """Where a point's latency parts come from."""

    name: str

    def encoder_latency(self, spec: EncoderSpec, resolution: int) -> Sourced: ...

    def projector_latency(self, feature_width: int, tokens: int, llm: LLMSpec) -> Sourced: ...

    def prefill_latency(self, llm: LLMSpec, tokens: int) -> Sourced: ...

    def predicted_encoder_latency(self, spec: EncoderSpec, resolution: int, required: bool = False) -> Sourced | None:
        """The encoder latency its latency model predicts (with its held-out error) where the device
        keeps one beside its measurement, or always when ``required`` (a screened search asks before
        measuring); None where it has no model for the encoder."""
        ...

    def tiled_encoder_latency(self, spec: EncoderSpec, resolution: int, tiling: Tiling) -> Sourced | None:
        """The device's own number for a tiled point, or None: then passes x one pass is used."""
        ...

    def record_fields(self, spec: EncoderSpec, resolution: int) -> dict[str, Any]:
        """``device``, ``device_fingerprint`` and, where they apply, ``threads`` and ``runtime``."""
        ...


# --- config schemas (typed: Hydra refuses a misspelt key or a wrong type before anything runs) ---
@dataclass
class TimingConfig:
    warmup_runs: int = 1
    warmup_seconds: float = 0.0
    min_runs: int = 3
    max_runs: int = 20
    budget_seconds: float = 2.0
    noisy_threshold: float = 0.10
    #: stop after two runs that agree within this share (before min_runs) once the budget is spent
    agree_within: float = 0.05
    #: stop once the median's 95 % confidence interval is within this share of it (6+ runs)
    precision: float = 0.05
    #: keep freed memory in the process (no page faults on every run; timing.retain_freed_memory)
    retain_memory: bool = True


@dataclass
class LocalDeviceConfig:
    """``cpu`` / ``cuda``: measure here. 1 thread by default (stable on shared machines; README)."""

    name: str = "cpu"
    #: eager | channels_last | compile | onnxruntime | openvino (the last two: pip install -e '.[runtimes]')
    runtime: str = "eager"
    #: fp32 | bf16 | fp16, where the runtime and this CPU support it (the LLM prefill stays in torch)
    precision: str = "fp32"
    threads: int = 1
    #: encoder latency: measured | predicted (the work-unit latency model, calibrated here once
    #: and cached) | both (measured, the prediction beside it). A search with screen_latency=true
    #: predicts every design first, whatever this says.
    latency: str = "measured"
    #: what the latency model is calibrated on: default (the search space's widths and sizes,
    #: ViT-B to ViT-L blocks; ~1.5 min here) | tiny (tiny encoders, seconds: tests, smoke runs)
    latency_calibration: str = "default"
    force: bool = False
    #: LLMs above this size are predicted from the prefill calibration instead of measured
    max_measured_llm_params: float = 2.0e9
    calibration_llms: list[str] = field(default_factory=lambda: ["qwen2_0_5b", "qwen2_1_5b"])
    calibration_tokens: list[int] = field(default_factory=lambda: [16, 64, 256])
    #: measure: time every prefill length; calibrated: time calibration_tokens, predict the rest
    prefill: str = "calibrated"
    #: a tiled point's encoder latency: sequential = passes x one measured pass (the paper's
    #: convention) | batched = one measured run of every tile and the base image as one batch
    tiles: str = "sequential"
    #: null = $FASTVITSEARCH_CACHE or ~/.cache/fastvitsearch
    cache_dir: str | None = None
    timing: TimingConfig = field(default_factory=TimingConfig)


@dataclass
class PaperDeviceConfig:
    """The FastVLM paper's M1 Max (published components, predicted elsewhere)."""

    name: str = "paper_m1max"


@dataclass
class CoreMLDeviceConfig:
    """Encoder latencies from ``time_coreml.py``'s results file; the rest from ``fallback``."""

    name: str = "coreml"
    results: str | None = None
    compute_unit: str = "ALL"
    fallback: Any = field(default_factory=lambda: {"name": "paper_m1max"})


def _local(options: dict[str, Any]) -> LocalDevice:
    timing = dict(options.pop("timing", None) or {})
    unknown = sorted(set(timing) - {f.name for f in fields(TimingConfig)})
    if unknown:
        raise SpecError(
            f"device.timing.{unknown[0]}", f"unknown option; known: {[f.name for f in fields(TimingConfig)]}"
        )
    try:
        protocol = TimingProtocol(**timing)
    except ValueError as err:
        raise SpecError("device.timing", str(err)) from None
    cache = MeasurementCache(options.pop("cache_dir", None))
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    return LocalDevice(device=options.pop("name"), protocol=protocol, cache=cache, **options)


def _coreml(options: dict[str, Any]) -> CoreMLDevice:
    if not options.get("results"):
        raise SpecError("device.results", "name the results file written by time_coreml.py")
    fallback = device_from_config(options.get("fallback") or {"name": "paper_m1max"})
    return CoreMLDevice(str(options["results"]), fallback, options.get("compute_unit", "ALL"))


#: name -> (config schema, factory from a validated options dict)
DEVICE_TABLE: dict[str, tuple[type, Callable[[dict[str, Any]], Device]]] = {
    "cpu": (LocalDeviceConfig, _local),
    "cuda": (LocalDeviceConfig, _local),
    "paper_m1max": (PaperDeviceConfig, lambda options: PaperM1Max()),
    "coreml": (CoreMLDeviceConfig, _coreml),
}


def default_config(name: str) -> Any:
    """The schema instance ``device=<name>`` composes to (cuda measures LLMs up to 10B)."""
    schema, _ = DEVICE_TABLE[name]
    config = schema(name=name)
    if name == "cuda":
        config.max_measured_llm_params = 1.0e10
    return config


def device_from_config(options: dict[str, Any]) -> Device:
    """A device from its config mapping (``conf`` group ``device``), naming a bad key."""
    options = dict(options)
    name = options.get("name")
    if name not in DEVICE_TABLE:
        raise SpecError("device", f"unknown device {name!r}; one of {', '.join(DEVICE_TABLE)}")
    schema, factory = DEVICE_TABLE[name]
    known = {f.name for f in fields(schema)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise SpecError(f"device.{unknown[0]}", f"unknown option for device {name}; known: {sorted(known)}")
    return factory(options)
