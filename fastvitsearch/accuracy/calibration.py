"""Proxy accuracy -> the paper's metric, and how well the proxy ranks what the paper measured.

The proxy (``accuracy/proxy.py``) is run on every (encoder, resolution) the paper publishes in one
setting (:data:`fastvitsearch.paper.VALIDATION_SETTING`: LLaVA-1.5 recipe, Vicuna-7B) with several
seeds; ``benchmarks/proxy_validity.py`` stores those runs as a :class:`ProxyRuns` file (package
data, ``data/proxy_calibration.json``). From it:

- :func:`rank_agreement`: Kendall tau and Spearman rho between the seed-mean proxy and a
  published metric, with bootstrap intervals over seeds (how much proxy noise moves tau) and over
  points (how much the choice of points does);
- :class:`MonotoneMap`: ``metric = a + b * proxy`` with ``b >= 0`` (least squares, monotone by
  construction), its leave-one-out error, and the proxy range it was fitted on.

The fit is deliberately this simple: seven points cannot support more than two parameters.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from fastvitsearch import paper
from fastvitsearch.spec import SpecError

#: calibrations shipped as package data, by the name ``accuracy.proxy_calibrated.calibration`` takes
PACKAGED = {None: "proxy_calibration.json", "tiny": "proxy_calibration_tiny.json"}
#: settings that change what the proxy measures (``threads`` does not)
NOT_PART_OF_THE_TASK = ("threads", "device", "loader_workers")


def config_fingerprint(config: dict[str, Any]) -> str:
    """A short hash of the proxy settings that define the task (so a calibration is only used
    with the proxy it was measured with)."""
    task = {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items() if k not in NOT_PART_OF_THE_TASK}
    return hashlib.sha256(json.dumps(task, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ProxyRun:
    """One validation point's proxy runs (one accuracy per seed)."""

    preset: str
    resolution: int
    seeds: tuple[int, ...]
    accuracy: tuple[float, ...]
    train_seconds: float

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracy))

    @property
    def sd(self) -> float:
        return float(np.std(self.accuracy, ddof=1)) if len(self.accuracy) > 1 else 0.0


@dataclass(frozen=True)
class ProxyRuns:
    """The proxy measured on the validation points: settings, version, where, and the runs."""

    proxy_version: int
    config: dict[str, Any]
    measured_on: str
    runs: tuple[ProxyRun, ...]

    @property
    def fingerprint(self) -> str:
        return config_fingerprint(self.config)

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["fingerprint"] = self.fingerprint
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str, where: str = "calibration") -> ProxyRuns:
        try:
            data = json.loads(text)
            runs = tuple(
                ProxyRun(r["preset"], int(r["resolution"]), tuple(r["seeds"]), tuple(r["accuracy"]), r["train_seconds"])
                for r in data["runs"]
            )
            return cls(int(data["proxy_version"]), dict(data["config"]), str(data["measured_on"]), runs)
        except (ValueError, KeyError, TypeError) as err:
            raise SpecError(where, f"not a proxy calibration file ({type(err).__name__}: {err})") from None

    @classmethod
    def load(cls, path: str | Path | None = None) -> ProxyRuns:
        """A shipped calibration (``None``: the default; ``tiny``: the smoke test's few-step proxy)
        or a user's file (``accuracy.proxy_calibrated.calibration``)."""
        if path is None or path in PACKAGED:
            name = PACKAGED[path]
            return cls.from_json((files("fastvitsearch") / "data" / name).read_text(), f"data/{name}")
        file = Path(path)
        if not file.exists():
            raise SpecError("accuracy.proxy_calibrated.calibration", f"{file} does not exist")
        return cls.from_json(file.read_text(), "accuracy.proxy_calibrated.calibration")

    def paired(self, metric: str) -> tuple[list[ProxyRun], np.ndarray, list[str]]:
        """The runs that have a published ``metric`` value, those values, and their tables."""
        published = paper.validation_points(metric)
        runs, values, tables = [], [], []
        for run in self.runs:
            hit = published[(published["preset"] == run.preset) & (published["resolution"] == run.resolution)]
            if len(hit):
                runs.append(run)
                values.append(float(hit["value"].iloc[0]))
                tables.append(str(hit["table"].iloc[0]))
        return runs, np.array(values), tables


