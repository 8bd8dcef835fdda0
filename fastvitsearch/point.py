"""One (encoder, resolution, LLM) point and its evaluation into a :class:`TrialRecord`.

Cheap first: the spec gives tokens and stride, counting gives params and MACs (once per point),
then the device gives latencies and the accuracy sources a score, each with its source.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastvitsearch.accuracy import AccuracySource, first_value
from fastvitsearch.llm import LLMSpec
from fastvitsearch.presets import get_preset
from fastvitsearch.profile.ttft import encoder_latency, ttft
from fastvitsearch.record import Sourced, TrialRecord
from fastvitsearch.spec import EncoderSpec, SpecError
from fastvitsearch.tiling import Tiling

if TYPE_CHECKING:  # counting and timing import torch: only a point that is evaluated pays for it
    from fastvitsearch.profile.devices import Device

#: how a record says it was not scored because it is too slow
OVER_BUDGET = "over the TTFT budget"
#: a screened search's rule: given a scored record whose encoder latency is predicted (with its
#: error), why measuring it is pointless (None: measure it)
Screen = Callable[[TrialRecord], "str | None"]


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
    from fastvitsearch.profile.count import count_encoder
    from fastvitsearch.profile.timing import versions

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
        visual_tokens_released=point.tiling.released_tokens(point.encoder, point.resolution) if point.tiling else None,
        versions=versions(),
    )


def _over_budget(ttft_ms: Sourced, budget_ms: float, lowest_ms: float | None = None) -> str:
    if lowest_ms is None:
        return f"{OVER_BUDGET}: TTFT {ttft_ms.value:.0f} ms > {budget_ms:.0f} ms; accuracy not computed"
    return (
        f"{OVER_BUDGET}: TTFT {ttft_ms.value:.0f} ms predicted, at least {lowest_ms:.0f} ms within its error, "
        f"> {budget_ms:.0f} ms; encoder not measured, accuracy not computed"
    )


def evaluate(
    point: Point,
    device: Device | None,
    accuracy_sources: list[AccuracySource],
    metric: str | None,
    text_tokens: int = 0,
    ttft_budget_ms: float | None = None,
    screen: Screen | None = None,
) -> TrialRecord:
    """Count, time and score one point. Raises on invalid points (the sweep records the error).

    Without a device only counts (and accuracy, which needs no timing); without an LLM only the
    encoder is timed and no accuracy is asked for (a VLM's accuracy is a point's with its LLM);
    without sources (or metric) no accuracy is asked for. A source that has no value says why in
    ``refusals``. Cheap first: a point whose TTFT is over ``ttft_budget_ms`` is not scored (a proxy
    source would train a model for it); its record says so. Where the device's latency model predicts the
    encoder, a measured record keeps the prediction beside it (``encoder_ms_predicted``).

    ``screen`` (a search with ``screen_latency``): the encoder is predicted first;
    a point over the budget even at the low end of the prediction's error is not measured; a
    scored point is measured only if ``screen`` finds no reason against it (it could reach the
    front), else its record keeps the predicted latency and says why.
    """
    record = counted_record(point)
    if device is None:
        if point.llm is None or not accuracy_sources or metric is None:
            return record
        accuracy, refusals = first_value(accuracy_sources, point.encoder, point.resolution, point.llm, metric)
        return record.with_(accuracy=accuracy, accuracy_metric=metric, refusals=tuple(str(r) for r in refusals))
    record = record.with_(**device.record_fields(point.encoder, point.resolution), text_tokens=text_tokens)
    predicted = (
        None
        if point.tiling
        else device.predicted_encoder_latency(point.encoder, point.resolution, required=screen is not None)
    )
    beside = {"encoder_ms_predicted": predicted}
    if point.llm is None:
        encoder = encoder_latency(device, point.encoder, point.resolution, point.tiling)
        return record.with_(encoder_ms=encoder, **(beside if encoder.kind != "predicted" else {}))
    screening = screen is not None and predicted is not None
    timing = dict(text_tokens=text_tokens, tiling=point.tiling)
    parts = ttft(point.encoder, point.resolution, point.llm, device, encoder=predicted if screening else None, **timing)
    record = record.with_(**parts._asdict(), **(beside if parts.encoder_ms.kind != "predicted" else {}))
    if not accuracy_sources or metric is None:
        return record
    lowest = parts.ttft_ms.value - predicted.value * (predicted.error or 0.0) if screening else None
    if ttft_budget_ms is not None and (lowest if screening else parts.ttft_ms.value) > ttft_budget_ms:
        return record.with_(accuracy_metric=metric, refusals=(_over_budget(parts.ttft_ms, ttft_budget_ms, lowest),))
    accuracy, refusals = first_value(accuracy_sources, point.encoder, point.resolution, point.llm, metric)
    record = record.with_(accuracy=accuracy, accuracy_metric=metric, refusals=tuple(str(r) for r in refusals))
    if not screening or accuracy is None:  # unscored: pruned whatever its latency
        return record
    if (reason := screen(record)) is not None:
        label = f"{predicted.label}; not measured: {reason}"
        return record.with_(encoder_ms=dataclasses.replace(predicted, label=label))
    return record.with_(**ttft(point.encoder, point.resolution, point.llm, device, **timing)._asdict(), **beside)
