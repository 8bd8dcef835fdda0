"""Accuracy ``proxy_calibrated``: the paper's metric for any architecture, from the proxy.

A point's proxy accuracy (the same task and settings as the shipped calibration) is mapped to
the paper's metric by the monotone fit on the validation points (LLaVA-1.5 recipe, Vicuna-7B),
then moved to the point's LLM and training recipe by the LLM-size and recipe terms of the
log-linear model fitted on all published rows (``accuracy/predicted.py``). The value is labelled
``proxy-calibrated`` and carries its error (in quadrature: the fit's leave-one-out RMSE, the
proxy's seed noise through the fit's slope, and the log-linear model's LOO RMSE when it moves
the point to another LLM or recipe).

A point the calibration itself measured (a validation point: same spec, resolution and seeds, so
the paper's encoders when arch_search scores them as anchors) takes the calibration's runs instead of
training again: the same task and settings (the fingerprint matches), labelled with where they ran.

Refusals: a metric with fewer than 4 validation points, a proxy value beyond the calibrated range
widened by ``margin`` (a fraction of the range), an LLM size or recipe the log-linear model never
saw, or proxy settings that differ from the calibration's. ``llm_shift: false`` keeps values in
the validation setting (Vicuna-7B, LLaVA-1.5 recipe) whatever the point's LLM.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fastvitsearch import paper
from fastvitsearch.accuracy.calibration import MonotoneMap, ProxyRuns, config_fingerprint
from fastvitsearch.accuracy.predicted import AccuracyModel
from fastvitsearch.accuracy.predicted import fit as fit_loglinear
from fastvitsearch.accuracy.proxy import METRIC as PROXY_METRIC
from fastvitsearch.accuracy.proxy import PROXY_VERSION, ProxyAccuracy
from fastvitsearch.llm import LLM_PRESETS, LLMSpec
from fastvitsearch.presets import get_spec
from fastvitsearch.record import Refusal, Sourced
from fastvitsearch.spec import EncoderSpec, SpecError

#: how far past the published LLM sizes the LLM-size term may move a value (x, in log space)
SHIFT_MARGIN = 1.5


class ProxyCalibratedAccuracy:
    name = "proxy_calibrated"

    def __init__(
        self,
        calibration: str | None = None,
        seeds: list[int] | None = None,
        recipe: str = "llava15",
        llm_shift: bool = True,
        margin: float = 0.25,
        cache_dir: str | None = None,
        threads: int = 1,
        proxy: dict[str, Any] | None = None,
    ) -> None:
        self.runs = ProxyRuns.load(calibration)
        if self.runs.proxy_version != PROXY_VERSION:
            raise SpecError(
                "accuracy.proxy_calibrated.calibration",
                f"measured with proxy v{self.runs.proxy_version}, this is v{PROXY_VERSION}: rerun "
                "benchmarks/proxy_validity.py --write-calibration",
            )
        settings = {**self.runs.config, **(proxy or {}), "threads": threads}
        if config_fingerprint(settings) != self.runs.fingerprint:
            changed = sorted(k for k in settings if settings[k] != self.runs.config.get(k) and k != "threads")
            raise SpecError(
                f"accuracy.proxy_calibrated.proxy.{changed[0] if changed else 'config'}",
                "differs from the settings the calibration was measured with; a calibration holds for one "
                "proxy task (rerun benchmarks/proxy_validity.py with these settings to calibrate them)",
            )
        if not isinstance(margin, int | float) or margin < 0:
            raise SpecError("accuracy.proxy_calibrated.margin", f"must be a number >= 0, got {margin!r}")
        try:
            self.proxy = ProxyAccuracy(seeds=seeds, cache_dir=cache_dir, **settings)
        except SpecError as err:  # named by the key the user set here, not the proxy source's
            key = err.field.removeprefix("accuracy.proxy.")
            where = key if key in ("seeds", "cache_dir", "threads") else f"proxy.{key}"
            raise SpecError(f"accuracy.proxy_calibrated.{where}", err.message) from None
        self.recipe = recipe
        self.llm_shift = bool(llm_shift)
        self.margin = float(margin)
        self._maps: dict[str, MonotoneMap | str] = {}
        self._loglinear: dict[str, AccuracyModel] = {}
        self.seed_sd = float(np.mean([r.sd for r in self.runs.runs])) if self.runs.runs else 0.0

    def diagnostics(self) -> list[str]:
        return [
            f"calibrated on {len(self.runs.runs)} validation points measured on {self.runs.measured_on} "
            f"(proxy v{self.runs.proxy_version}, settings {self.runs.fingerprint})"
        ]

    def calibration_score(self, encoder: EncoderSpec, resolution: int) -> Sourced | None:
        """The proxy score from the calibration's own runs when it measured this spec at this
        resolution with every seed asked for (the anchors), else ``None`` (train as usual)."""
        for run in self.runs.runs:
            if run.resolution != resolution or not set(self.proxy.seeds) <= set(run.seeds):
                continue
            try:
                if get_spec(run.preset).content_hash != encoder.content_hash:
                    continue
            except SpecError:
                continue
            per_seed = [run.accuracy[run.seeds.index(seed)] for seed in self.proxy.seeds]
            where = f"the calibration's run, {self.runs.measured_on}"
            return self.proxy.sourced(per_seed, {"from_calibration": True}, where)
        return None

    def monotone_map(self, metric: str) -> MonotoneMap | str:
        """The fit for ``metric``, or why there is none."""
        if metric not in self._maps:
            runs, published, _ = self.runs.paired(metric)
            try:
                self._maps[metric] = MonotoneMap.fit(metric, [r.mean for r in runs], published)
            except SpecError as err:
                self._maps[metric] = err.args[0] if err.args else str(err)
        return self._maps[metric]

    def shift(self, metric: str, llm: LLMSpec) -> tuple[float, float, str]:
        """Points added to move a Vicuna-7B / LLaVA-1.5 value to ``llm`` and ``self.recipe``, the
        error that adds, and what was done (the log-linear model's LLM-size and recipe terms)."""
        base = LLM_PRESETS[paper.VALIDATION_SETTING["llm_preset"]]
        if not self.llm_shift:
            return 0.0, 0.0, "none: llm_shift=false (the value is for Vicuna-7B, LLaVA-1.5 recipe)"
        if llm.params == base.params and self.recipe == paper.VALIDATION_SETTING["recipe"]:
            return 0.0, 0.0, "none (validation setting)"
        if metric not in self._loglinear:  # fitted once per metric, not per point
            self._loglinear[metric] = fit_loglinear(metric)
        model = self._loglinear[metric]
        low, high = model.log_params
        if not low - math.log(SHIFT_MARGIN) <= math.log(llm.params) <= high + math.log(SHIFT_MARGIN):
            raise ValueError(
                f"LLM {llm.name} ({llm.params:,} parameters) is outside the published LLM sizes "
                f"[{math.exp(low):,.0f}, {math.exp(high):,.0f}] the LLM-size term was fitted on "
                "(llm_shift=false gives the Vicuna-7B value)"
            )
        coefficient = dict(zip(model.columns, model.coefficients, strict=True))
        for recipe in (self.recipe, paper.VALIDATION_SETTING["recipe"]):
            if f"recipe={recipe}" not in coefficient:
                raise ValueError(f"no published {metric} row for training recipe {recipe!r}")
        points = coefficient["log_params"] * (math.log(llm.params) - math.log(base.params))
        points += coefficient[f"recipe={self.recipe}"] - coefficient[f"recipe={paper.VALIDATION_SETTING['recipe']}"]
        return points, model.loo_rmse, f"{points:+.2f} (log-linear LLM-size + recipe terms, {model.n_rows} rows)"

    def lookup(self, encoder: EncoderSpec, resolution: int, llm: LLMSpec, metric: str) -> Sourced | Refusal:
        fitted = self.monotone_map(metric)
        if isinstance(fitted, str):
            return Refusal(self.name, fitted)
        proxy = self.calibration_score(encoder, resolution) or self.proxy.lookup(encoder, resolution, llm, PROXY_METRIC)
        if isinstance(proxy, Refusal):
            return Refusal(self.name, proxy.reason)
        low, high = fitted.proxy_range
        slack = self.margin * (high - low)
        if not low - slack <= proxy.value <= high + slack:
            return Refusal(
                self.name,
                f"proxy accuracy {proxy.value:.1f} is outside the calibrated range [{low:.1f}, {high:.1f}] "
                f"(+- {self.margin:.0%} of it) of the {fitted.n_points} validation points",
            )
        try:
            points, shift_error, shift_note = self.shift(metric, llm)
        except ValueError as err:
            return Refusal(self.name, str(err))
        value = fitted(proxy.value) + points
        seeds = len(self.proxy.seeds)
        noise = fitted.slope * self.seed_sd / math.sqrt(seeds)
        error = math.sqrt(fitted.loo_rmse**2 + noise**2 + shift_error**2)
        extrapolated = " (extrapolated)" if not low <= proxy.value <= high else ""
        return Sourced(
            round(value, 2),
            "proxy",
            f"proxy-calibrated[{metric},{fitted.n_points} points,LOO {fitted.loo_rmse:.1f}]{extrapolated}",
            round(error / max(abs(value), 1e-9), 4),
            {
                "proxy_accuracy": proxy.value,
                "proxy_label": proxy.label,
                "fit": f"{fitted.intercept:.2f} + {fitted.slope:.3f} x proxy",
                "error_points": round(error, 2),
                "llm_recipe_shift": shift_note,
                **{k: proxy.detail[k] for k in ("per_seed", "train_seconds", "trained_on") if k in proxy.detail},
            },
        )
