"""matplotlib rendering of the report figures: PNGs suitable for a paper.

Readable fonts, labelled axes with units, legends outside the data. Each function draws one
figure from the data computed in :mod:`fastvitsearch.report.data` and returns the file path.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # headless: reports are written, never shown
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from fastvitsearch.report.data import ProgressInfo, ScatterInfo, label  # noqa: E402

MARKERS = {"ViT-L/14": "s", "FastViT": "^", "FastViTHD": "o", "tiny": "D", "custom": "P"}
FILLED = {"published", "measured", "counted", "user"}  # hollow markers: predicted / proxy values
if TYPE_CHECKING:
    from fastvitsearch.accuracy.calibration import ProxyRuns

STYLE = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 9, "figure.dpi": 150}


def _plain_log_ticks(axis) -> None:
    """Log axis with plain numbers at 1-2-5 steps (matplotlib's default crowds 10^x labels)."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def objective_scatter(data: ScatterInfo, title: str, path: Path, budget: float | None = None) -> Path:
    """Colour = LLM, marker = family, hollow = predicted/proxy; each point labelled with its
    resolution; black: the overall front, thin dashed: each family's own front; a ring marks the
    paper's headline point (FastViTHD@1024). Two legends: LLM colours, family markers."""
    from matplotlib.lines import Line2D

    x, y, points, front = data
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(8.5, 5.2))
        llms = sorted(points["llm"].unique()) if len(points) else []
        colors = {llm: f"C{i}" for i, llm in enumerate(llms)}
        for (llm, family, kind), group in points.groupby(["llm", "family", "y_kind"]) if len(points) else []:
            filled = kind in FILLED
            ax.errorbar(
                group[x],
                group[y],
                xerr=group["x_err"],
                yerr=group["y_err"],
                fmt=MARKERS.get(family, "o"),
                color=colors[llm],
                mfc=colors[llm] if filled else "white",
                ms=7,
                capsize=2,
                lw=0.8,
            )
        _resolution_labels(ax, points, x, y)
        if "on_family_front" in points:
            for _, group in points[points["on_family_front"]].groupby("family"):
                if len(group) > 1:
                    group = group.sort_values(x)
                    ax.step(group[x], group[y], where="post", color="grey", lw=0.8, ls=":", alpha=0.8)
        if len(front):
            ax.step(front[x], front[y], where="post", color="black", lw=1.2, alpha=0.7)
        headline = points[points["headline"]] if "headline" in points else points.iloc[:0]
        if len(headline):
            ax.scatter(headline[x], headline[y], s=260, facecolors="none", edgecolors="crimson", lw=1.4, zorder=5)
        if budget is not None:
            ax.axvline(budget, ls="--", color="grey")
        if x.endswith("_ms"):
            ax.set_xscale("log")
            _plain_log_ticks(ax.xaxis)
        ax.set_xlabel(label(x, points))
        ax.set_ylabel(label(y, points))
        ax.set_title(title)
        ax.grid(alpha=0.3)
        llm_handles = [Line2D([], [], marker="o", ls="", color=colors[m], label=m) for m in llms]
        families = sorted(points["family"].unique()) if len(points) else []
        family_handles = [
            Line2D([], [], marker=MARKERS.get(f, "o"), ls="", color="dimgrey", mfc="white", label=f) for f in families
        ]
        lines = [Line2D([], [], color="black", lw=1.2, label="Pareto front")]
        lines.append(Line2D([], [], color="grey", lw=0.8, ls=":", label="family fronts"))
        if len(headline):
            lines.append(
                Line2D(
                    [], [], marker="o", ls="", ms=12, mfc="none", mec="crimson", label="paper headline (FastViTHD@1024)"
                )
            )
        if budget is not None:
            lines.append(Line2D([], [], color="grey", ls="--", label=f"TTFT budget {budget:g} ms"))
        first = ax.legend(handles=llm_handles, title="LLM (colour)", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.add_artist(first)
        second = ax.legend(
            handles=family_handles, title="encoder (marker)", loc="upper left", bbox_to_anchor=(1.01, 0.62)
        )
        ax.add_artist(second)
        ax.legend(handles=lines, loc="upper left", bbox_to_anchor=(1.01, 0.28), frameon=False)
        return _save(fig, path)


def _resolution_labels(ax, points: pd.DataFrame, x: str, y: str) -> None:
    """Each point's resolution beside it; points closer than a label's size share one label, and
    labels alternate above and below so neighbours do not overlap."""
    if not len(points) or "resolution" not in points:
        return
    placed: list[tuple[float, float]] = []
    xs = np.log10(points[x].astype(float).clip(lower=1e-9)) if x.endswith("_ms") else points[x].astype(float)
    span_x = float(xs.max() - xs.min()) or 1.0
    span_y = float(points[y].max() - points[y].min()) or 1.0
    for i, (px, row) in enumerate(zip(xs, points.itertuples(), strict=True)):
        py = float(getattr(row, y))
        if any(abs(px - qx) / span_x < 0.025 and abs(py - qy) / span_y < 0.04 for qx, qy in placed):
            continue
        placed.append((px, py))
        ax.annotate(
            str(int(row.resolution)),
            (getattr(row, x), py),
            textcoords="offset points",
            xytext=(4, 5 if i % 2 == 0 else -11),
            fontsize=7,
            color="dimgrey",
        )


def ttft_breakdown(parts: pd.DataFrame, title: str, path: Path) -> Path:
    llms = list(dict.fromkeys(parts["llm"]))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            len(llms), 1, figsize=(9, 2.2 + 0.35 * parts["label"].nunique() * len(llms)), squeeze=False
        )
        for ax, llm in zip(axes[:, 0], llms, strict=True):
            wide = parts[parts["llm"] == llm].pivot_table(index="label", columns="part", values="ms", sort=False)
            left = pd.Series(0.0, index=wide.index)
            for i, part in enumerate(["encoder_ms", "projector_ms", "prefill_ms"]):
                if part in wide:
                    ax.barh(wide.index, wide[part], left=left, color=f"C{i}", label=part.removesuffix("_ms"))
                    left += wide[part]
            ax.set_title(f"{llm}", loc="left")
            ax.set_xlabel("time to first token (ms)")
            ax.grid(axis="x", alpha=0.3)
        axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.suptitle(title)
        fig.tight_layout()
        return _save(fig, path)


