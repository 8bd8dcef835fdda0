"""Accuracy ``published``: the FastVLM paper's own numbers, looked up, never interpolated.

A point can have several published values, one per training recipe (LLaVA-1.5 data, 15M+1.1M,
15M+12.5M, Stage 3 …). Comparing encoders is only fair within one recipe, so the lookup takes
an ordered list of recipe tags and answers from the first tag that has a value; the tag, table
and row go into the record. Dynamic-resolution (AnyRes) rows are not single-image points and
are skipped; rows printed only in the CVPR version lose to arXiv v2 rows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from fastvitsearch.accuracy import Accuracy
from fastvitsearch.llm import PAPER_NAMES, LLMSpec
from fastvitsearch.paper import ENCODER_NAMES, paper_results
from fastvitsearch.presets import get_spec
from fastvitsearch.spec import EncoderSpec, SpecError

#: tables in order of preference when one recipe has the same point in several tables
TABLE_ORDER = ("Table 6", "Table 1", "Table 4", "Table 5", "Table 11", "Table 7", "Table 2")
_LLAVA15 = re.compile(r"^LLaVA-1\.5 2-stage \(558K PT \+ 665K IT\)$|PT\+IT = 0\.5\+0\.6$")
_PT_IT = re.compile(r"PT\+IT = ([0-9.]+\+[0-9.]+)")


def training_tag(training: str) -> str | None:
    """``llava15`` for the LLaVA-1.5 recipe, else the printed ``PT+IT`` data sizes (``15+1.1``)."""
    if _LLAVA15.search(training):
        return "llava15"
    if "AnyRes" in training or "encoder finetuned" in training:
        return None
    match = _PT_IT.search(training)
    return match.group(1) if match else None


def _table_rank(table: str) -> int:
    return next((i for i, t in enumerate(TABLE_ORDER) if table == t or table.startswith(t + " ")), len(TABLE_ORDER))


class PublishedAccuracy:
    name = "published"

    def __init__(self, training: Sequence[str] = ("llava15", "15+1.1", "15+12.5", "15+23.1")) -> None:
        if isinstance(training, str):
            training = [training]
        self.training = tuple(training)
        frame = paper_results()
        frame = frame[frame["source_version"] != "CVPR only"].copy()
        frame["tag"] = frame["training"].map(training_tag)
        frame["rank"] = frame["source_table_or_figure"].map(_table_rank)
        self._frame = frame[frame["tag"].notna()]
        known_tags = set(self._frame["tag"])
        unknown = [t for t in self.training if t not in known_tags]
        if unknown:
            raise SpecError(
                "accuracy.published.training", f"unknown recipe {unknown[0]!r}; known: {sorted(known_tags)}"
            )
        self._hash_to_preset = {get_spec(p).content_hash: p for p in ENCODER_NAMES}

    def lookup(self, encoder: EncoderSpec, resolution: int, llm: LLMSpec, metric: str) -> Accuracy | None:
        preset = self._hash_to_preset.get(encoder.content_hash)
        llm_name = PAPER_NAMES.get(llm.name)
        if preset is None or llm_name is None:
            return None
        f = self._frame
        rows = f[
            f["encoder"].isin(ENCODER_NAMES[preset])
            & (f["resolution_px"] == resolution)
            & (f["llm"] == llm_name)
            & (f["metric"] == metric)
        ]
        for tag in self.training:
            match = rows[rows["tag"] == tag].sort_values("rank", kind="stable")
            if len(match):
                row = match.iloc[0]
                detail = {
                    "training": row["training"],
                    "recipe": tag,
                    "table": row["source_table_or_figure"],
                    "model": row["model"],
                    "alternatives": int(len(match) - 1),
                }
                return Accuracy(float(row["value"]), metric, f"published:{row['source_table_or_figure']}", None, detail)
        return None
