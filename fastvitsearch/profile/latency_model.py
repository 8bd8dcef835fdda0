"""``t = a + x / R``: latency as a fixed cost plus work over a rate, with its held-out error.

Used to predict what cannot be measured: LLM prefill too large for the machine (x = FLOPs)
and published M1 Max latencies at points the paper did not time (x = counted work). The fit
is least squares, constrained to be physically plausible: a negative fixed cost or a
non-positive rate (which would predict zero or negative times for small inputs) falls back to
``t = x / R`` through the origin. Its error is the leave-one-out mean absolute percentage error;
a prediction outside the fitted range says so (``extrapolated`` in its detail, ``extrapolated``
in its label).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fastvitsearch.record import Sourced


def mape(predicted: Sequence[float], actual: Sequence[float]) -> float:
    """Mean absolute percentage error, as a fraction."""
    return sum(abs(p - a) / a for p, a in zip(predicted, actual, strict=True)) / len(actual)


def _fit(xs: np.ndarray, ts: np.ndarray, through_origin: bool = False) -> tuple[float, float]:
    """(intercept, slope) with intercept >= 0 and slope > 0; through the origin when asked, with
    one point, a degenerate x, or when the free fit is not physically plausible."""
    if not through_origin and len(xs) > 1 and np.ptp(xs) > 0:
        slope, intercept = np.polyfit(xs, ts, 1)
        if intercept >= 0 and slope > 0:
            return float(intercept), float(slope)
    return 0.0, float(np.sum(ts * xs) / np.sum(xs * xs))


@dataclass(frozen=True)
class LinearLatencyModel:
    """A fitted ``t = intercept + slope * x`` (t in ms), named for its source label."""

    name: str
    intercept_ms: float
    ms_per_unit: float
    unit: str
    loo_error: float | None
    n_points: int
    x_min: float
    x_max: float

    def predict(self, x: float) -> float:
        return self.intercept_ms + self.ms_per_unit * x

    def estimate(self, x: float) -> Sourced:
        extrapolated = not self.x_min <= x <= self.x_max
        detail = {
            "model": f"t = {self.intercept_ms:.3f} ms + {self.unit} x {self.ms_per_unit:.3e} ms",
            "fitted_points": self.n_points,
            "fitted_range": [self.x_min, self.x_max],
            "extrapolated": extrapolated,
        }
        label = self.name + (" (extrapolated)" if extrapolated else "")
        return Sourced(round(self.predict(x), 3), "predicted", label, self.loo_error, detail)


def fit_latency(
    name: str, xs: Sequence[float], ts: Sequence[float], unit: str = "FLOPs", through_origin: bool = False
) -> LinearLatencyModel:
    """Fit and compute the leave-one-out error (None with a single point: nothing held out).

    ``through_origin`` (``t = x / R``) suits pooled data from different models, where a shared
    fixed cost means nothing.
    """
    x, t = np.asarray(xs, dtype=float), np.asarray(ts, dtype=float)
    if len(x) == 0:
        raise ValueError(f"{name}: no points to fit")
    intercept, slope = _fit(x, t, through_origin)
    loo = None
    if len(x) >= 2:
        predictions = []
        for i in range(len(x)):
            keep = np.arange(len(x)) != i
            a, b = _fit(x[keep], t[keep], through_origin)
            predictions.append(a + b * x[i])
        loo = round(float(mape(predictions, list(t))), 4)
    return LinearLatencyModel(name, intercept, slope, unit, loo, len(x), float(x.min()), float(x.max()))
