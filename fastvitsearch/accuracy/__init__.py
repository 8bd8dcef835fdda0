"""Accuracy sources: each takes an (encoder, resolution, LLM) point and a metric and returns a
:class:`~fastvitsearch.record.Sourced` value, or a :class:`~fastvitsearch.record.Refusal` saying
why it has nothing to say (never a guess).

Sources are chained: ``accuracy.sources: [published, …]`` asks each in order and keeps the first
value; the record keeps which source answered and, when none did, every source's reason.
Adding a source is one class meeting :class:`AccuracySource` and one row of
:data:`SOURCE_TABLE`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, Protocol

from fastvitsearch.llm import LLMSpec
from fastvitsearch.record import Refusal, Sourced
from fastvitsearch.spec import EncoderSpec, SpecError


class AccuracySource(Protocol):
    name: str

    def lookup(self, encoder: EncoderSpec, resolution: int, llm: LLMSpec, metric: str) -> Sourced | Refusal: ...

    def diagnostics(self) -> list[str]:
        """What the user should hear about this source once, at set-up (bad rows of a file, …)."""
        ...


#: name -> "module:Class" (imported on use: the proxy pulls in torch training code)
SOURCE_TABLE = {
    "published": "fastvitsearch.accuracy.published:PublishedAccuracy",
    "predicted": "fastvitsearch.accuracy.predicted:PredictedAccuracy",
    "proxy": "fastvitsearch.accuracy.proxy:ProxyAccuracy",
    "proxy_calibrated": "fastvitsearch.accuracy.proxy_calibrated:ProxyCalibratedAccuracy",
    "results_file": "fastvitsearch.accuracy.results_file:ResultsFileAccuracy",
}


def make_sources(names: Sequence[str], options: dict[str, Any] | None = None) -> list[AccuracySource]:
    """Instantiate sources by name; ``options[name]`` holds each one's settings."""
    sources = []
    for name in names:
        if name not in SOURCE_TABLE:
            raise SpecError("accuracy.sources", f"unknown accuracy source {name!r}; known: {', '.join(SOURCE_TABLE)}")
        module, cls = SOURCE_TABLE[name].split(":")
        settings = dict((options or {}).get(name) or {})
        try:
            sources.append(getattr(importlib.import_module(module), cls)(**settings))
        except TypeError as err:  # an option the source does not take
            raise SpecError(f"accuracy.{name}", str(err)) from None
    return sources


def first_value(
    sources: Sequence[AccuracySource], encoder: EncoderSpec, resolution: int, llm: LLMSpec, metric: str
) -> tuple[Sourced | None, list[Refusal]]:
    """The first source's value, and the refusals of the sources asked before it."""
    refusals = []
    for source in sources:
        answer = source.lookup(encoder, resolution, llm, metric)
        if isinstance(answer, Sourced):
            return answer, refusals
        refusals.append(answer)
    return None, refusals
