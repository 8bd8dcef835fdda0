"""``coreml``: encoder latencies timed on an Apple device (``time_coreml.py``'s results file).

Points the file covers (matched by spec hash and resolution, for ``compute_unit``) take its
median, labelled ``measured:coreml:<device>/<unit>``; every other part and every point it does
not cover comes from ``fallback`` with that device's own source label.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastvitsearch.llm import LLMSpec
from fastvitsearch.record import Sourced
from fastvitsearch.spec import EncoderSpec, SpecError
from fastvitsearch.tiling import Tiling

if TYPE_CHECKING:
    from fastvitsearch.profile.devices import Device


@dataclass
class CoreMLDevice:
    results: str
    fallback: Device
    compute_unit: str = "ALL"

    def __post_init__(self) -> None:
        path = Path(self.results)
        if not path.exists():
            raise SpecError("device.results", f"no Core ML results file at {path}")
        try:
            payload = json.loads(path.read_text())
        except ValueError as err:
            raise SpecError("device.results", f"{path} is not a JSON results file ({err})") from None
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

    def record_fields(self, spec: EncoderSpec, resolution: int) -> dict[str, Any]:
        fields = self.fallback.record_fields(spec, resolution)
        if self.covers(spec, resolution):
            fields.update(device=self.name, device_fingerprint=self.name, runtime=f"coreml/{self.compute_unit}")
        return fields

    def encoder_latency(self, spec: EncoderSpec, resolution: int) -> Sourced:
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
        return Sourced(
            float(row["median_ms"]), "measured", f"coreml:{self.device_name}/{self.compute_unit}", None, detail
        )

    def predicted_encoder_latency(self, spec: EncoderSpec, resolution: int, required: bool = False) -> Sourced | None:
        return None  # no latency model of its own to screen with

    def tiled_encoder_latency(self, spec: EncoderSpec, resolution: int, tiling: Tiling) -> Sourced | None:
        return None if self.covers(spec, resolution) else self.fallback.tiled_encoder_latency(spec, resolution, tiling)

    def projector_latency(self, feature_width: int, tokens: int, llm: LLMSpec) -> Sourced:
        return self.fallback.projector_latency(feature_width, tokens, llm)

    def prefill_latency(self, llm: LLMSpec, tokens: int) -> Sourced:
        return self.fallback.prefill_latency(llm, tokens)
