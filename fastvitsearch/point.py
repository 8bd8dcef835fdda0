"""One (encoder, resolution, LLM) point and its full record: counted, timed, scored.

The record is plain JSON (Optuna user attrs, CSV/parquet columns); every number in it carries
its source next to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastvitsearch.accuracy import AccuracySource, first_value
from fastvitsearch.llm import LLMSpec
from fastvitsearch.presets import get_preset
from fastvitsearch.profile.count import count_encoder
from fastvitsearch.profile.devices import CoreMLDevice, LocalDevice, PaperM1Max
from fastvitsearch.profile.estimate import Estimate
from fastvitsearch.profile.timing import device_fingerprint, versions
from fastvitsearch.profile.ttft import ttft
from fastvitsearch.spec import EncoderSpec


@dataclass(frozen=True)
class Point:
    """What one trial evaluates. ``label`` names the encoder in tables (preset name or custom)."""

    label: str
    encoder: EncoderSpec
    resolution: int
    llm: LLMSpec | None

    @property
    def key(self) -> str:
        return f"{self.label}@{self.resolution}" + (f"+{self.llm.name}" if self.llm else "")


def family_of(label: str) -> str:
    """Encoder family for plots: the preset's family, else ``custom``."""
    try:
        return get_preset(label).family
    except ValueError:
        return "custom"


def _part(prefix: str, estimate: Estimate) -> dict[str, Any]:
    detail = estimate.detail or {}
    return {
        prefix: estimate.value,
        f"{prefix}_source": estimate.source,
        f"{prefix}_error": estimate.error,
        f"{prefix}_iqr": detail.get("iqr_ms"),
        f"{prefix}_n": detail.get("n"),
        f"{prefix}_noisy": detail.get("noisy"),
        f"{prefix}_cached": detail.get("cached"),
    }


def evaluate(
    point: Point,
    device: LocalDevice | PaperM1Max | CoreMLDevice,
    accuracy_sources: list[AccuracySource],
    metric: str,
    text_tokens: int = 0,
) -> dict[str, Any]:
    """Count, time and score one point. Raises on invalid points (the sweep records the error)."""
    counts = count_encoder(point.encoder, point.resolution)
    record: dict[str, Any] = {
        "point": point.key,
        "encoder": point.label,
        "family": family_of(point.label),
        "spec": point.encoder.to_dict(),
        "spec_hash": counts.spec_hash,
        "resolution": point.resolution,
        "llm": point.llm.name if point.llm else None,
        "visual_tokens": counts.visual_tokens,
        "output_stride": counts.output_stride,
        "feature_width": counts.feature_width,
        "params": counts.params,
        "params_reparameterized": counts.params_reparameterized,
        "macs": counts.macs,
        **{f"macs_{op}": v for op, v in counts.macs_by_op.items()},
        "counts_source": counts.source,
        "device": device.name,
        "text_tokens": text_tokens,
        **{f"version_{k}": v for k, v in versions().items()},
    }
    if isinstance(device, LocalDevice):
        record["device_fingerprint"] = device_fingerprint(device.torch_device)
        record["threads"] = device.threads
        record["runtime"] = device.runtime
    elif isinstance(device, CoreMLDevice):
        record["device_fingerprint"] = device.name
        record["coreml_covered"] = device.covers(point.encoder, point.resolution)
    if point.llm is None:
        record.update(_part("encoder_ms", device.encoder_latency(point.encoder, point.resolution)))
    else:
        result = ttft(point.encoder, point.resolution, point.llm, device, text_tokens=text_tokens)
        for name in ("encoder_ms", "projector_ms", "prefill_ms", "ttft_ms"):
            record.update(_part(name, getattr(result, name)))
        accuracy = first_value(accuracy_sources, point.encoder, point.resolution, point.llm, metric)
        record.update(
            accuracy=accuracy.value if accuracy else None,
            accuracy_metric=accuracy.metric if accuracy else metric,
            accuracy_source=accuracy.source if accuracy else None,
            accuracy_error=accuracy.error if accuracy else None,
            accuracy_detail=accuracy.detail if accuracy else None,
        )
    return record