@dataclass(frozen=True)
class RankAgreement:
    n_points: int
    kendall_tau: float
    spearman_rho: float
    tau_ci95_seeds: tuple[float, float]
    tau_ci95_points: tuple[float, float]
    rho_ci95_seeds: tuple[float, float]


def _tau(x: np.ndarray, y: np.ndarray) -> float:
    from scipy import stats  # imported where used: the proxy reads this module's constants

    value = stats.kendalltau(x, y).statistic
    return 0.0 if math.isnan(value) else float(value)


def _rho(x: np.ndarray, y: np.ndarray) -> float:
    from scipy import stats

    value = stats.spearmanr(x, y).statistic
    return 0.0 if math.isnan(value) else float(value)


def rank_agreement(
    per_seed: Sequence[Sequence[float]], published: Sequence[float], n_boot: int = 2000
) -> RankAgreement:
    """Kendall tau-b / Spearman rho of the seed-mean proxy vs ``published``, with 95 % percentile
    bootstrap intervals: resampling each point's seeds (proxy noise) and resampling points."""
    y = np.asarray(published, dtype=float)
    runs = [np.asarray(s, dtype=float) for s in per_seed]
    x = np.array([r.mean() for r in runs])
    rng = np.random.default_rng(0)
    tau_seeds, rho_seeds, tau_points = [], [], []
    for _ in range(n_boot):
        xb = np.array([rng.choice(r, size=len(r)).mean() for r in runs])
        tau_seeds.append(_tau(xb, y))
        rho_seeds.append(_rho(xb, y))
        pick = rng.integers(0, len(y), len(y))
        tau_points.append(_tau(x[pick], y[pick]) if len(set(pick)) > 2 else 0.0)

    def interval(values: list[float]) -> tuple[float, float]:
        low, high = np.percentile(values, [2.5, 97.5])
        return (round(float(low), 3), round(float(high), 3))

    return RankAgreement(
        len(y),
        round(_tau(x, y), 3),
        round(_rho(x, y), 3),
        interval(tau_seeds),
        interval(tau_points),
        interval(rho_seeds),
    )


@dataclass(frozen=True)
class MonotoneMap:
    """``metric = intercept + slope * proxy`` with ``slope >= 0``, fitted on the validation points."""

    metric: str
    slope: float
    intercept: float
    loo_rmse: float
    proxy_range: tuple[float, float]
    n_points: int

    @classmethod
    def fit(cls, metric: str, proxy: Sequence[float], published: Sequence[float]) -> MonotoneMap:
        x, y = np.asarray(proxy, dtype=float), np.asarray(published, dtype=float)
        if len(x) < 4:
            raise SpecError(
                "accuracy.metric", f"only {len(x)} validation points publish {metric}; need >= 4 to calibrate"
            )

        def line(xs: np.ndarray, ys: np.ndarray) -> tuple[float, float]:
            if np.ptp(xs) == 0:
                return 0.0, float(ys.mean())
            slope, intercept = np.polyfit(xs, ys, 1)
            if slope < 0:  # monotone: a proxy that anti-ranks gets a flat map (its tau says so)
                return 0.0, float(ys.mean())
            return float(slope), float(intercept)

        slope, intercept = line(x, y)
        errors = []
        for i in range(len(x)):
            keep = np.arange(len(x)) != i
            s, c = line(x[keep], y[keep])
            errors.append(c + s * x[i] - y[i])
        return cls(
            metric,
            slope,
            intercept,
            float(np.sqrt(np.mean(np.square(errors)))),
            (float(x.min()), float(x.max())),
            len(x),
        )

    def __call__(self, proxy: float) -> float:
        return self.intercept + self.slope * proxy
