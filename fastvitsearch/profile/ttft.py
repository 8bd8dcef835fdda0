"""Time to first token = encoder + projector + LLM prefill over visual (+ text) tokens.

The parts are kept separately, each with its own source, because they can come from different
places (a measured encoder beside a predicted 7B prefill, say). The paper sums encoder latency
and prefill the same way; it does not time end to end. The token count is the spec's (derived,
never counted again).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from fastvitsearch.llm import LLMSpec
from fastvitsearch.record import Sourced, weakest
from fastvitsearch.spec import EncoderSpec, SpecError
from fastvitsearch.tiling import Tiling

if TYPE_CHECKING:
    from fastvitsearch.profile.devices import Device


class TTFTParts(NamedTuple):
    encoder_ms: Sourced
    projector_ms: Sourced
    prefill_ms: Sourced
    ttft_ms: Sourced


def _combined_error(parts: list[Sourced], total: float) -> float | None:
    """Relative error of a sum, from the parts' relative errors (worst case: errors add)."""
    absolute = sum((p.error or 0.0) * p.value for p in parts)
    return round(float(absolute / total), 4) if absolute and total else None


def encoder_latency(device: Device, spec: EncoderSpec, resolution: int, tiling: Tiling | None) -> Sourced:
    """One pass, or a tiled point's passes: the device's own number for the tiled point where it has
    one (the paper's published AnyRes rows), else passes x one pass (the paper's convention)."""
    if tiling is None:
        return device.encoder_latency(spec, resolution)
    if (published := device.tiled_encoder_latency(spec, resolution, tiling)) is not None:
        return published
    one = device.encoder_latency(spec, resolution)
    detail = {**(one.detail or {}), "passes": tiling.passes, "one_pass_ms": one.value}
    label = f"{one.label} x{tiling.passes} passes ({tiling.label} tiles, sequential: paper convention)"
    return Sourced(round(one.value * tiling.passes, 3), one.kind, label, one.error, detail)


def ttft(
    spec: EncoderSpec,
    resolution: int,
    llm: LLMSpec,
    device: Device,
    text_tokens: int = 0,
    tiling: Tiling | None = None,
    encoder: Sourced | None = None,
) -> TTFTParts:
    """The parts and their sum; ``encoder`` replaces the device's encoder latency (a screened
    search sums a predicted one before deciding whether to measure it)."""
    if text_tokens < 0:
        raise SpecError("text_tokens", f"must be >= 0, got {text_tokens}")
    tokens = tiling.tokens(spec, resolution) if tiling else spec.tokens(resolution)
    encoder = encoder or encoder_latency(device, spec, resolution, tiling)
    projector = device.projector_latency(spec.feature_width, tokens, llm)
    prefill = device.prefill_latency(llm, tokens + text_tokens)
    parts = [encoder, projector, prefill]
    timed = [p for p in parts if p.kind != "not-timed"]
    total = round(sum(p.value for p in parts), 3)
    label = f"sum of parts ({' + '.join(sorted({p.kind for p in timed}))})"
    if any((p.detail or {}).get("extrapolated") for p in parts):
        label += ", extrapolated"  # a part predicted outside its model's fitted range
    return TTFTParts(
        encoder,
        projector,
        prefill,
        Sourced(total, weakest([p.kind for p in timed]), label, _combined_error(parts, total)),
    )
