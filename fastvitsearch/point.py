"""One (encoder, resolution, LLM) point and its evaluation into a :class:`TrialRecord`.

Cheap first: the spec gives tokens and stride, counting gives params and MACs (once per point),
then the device gives latencies and the accuracy sources a score, each with its source.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastvitsearch.accuracy import AccuracySource, first_value
from fastvitsearch.llm import LLMSpec
from fastvitsearch.presets import get_preset
from fastvitsearch.profile.count import count_encoder
from fastvitsearch.profile.devices import Device
from fastvitsearch.profile.timing import versions
from fastvitsearch.profile.ttft import encoder_latency, ttft
from fastvitsearch.record import TrialRecord
from fastvitsearch.spec import EncoderSpec, SpecError
from fastvitsearch.tiling import Tiling

#: how a record says it was not scored because it is too slow
OVER_BUDGET = "over the TTFT budget"


@dataclass(frozen=True)
class Point:
    """What one trial evaluates. ``label`` names the encoder in tables (preset name or custom);
    ``tiling`` (a grid of ``resolution``-px tiles plus a base image) makes it a tiled point."""

    label: str
    encoder: EncoderSpec
    resolution: int
    llm: LLMSpec | None
    tiling: Tiling | None = None

    @property
    def key(self) -> str:
        tiles = f"[{self.tiling.label}]" if self.tiling else ""
        return f"{self.label}@{self.resolution}{tiles}" + (f"+{self.llm.name}" if self.llm else "")

    @property
    def identity(self) -> str:
        """What makes two points the same evaluation: the architecture (spec hash, not its name),
        resolution, tiling and LLM."""
        tiles = f"[{self.tiling.label}]" if self.tiling else ""
        return f"{self.encoder.content_hash}@{self.resolution}{tiles}" + (f"+{self.llm.name}" if self.llm else "")


def family_of(label: str) -> str:
    """Encoder family for plots: the preset's family, else ``custom``."""
    try:
        return get_preset(label).family
    except SpecError:
        return "custom"


def counted_record(point: Point) -> TrialRecord:
    """The record of what is counted, not timed: tokens, stride, width, params, MACs."""
    counts = count_encoder(point.encoder, point.resolution)
    passes = point.tiling.passes if point.tiling else 1

    def total(macs: int | None) -> int | None:
        return None if macs is None else macs * passes

    return TrialRecord(
        point=point.key,
        encoder=point.label,
        family=family_of(point.label),
        spec=point.encoder.to_dict(),
        spec_hash=counts.spec_hash,
        resolution=point.resolution,
        llm=point.llm.name if point.llm else None,
        visual_tokens=counts.visual_tokens * passes,
        output_stride=counts.output_stride,
        feature_width=counts.feature_width,
        params=counts.params,
        params_reparameterized=counts.params_reparameterized,
        macs=total(counts.macs),
        macs_conv=total(counts.macs_by_op.get("conv")),
        macs_linear=total(counts.macs_by_op.get("linear")),
        macs_attention=total(counts.macs_by_op.get("attention")),
        uncounted_ops=dict(counts.uncounted_ops),
        counts_source=counts.source
        + (f"; x{passes} passes ({point.tiling.label} tiles, paper convention)" if point.tiling else ""),
        tiling=point.tiling.label if point.tiling else None,
        versions=versions(),
    )


def evaluate(
    point: Point,
    device: Device | None,
    accuracy_sources: list[AccuracySource],
    metric: str | None,
    text_tokens: int = 0,
    ttft_budget_ms: float | None = None,
) -> TrialRecord:
    """Count, time and score one point. Raises on invalid points (the sweep records the error).

    Without a device only counts; without an LLM only the encoder is timed; without sources (or
    metric) no accuracy is asked for. A source that has no value says why in ``refusals``. Cheap
    first: a point whose TTFT is over ``ttft_budget_ms`` is not scored (a proxy source would
    train a model for it); its record says so.
    """
    record = counted_record(point)
    if device is None:
        return record
    record = record.with_(**device.record_fields(point.encoder, point.resolution), text_tokens=text_tokens)
    if point.llm is None:
        return record.with_(encoder_ms=encoder_latency(device, point.encoder, point.resolution, point.tiling))
    parts = ttft(point.encoder, point.resolution, point.llm, device, text_tokens=text_tokens, tiling=point.tiling)
    record = record.with_(**parts._asdict())
    if not accuracy_sources or metric is None:
        return record
    if ttft_budget_ms is not None and record.ttft_ms is not None and record.ttft_ms.value > ttft_budget_ms:
        reason = f"{OVER_BUDGET}: TTFT {record.ttft_ms.value:.0f} ms > {ttft_budget_ms:.0f} ms; accuracy not computed"
        return record.with_(accuracy_metric=metric, refusals=(reason,))
    accuracy, refusals = first_value(accuracy_sources, point.encoder, point.resolution, point.llm, metric)
    return record.with_(accuracy=accuracy, accuracy_metric=metric, refusals=tuple(str(r) for r in refusals))