def scaling(table: pd.DataFrame, title: str, path: Path) -> Path:
    metrics = [c for c in ("visual_tokens", "macs", "encoder_ms") if c in table]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.8), squeeze=False)
        for ax, metric in zip(axes[0], metrics, strict=True):
            for family, group in table.groupby("family"):
                ax.plot(group["resolution"], group[metric], marker=MARKERS.get(family, "o"), label=family)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.set_xlabel("input resolution (px)")
            ax.set_ylabel(label(metric))
            ax.grid(alpha=0.3, which="both")
        axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.suptitle(title)
        fig.tight_layout()
        return _save(fig, path)


def measured_vs_paper(comparison: pd.DataFrame, tau: float | None, title: str, path: Path) -> Path:
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7, 5))
        ax.scatter(comparison["paper_ms"], comparison["ours_ms"], color="C0")
        for _, r in comparison.iterrows():
            ax.annotate(
                f"{r['point']} ×{r['ratio']:.0f}",
                (r["paper_ms"], r["ours_ms"]),
                fontsize=7,
                xytext=(4, 2),
                textcoords="offset points",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_ticks(ax.xaxis)
        _plain_log_ticks(ax.yaxis)
        ax.set_xlabel("paper: M1 Max TTFT (ms, published)")
        ax.set_ylabel("ours: TTFT on this device (ms)")
        ax.set_title(title + (f"  (Kendall τ of rankings = {tau:.2f})" if tau is not None else ""))
        ax.grid(alpha=0.3, which="both")
        return _save(fig, path)


def search_progress(progress: ProgressInfo, title: str, path: Path) -> Path:
    curve = progress.hypervolume
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7, 4))
        if len(curve):
            ax.plot(curve["trial"], curve["hypervolume"], marker=".")
        ax.set_xlabel("trial")
        ax.set_ylabel(f"hypervolume of feasible {' × '.join(progress.objectives)}")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        return _save(fig, path)


def comparison(values: pd.DataFrame, metric: str, title: str, path: Path) -> Path:
    """Grouped horizontal bars: one group per point, one bar per sweep (log scale)."""
    wide = values.pivot_table(index="point", columns="sweep", values="ms", sort=False)
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.45 * wide.size))
    height = 0.8 / max(1, len(wide.columns))
    for i, sweep in enumerate(wide.columns):
        positions = [j + i * height for j in range(len(wide))]
        ax.barh(positions, wide[sweep], height=height, label=sweep)
        for y, v in zip(positions, wide[sweep], strict=True):
            ax.annotate(f"{v:,.0f}", (v, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
    ax.set_yticks([j + 0.4 - height / 2 for j in range(len(wide))], wide.index)
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis)
    ax.set_xlabel(label(metric))
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, frameon=False)
    return _save(fig, path)


def fronts(infos: dict[str, ScatterInfo], title: str, path: Path) -> Path:
    """Several sweeps' points and Pareto fronts on shared axes, one colour per sweep."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (sweep, info) in enumerate(infos.items()):
        colour = f"C{i % 10}"
        ax.scatter(info.points[info.x], info.points[info.y], color=colour, alpha=0.5, s=18)
        ax.step(info.front[info.x], info.front[info.y], where="post", color=colour, label=sweep)
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis)
    first = next(iter(infos.values()))
    ax.set_xlabel(label(first.x))
    ax.set_ylabel(label(first.y))
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _save(fig, path)


def proxy_validity(runs: ProxyRuns, metric: str, title: str, path: Path) -> Path:
    """Proxy accuracy (seed mean +- sd, measured) vs the published metric, with the monotone fit."""
    from fastvitsearch.accuracy.calibration import MonotoneMap  # scipy: only for this figure

    paired, published, _ = runs.paired(metric)
    fitted = MonotoneMap.fit(metric, [r.mean for r in paired], published)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        for run, value in zip(paired, published, strict=True):
            ax.errorbar(run.mean, value, xerr=run.sd, fmt="o", capsize=3, color="tab:blue")
            ax.annotate(
                f"{run.preset}@{run.resolution}", (run.mean, value), textcoords="offset points", xytext=(5, -10)
            )
        xs = [min(r.mean for r in paired), max(r.mean for r in paired)]
        ax.plot(xs, [fitted(x) for x in xs], "--", color="grey", label=f"monotone fit (LOO RMSE {fitted.loo_rmse:.1f})")
        ax.set_xlabel(f"proxy accuracy, % (mean +- sd over {len(paired[0].seeds)} seeds; measured)")
        ax.set_ylabel(f"{metric}, % (published, LLaVA-1.5 recipe, Vicuna-7B)")
        ax.set_title(title, fontsize=10)
        ax.legend(loc="lower right")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return path
