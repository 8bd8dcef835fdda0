"""Accuracy sources: each takes an (encoder, resolution, LLM) point and a metric and returns a
labelled value, or ``None`` when it has nothing to say (never a guess).

Sources are chained: ``accuracy.sources: [published, …]`` asks each in order and keeps the first
value; the record keeps which source answered.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fastvitsearch.llm import LLMSpec
from fastvitsearch.spec import EncoderSpec, SpecError


@dataclass(frozen=True)
class Accuracy:
    """An accuracy in percent, its metric, and its source (``published:<table>``, …)."""

    value: float
    metric: str
    source: str
    error: float | None = None
    detail: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class AccuracySource(Protocol):
    name: str

    def lookup(self, encoder: EncoderSpec, resolution: int, llm: LLMSpec, metric: str) -> Accuracy | None: ...


def make_sources(names: Sequence[str], options: dict[str, Any] | None = None) -> list[AccuracySource]:
    """Instantiate sources by name; ``options[name]`` holds each one's settings."""
    from fastvitsearch.accuracy.predicted import PredictedAccuracy
    from fastvitsearch.accuracy.proxy import ProxyAccuracy
    from fastvitsearch.accuracy.published import PublishedAccuracy
    from fastvitsearch.accuracy.results_file import ResultsFileAccuracy

    known = {
        "published": PublishedAccuracy,
        "predicted": PredictedAccuracy,
        "proxy": ProxyAccuracy,
        "results_file": ResultsFileAccuracy,
    }
    sources = []
    for name in names:
        if name not in known:
            raise SpecError("accuracy.sources", f"unknown accuracy source {name!r}; known: {', '.join(known)}")
        sources.append(known[name](**dict((options or {}).get(name) or {})))
    return sources


def first_value(
    sources: Sequence[AccuracySource], encoder: EncoderSpec, resolution: int, llm: LLMSpec, metric: str
) -> Accuracy | None:
    for source in sources:
        if (value := source.lookup(encoder, resolution, llm, metric)) is not None:
            return value
    return None
