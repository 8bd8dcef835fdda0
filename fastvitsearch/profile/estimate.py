"""A number with its provenance: every latency part in a record is one of these."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Estimate:
    """``value`` (ms) and where it came from.

    ``source`` is one of ``measured:<device>``, ``predicted:<model>``, ``published:<table>``,
    ``counted`` or ``not-timed:<why>``; ``error`` is the relative error estimate of a predicted
    value (e.g. 0.05 = 5 % leave-one-out MAPE); ``detail`` holds the timing statistics and
    environment of a measured value.
    """

    value: float
    source: str
    error: float | None = None
    detail: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def mape(predicted: list[float], actual: list[float]) -> float:
    """Mean absolute percentage error, as a fraction."""
    return sum(abs(p - a) / a for p, a in zip(predicted, actual, strict=True)) / len(actual)
