"""Accuracy ``published``: the FastVLM paper's own numbers, looked up, never interpolated.

A point can have several published values, one per training recipe (LLaVA-1.5 data, 15M+1.1M,
15M+12.5M, Stage 3 …). Comparing encoders is only fair within one recipe, so the lookup takes
an ordered list of recipe tags and answers from the first tag that has a value; the tag, table
and row go into the record. Dynamic-resolution (AnyRes) rows are not single-image points and
are skipped; rows printed only in the CVPR version lose to arXiv v2 rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastvitsearch import paper
from fastvitsearch.llm import LLMSpec
from fastvitsearch.record import Refusal, Sourced
from fastvitsearch.spec import EncoderSpec, SpecError


class PublishedAccuracy:
    name = "published"

    def __init__(self, training: Sequence[str] = ("llava15", "15+1.1", "15+12.5", "15+23.1")) -> None:
        if isinstance(training, str):
            training = [training]
        self.training = tuple(training)
        known = set(paper.training_tag(t) for t in paper.paper_results()["training"]) - {None}
        unknown = [t for t in self.training if t not in known]
        if unknown:
            raise SpecError("accuracy.published.training", f"unknown recipe {unknown[0]!r}; known: {sorted(known)}")

    def diagnostics(self) -> list[str]:
        return []

    def lookup(self, encoder: EncoderSpec, resolution: int, llm: LLMSpec, metric: str) -> Sourced | Refusal:
        preset = paper.paper_encoder(encoder)
        if preset is None:
            return Refusal(self.name, "the paper trained no encoder with this architecture")
        if llm.name not in paper.LLM_NAMES:
            return Refusal(self.name, f"the paper trained no VLM with {llm.name}")
        f = paper.accuracy_rows(metric)
        rows = f[(f["preset"] == preset) & (f["resolution_px"] == resolution) & (f["llm_preset"] == llm.name)]
        for tag in self.training:
            match = rows[rows["recipe"] == tag].sort_values("rank", kind="stable")
            if len(match):
                row = match.iloc[0]
                detail = {
                    "training": row["training"],
                    "recipe": tag,
                    "table": row["source_table_or_figure"],
                    "model": row["model"],
                    "alternatives": int(len(match) - 1),
                }
                return Sourced(float(row["value"]), "published", row["source_table_or_figure"], None, detail)
        return Refusal(
            self.name, f"no {metric} for {preset}@{resolution}+{llm.name} under recipes {', '.join(self.training)}"
        )
