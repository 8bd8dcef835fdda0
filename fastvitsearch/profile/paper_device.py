"""``paper_m1max``: the FastVLM paper's M1 Max latency components, and fits where it has none.

Core ML encoder on the Neural Engine, MLX FP16 LLM prefill on the GPU, as printed (Table 10
first; :mod:`fastvitsearch.paper` chooses the rows). A point the paper did not time is
predicted by a work-based fit on the published points, labelled ``predicted`` with its
leave-one-out error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastvitsearch import paper
from fastvitsearch.llm import LLMSpec
from fastvitsearch.presets import get_spec
from fastvitsearch.profile.latency_model import LinearLatencyModel, fit_latency
from fastvitsearch.record import Sourced
from fastvitsearch.spec import EncoderSpec, SpecError
from fastvitsearch.tiling import Tiling

#: the prefill FLOPs line is fitted on FastVLM's own range of prompts; longer published prefills
#: (LLaVA-OneVision's 7290 tokens: 11.4 s, 34x the 1280-token one for 5.7x the tokens) are looked up,
#: never fitted — MLX's attention cost at that length is far above a line through the short ones
MAX_FIT_TOKENS = 1280


@dataclass
class PaperM1Max:
    """Published M1 Max components (Core ML encoder on the ANE, MLX FP16 LLM on the GPU)."""

    name: str = "paper_m1max"

    def record_fields(self, spec: EncoderSpec, resolution: int) -> dict[str, Any]:
        return {"device": self.name, "device_fingerprint": self.name}

    def encoder_latency(self, spec: EncoderSpec, resolution: int) -> Sourced:
        spec.tokens(resolution)
        preset = paper.paper_encoder(spec)
        if (hit := paper.encoder_latencies().get((preset, resolution))) is not None:
            return Sourced(hit[0], "published", hit[1])
        from fastvitsearch.profile.count import count_encoder  # torch: only for a point it has no number for

        return self._encoder_fit(preset).estimate(count_encoder(spec, resolution).macs)

    @staticmethod
    def _encoder_fit(preset: str | None) -> LinearLatencyModel:
        """Per-family fit when the spec is a published encoder, else over all published points."""
        from fastvitsearch.profile.count import count_encoder

        published = paper.encoder_latencies()
        same = [(k, v) for k, v in published.items() if k[0] == preset]
        points = same if len(same) >= 2 else list(published.items())
        label = "family" if points is same else "all-encoders"
        xs = [count_encoder(get_spec(p), r).macs for (p, r), _ in points]
        return fit_latency(
            f"m1max-encoder-fit[{label},MACs]",
            xs,
            [v for _, (v, _) in points],
            unit="MACs",
            through_origin=points is not same,
        )

    def predicted_encoder_latency(self, spec: EncoderSpec, resolution: int, required: bool = False) -> Sourced | None:
        return None  # no latency model of its own to screen with

    def tiled_encoder_latency(self, spec: EncoderSpec, resolution: int, tiling: Tiling) -> Sourced | None:
        """The paper's published tiled row (Table 10 R2, R3*, …) where it has one."""
        key = (paper.paper_encoder(spec), resolution, tiling.rows, tiling.cols)
        if (hit := paper.tiled_encoder_latencies().get(key)) is not None:
            return Sourced(hit[0], "published", hit[1], None, {"passes": tiling.passes})
        return None

    def projector_latency(self, feature_width: int, tokens: int, llm: LLMSpec) -> Sourced:
        return Sourced(0.0, "not-timed", "the paper's TTFT is encoder latency + LLM prefill")

    def prefill_latency(self, llm: LLMSpec, tokens: int) -> Sourced:
        published = paper.prefills()
        if (hit := published.get((llm.name, tokens))) is not None:
            return Sourced(hit[0], "published", hit[1])
        points = [(t, v) for (name, t), (v, _) in published.items() if name == llm.name and t <= MAX_FIT_TOKENS]
        if not points:
            raise SpecError("llm", f"the paper publishes no M1 Max prefill for {llm.name}")
        model = fit_latency(
            f"m1max-prefill-fit[{llm.name}]", [llm.prefill_flops(t) for t, _ in points], [v for _, v in points]
        )
        return model.estimate(llm.prefill_flops(tokens))
