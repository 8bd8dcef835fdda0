"""Accuracy ``predicted``: a small model fitted on the paper's published rows, with its error.

Model (per metric), least squares on every published single-image row of our three encoders
and four LLMs::

    accuracy = b_family + b_recipe + a * log(visual tokens) + c * log(LLM parameters)

— a log-linear reading of the data-scaling form of Li et al. (ICLR 2025, arXiv 2411.03312),
``error ~ A / N^alpha * B / T^beta + D``, which is linear in ``log N`` and ``log T`` for small
changes; with ~20-40 published rows per metric a four-parameter power law is not identifiable,
the log-linear form is. ``b_recipe`` absorbs the training-data recipe (LLaVA-1.5, 15M+1.1M…);
predictions are made for one recipe (``recipe``, default ``15+1.1``, the recipe with the widest
LLM coverage).

Error: the leave-one-out RMSE on the published rows, in accuracy points, computed once and
returned with every value. Refusal (no number, a reason): an encoder family or recipe the fit
never saw, or visual tokens / LLM size outside the fitted range widened by ``margin`` (in log
space: x1.5 either way by default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fastvitsearch import paper
from fastvitsearch.llm import LLM_PRESETS, LLMSpec
from fastvitsearch.presets import get_preset
from fastvitsearch.record import Refusal, Sourced
from fastvitsearch.spec import EncoderSpec, SpecError


class Extrapolation(ValueError):
    """The point is outside what the model was fitted on; the message says where the edge is."""


@dataclass(frozen=True)
class AccuracyModel:
    metric: str
    columns: tuple[str, ...]
    coefficients: np.ndarray
    loo_rmse: float
    n_rows: int
    log_tokens: tuple[float, float]
    log_params: tuple[float, float]

    def features(self, family: str, recipe: str, tokens: int, params: int) -> np.ndarray:
        row = np.zeros(len(self.columns))
        for i, column in enumerate(self.columns):
            if column in (f"family={family}", f"recipe={recipe}"):
                row[i] = 1.0
        row[self.columns.index("log_tokens")] = math.log(tokens)
        row[self.columns.index("log_params")] = math.log(params)
        return row

    def predict(self, family: str, recipe: str, tokens: int, params: int, margin: float) -> float:
        if f"family={family}" not in self.columns:
            raise Extrapolation(f"no published {self.metric} row for encoder family {family!r}")
        if f"recipe={recipe}" not in self.columns:
            raise Extrapolation(f"no published {self.metric} row for training recipe {recipe!r}")
        for name, value, (low, high) in (
            ("visual tokens", tokens, self.log_tokens),
            ("LLM parameters", params, self.log_params),
        ):
            lo, hi = low - math.log(margin), high + math.log(margin)
            if not lo <= math.log(value) <= hi:
                raise Extrapolation(
                    f"{name} {value:,} outside the fitted range "
                    f"[{math.exp(lo):,.0f}, {math.exp(hi):,.0f}] ({self.metric})"
                )
        return float(self.features(family, recipe, tokens, params) @ self.coefficients)


def training_rows(metric: str) -> pd.DataFrame:
    """Published rows usable for fitting: (family, recipe, tokens, params, value)."""
    frame = paper.accuracy_rows(metric)
    rows = pd.DataFrame(
        {
            "family": frame["preset"].map(lambda p: get_preset(p).family),
            "recipe": frame["recipe"],
            "tokens": frame["tokens"],
            "params": frame["llm_preset"].map(lambda n: LLM_PRESETS[n].params),
            "value": frame["value"].astype(float),
            "table": frame["source_table_or_figure"],
        }
    )
    return rows.drop_duplicates(["family", "recipe", "tokens", "params", "value"]).reset_index(drop=True)


def _design(rows: pd.DataFrame) -> tuple[np.ndarray, tuple[str, ...]]:
    families = sorted(rows["family"].unique())
    recipes = sorted(rows["recipe"].unique())
    columns = (*(f"family={f}" for f in families), *(f"recipe={r}" for r in recipes[1:]), "log_tokens", "log_params")
    x = np.zeros((len(rows), len(columns)))
    for i, r in enumerate(rows.itertuples()):
        for j, c in enumerate(columns):
            x[i, j] = 1.0 if c in (f"family={r.family}", f"recipe={r.recipe}") else 0.0
        x[i, columns.index("log_tokens")] = math.log(r.tokens)
        x[i, columns.index("log_params")] = math.log(r.params)
    return x, columns


def fit(metric: str) -> AccuracyModel:
    rows = training_rows(metric)
    if len(rows) < 6:
        raise SpecError("accuracy.metric", f"only {len(rows)} published rows for {metric}; cannot fit a predictor")
    x, columns = _design(rows)
    y = rows["value"].to_numpy()
    coefficients = np.linalg.lstsq(x, y, rcond=None)[0]
    residuals = []
    counts = {c: int(x[:, j].sum()) for j, c in enumerate(columns) if c.startswith(("family=", "recipe="))}
    for i in range(len(rows)):
        # a row alone in its family/recipe cannot be predicted by a model that refuses unseen
        # families and recipes, so it is not held out (the refusal covers that case)
        if any(x[i, j] and counts[c] == 1 for j, c in enumerate(columns) if c in counts):
            continue
        keep = np.arange(len(rows)) != i
        beta = np.linalg.lstsq(x[keep], y[keep], rcond=None)[0]
        residuals.append(float(x[i] @ beta - y[i]))
    loo = float(np.sqrt(np.mean(np.square(residuals))))
    log_t, log_n = np.log(rows["tokens"]), np.log(rows["params"])
    # the first recipe is the baseline (no column); make predict() accept it
    baseline = sorted(rows["recipe"].unique())[0]
    columns = (*columns, f"recipe={baseline}")
    coefficients = np.append(coefficients, 0.0)
    return AccuracyModel(
        metric,
        columns,
        coefficients,
        loo,
        len(rows),
        (float(log_t.min()), float(log_t.max())),
        (float(log_n.min()), float(log_n.max())),
    )


class PredictedAccuracy:
    name = "predicted"

    def __init__(self, recipe: str = "15+1.1", margin: float = 1.5) -> None:
        self.recipe = recipe
        self.margin = float(margin)
        self._models: dict[str, AccuracyModel] = {}

    def diagnostics(self) -> list[str]:
        return []

    def model(self, metric: str) -> AccuracyModel:
        if metric not in self._models:
            self._models[metric] = fit(metric)
        return self._models[metric]

    def lookup(self, encoder: EncoderSpec, resolution: int, llm: LLMSpec, metric: str) -> Sourced | Refusal:
        model = self.model(metric)
        family = paper.paper_family(encoder)
        try:
            value = model.predict(family, self.recipe, encoder.tokens(resolution), llm.params, self.margin)
        except Extrapolation as refusal:
            return Refusal(self.name, str(refusal))
        detail = {
            "model": "family + recipe + log(tokens) + log(LLM params), least squares",
            "recipe": self.recipe,
            "fitted_rows": model.n_rows,
            "loo_rmse_points": round(model.loo_rmse, 2),
        }
        return Sourced(
            round(value, 2),
            "predicted",
            f"loglinear[{metric},{self.recipe}]",
            round(model.loo_rmse / max(abs(value), 1e-9), 4),
            detail,
        )
