"""Time to first token = encoder + projector + LLM prefill over visual (+ text) tokens.

The parts are kept separately in the record, each with its own source, because they can come
from different places (a measured encoder beside a predicted 7B prefill, say). The paper sums
encoder latency and prefill the same way; it does not time end to end.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from fastvitsearch.llm import LLMSpec
from fastvitsearch.profile.count import EncoderCounts, count_encoder
from fastvitsearch.profile.devices import LocalDevice, PaperM1Max
from fastvitsearch.profile.estimate import Estimate
from fastvitsearch.spec import EncoderSpec


@dataclass(frozen=True)
class TTFTRecord:
    counts: EncoderCounts
    llm: str
    device: str
    text_tokens: int
    encoder_ms: Estimate
    projector_ms: Estimate
    prefill_ms: Estimate
    ttft_ms: Estimate

    def to_dict(self) -> dict[str, Any]:
        return {**self.counts.to_dict(), **{k: v for k, v in dataclasses.asdict(self).items() if k != "counts"}}


def _combined_error(parts: list[Estimate], total: float) -> float | None:
    """Relative error of a sum, from the parts' relative errors (worst case: errors add)."""
    absolute = sum((p.error or 0.0) * p.value for p in parts)
    return round(float(absolute / total), 4) if absolute and total else None


def ttft(
    spec: EncoderSpec,
    resolution: int,
    llm: LLMSpec,
    device: LocalDevice | PaperM1Max,
    text_tokens: int = 0,
) -> TTFTRecord:
    if text_tokens < 0:
        raise ValueError("text_tokens: must be >= 0")
    counts = count_encoder(spec, resolution)
    tokens = counts.visual_tokens
    encoder = device.encoder_latency(spec, resolution)
    projector = device.projector_latency(spec.feature_width, tokens, llm)
    prefill = device.prefill_latency(llm, tokens + text_tokens)
    parts = [encoder, projector, prefill]
    total = round(sum(p.value for p in parts), 3)
    kinds = sorted({p.source.split(":", 1)[0] for p in parts if not p.source.startswith("not-timed")})
    source = f"sum of parts ({' + '.join(kinds)})"
    return TTFTRecord(
        counts,
        llm.name,
        device.name,
        text_tokens,
        encoder,
        projector,
        prefill,
        Estimate(total, source, _combined_error(parts, total)),
    )
