"""Assemble a report folder from a sweep folder: ``index.html`` plus one PNG per figure.

Everything comes from the results table (and its ``meta.json``), so a report can be rebuilt
anywhere, any time, without rerunning the sweep (or importing torch or Optuna). The figures
are one list, :data:`FIGURES`: each a pure data function, a PNG and an HTML renderer, and a
note computed from its data; adding a figure is one entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from fastvitsearch.claims import TOLERANCE as CLAIM_TOLERANCE
from fastvitsearch.claims import claims_table
from fastvitsearch.paper import CITATION
from fastvitsearch.pareto import pareto_front
from fastvitsearch.report import data, html, png
from fastvitsearch.report.stamp import BUILT_FROM, inputs_digest, is_current
from fastvitsearch.results import load_folder

if TYPE_CHECKING:
    import pandas as pd

FRONT_COLUMNS = [
    "point",
    "encoder",
    "family",
    "resolution",
    "tiling",
    "llm",
    "visual_tokens",
    "encoder_ms",
    "prefill_ms",
    "ttft_ms",
    "ttft_ms_source",
    "accuracy",
    "accuracy_source",
]


@dataclass
class Report:
    directory: Path
    html: Path
    pngs: list[Path] = field(default_factory=list)
    rebuilt: bool = True
    exports: list[Path] = field(default_factory=list)


class Context(NamedTuple):
    """What every figure's data function may read: the table, its meta and the objectives."""

    table: Any
    meta: dict[str, Any]
    objectives: dict[str, str]
    budget: float | None


class FigureSpec(NamedTuple):
    """One report figure: ``data(context)`` returns its typed data or None (nothing to draw);
    ``title``, ``note`` are computed from that data; ``png`` / ``html`` render it."""

    key: str
    heading: str
    data: Callable[[Context], Any]
    title: Callable[[Any, Context], str]
    note: Callable[[Any], str]
    png: Callable[[Any, str, Path, Context], Path]
    html: Callable[[Any, str, Context], Any]


def _scatter(ctx: Context) -> data.ScatterInfo | None:
    if len(ctx.objectives) < 2 or not len(data.completed(ctx.table)):
        return None
    return data.objective_scatter(ctx.table, ctx.objectives)


def _scatter_note(info: data.ScatterInfo) -> str:
    kinds = sorted(set(info.points["y_kind"]))
    note = (
        "Colour: LLM. Marker: encoder family. Black line: the Pareto front. "
        f"{info.y} values here are {', '.join(kinds)}"
    )
    if "predicted" in kinds:
        note += "; hollow markers with error bars are predicted (bar = the model's held-out error)"
    return note + "."


def _comparison(ctx: Context) -> tuple[Any, float | None] | None:
    comparison = data.measured_vs_paper(ctx.table)
    return (comparison, data.ranking_agreement(comparison)) if len(comparison) else None


def _comparison_note(info: tuple[Any, float | None]) -> str:
    comparison, tau = info
    ratios = comparison["ratio"]
    tau_text = f"Kendall tau of the two TTFT rankings: {tau:.2f}. " if tau is not None else ""
    return (
        f"{len(comparison)} point(s) where the paper publishes both TTFT components (M1 Max). {tau_text}"
        f"This device is {ratios.min():.1f}x to {ratios.max():.1f}x the paper's TTFT."
    )


def _scaling_note(scale: Any) -> str:
    """What the scaling figure shows, from its data: each family's token growth and stride."""
    parts = ["Log-log."]
    for family, group in scale.groupby("family"):
        group = group.sort_values("resolution")
        if len(group) >= 2:
            first, last = group.iloc[0], group.iloc[-1]
            parts.append(
                f"{family}: {int(first['visual_tokens'])} -> {int(last['visual_tokens'])} tokens and "
                f"{last['macs'] / first['macs']:.1f}x MACs from {int(first['resolution'])} to "
                f"{int(last['resolution'])} px."
            )
    return " ".join(parts)


FIGURES: list[FigureSpec] = [
    FigureSpec(
        "front",
        "Pareto front",
        _scatter,
        lambda info, ctx: (
            f"{data.label(info.y, ctx.table)} vs {data.label(info.x, ctx.table)} — {data.where(ctx.table)}"
        ),
        _scatter_note,
        lambda info, title, path, ctx: png.objective_scatter(info, title, path, ctx.budget),
        lambda info, title, ctx: html.objective_scatter(info, title, ctx.budget),
    ),
    FigureSpec(
        "ttft_breakdown",
        "TTFT breakdown",
        lambda ctx: parts if len(parts := data.ttft_breakdown(ctx.table)) else None,
        lambda info, ctx: "TTFT breakdown (encoder + projector + prefill)",
        lambda info: "Each bar: one point's TTFT parts; hover (HTML) shows each part's source.",
        lambda info, title, path, ctx: png.ttft_breakdown(info, title, path),
        lambda info, title, ctx: html.ttft_breakdown(info, title),
    ),
    FigureSpec(
        "scaling",
        "Scaling with resolution",
        lambda ctx: scale if len(scale := data.scaling(ctx.table)) else None,
        lambda info, ctx: "Tokens, MACs and encoder latency vs resolution",
        _scaling_note,
        lambda info, title, path, ctx: png.scaling(info, title, path),
        lambda info, title, ctx: html.scaling(info, title),
    ),
    FigureSpec(
        "vs_paper",
        "This device vs the paper's M1 Max",
        _comparison,
        lambda info, ctx: "TTFT here vs the paper's M1 Max",
        _comparison_note,
        lambda info, title, path, ctx: png.measured_vs_paper(info[0], info[1], title, path),
        lambda info, title, ctx: html.measured_vs_paper(info[0], info[1], title),
    ),
    FigureSpec(
        "hypervolume",
        "Search progress",
        lambda ctx: (
            data.search_progress(ctx.table, ctx.objectives, ctx.budget)
            if ctx.meta.get("config", {}).get("search", {}).get("name", "grid") != "grid"
            else None
        ),
        lambda info, ctx: "Hypervolume by trial",
        lambda info: "Hypervolume of the feasible front (within the TTFT budget) after each trial.",
        lambda info, title, path, ctx: png.search_progress(info, title, path),
        lambda info, title, ctx: html.search_progress(info, title),
    ),
]


def _export_front(front: Any, out: Path, caption: str) -> list[Path]:
    """The Pareto set as CSV and as a LaTeX table (booktabs), every value with its source column."""
    csv_path, tex_path = out / "front.csv", out / "front.tex"
    front.to_csv(csv_path, index=False)
    special = {c: "\\" + c for c in "_%&#$"}
    caption = "".join(special.get(c, c) for c in caption)  # the table body is escaped by pandas
    latex = front.to_latex(index=False, escape=True, float_format="%.1f", caption=caption, label="tab:front")
    tex_path.write_text(latex, encoding="utf-8")
    return [csv_path, tex_path]


def _search_sections(ctx: Context, out: Path, report: Report) -> list[tuple[str, str]]:
    """For a search: which found designs dominate which anchor, the front's architectures, and, when
    accuracy is the calibrated proxy, how well the proxy ranks the paper's points (its validity)."""
    config = ctx.meta.get("config", {})
    sections: list[tuple[str, str]] = []
    if config.get("search", {}).get("name", "grid") != "grid":
        done = data.completed(ctx.table)
        beaten = data.dominance(ctx.table, ctx.objectives)
        if len(beaten):
            wins = (beaten["dominated_by"] != "none").sum()
            clear = (beaten["beyond_errors"] != "none").sum()
            summary = (
                f"{wins} of {len(beaten)} anchor(s) are dominated by a design the search found; {clear} of them "
                "still are with every value at the worse edge of its error (beyond_errors)."
                if wins
                else "No design the search found dominates an anchor (the paper's encoders)."
            )
            sections.append(
                (
                    "What the search found",
                    f'<p class="note">{html.esc(summary)} Values as recorded; their sources and errors are in '
                    "the Pareto set below. Anchors carry their family's marker in the front figure; the "
                    "search's designs are 'custom'.</p>" + html.table_html(beaten, sortable=False),
                )
            )
        if len(done) and all(c in done for c in ctx.objectives):
            shapes = data.front_architectures(pareto_front(done, ctx.objectives))
            sections.append(
                (
                    "Front architectures",
                    '<p class="note">R = RepMixer stage, A = attention stage; stride = output stride.</p>'
                    + html.table_html(shapes, sortable=False),
                )
            )
    sources = config.get("accuracy", {}).get("sources") or []
    if "proxy_calibrated" in sources:
        from fastvitsearch.accuracy.calibration import ProxyRuns, rank_agreement

        metric = config["accuracy"].get("metric", "TextVQA")
        runs = ProxyRuns.load((config["accuracy"].get("proxy_calibrated") or {}).get("calibration"))
        paired, published, _ = runs.paired(metric)
        agreement = rank_agreement([r.accuracy for r in paired], published, n_boot=500)
        path = out / "proxy_validity.png"
        title = f"Proxy vs published {metric}: Kendall tau {agreement.kendall_tau:.2f} ({len(paired)} points)"
        report.pngs.append(png.proxy_validity(runs, metric, title, path))
        note = (
            f"The accuracy axis is the proxy calibrated on the paper's {len(paired)} validation points "
            f"(measured on {runs.measured_on}). Kendall tau {agreement.kendall_tau:.2f} "
            f"(95 % over seeds {agreement.tau_ci95_seeds}, over points {agreement.tau_ci95_points}), Spearman "
            f"rho {agreement.spearman_rho:.2f}. Target: tau >= 0.7; below it the ranking of new designs by "
            "accuracy is not supported by the validation."
        )
        sections.append(
            (
                "Proxy validity",
                f'<p class="note">{html.esc(note)}</p><img src="{html.esc(path.name)}" alt="proxy validity">',
            )
        )
    return sections


def default_report_dir(sweep_dir: Path, meta: dict) -> Path:
    """``reports/<experiment>/<study>``, beside the ``sweeps/`` folder the study lives in."""
    experiment = meta.get("experiment") or sweep_dir.parent.name
    study = meta.get("study") or sweep_dir.name
    root = sweep_dir.parents[2] if len(sweep_dir.parents) > 2 and sweep_dir.parents[1].name == "sweeps" else Path(".")
    return root / "reports" / experiment / study


def _cache_note(hardware: pd.DataFrame) -> str:
    """Why a span of timing times matters: a cached timing comes from an earlier run."""
    reused = [str(n) for n in hardware.get("timings_cached", []) if isinstance(n, str) and not n.startswith("0 ")]
    if not reused:
        return ""
    when = ", between the times shown" if "timed_from" in hardware else ""  # older cache entries have no time
    return (
        f'<p class="note">Some timings were reused from the measurement cache (taken in an earlier run{when}). '
        "Ratios are safest within one run: on a machine whose speed drifts, "
        "<code>device.force=true</code> times every point again.</p>"
    )


def build_report(sweep_dir: str | Path, out_dir: str | Path | None = None, only_if_changed: bool = False) -> Report:
    """Write the report; with ``only_if_changed`` an existing report built from the same results
    table and meta is kept as it is (a rerun of a finished sweep rebuilds nothing)."""
    sweep_dir = Path(sweep_dir)
    table, meta = load_folder(sweep_dir)
    out = Path(out_dir) if out_dir else default_report_dir(sweep_dir, meta)
    out.mkdir(parents=True, exist_ok=True)
    stamp, digest = out / BUILT_FROM, inputs_digest(sweep_dir)
    if only_if_changed and is_current(sweep_dir, out):
        return Report(out, out / "index.html", sorted(out.glob("*.png")), rebuilt=False)
    objectives = meta.get("objectives") or {"ttft_ms": "minimize", "accuracy": "maximize"}
    ctx = Context(table, meta, objectives, meta.get("ttft_budget_ms"))
    name = f"{meta.get('experiment', sweep_dir.parent.name)} / {meta.get('study', sweep_dir.name)}"
    report = Report(out, out / "index.html")
    sections: list[tuple[str, str]] = []
    for figure in FIGURES:
        info = figure.data(ctx)
        if info is None:
            continue
        title, path = figure.title(info, ctx), out / f"{figure.key}.png"
        report.pngs.append(figure.png(info, title, path, ctx))
        fig = figure.html(info, title, ctx)
        note = figure.note(info)
        sections.append(
            (
                figure.heading,
                (f'<p class="note">{html.esc(note)}</p>' if note else "")
                + html.figure_html(fig, not report.pngs[:-1], figure.key)
                + f'<p class="note">PNG: <a href="{html.esc(path.name)}">{html.esc(path.name)}</a></p>',
            )
        )
        if figure.key == "vs_paper":
            sections.append(("Ranking here vs the paper", html.table_html(info[0])))
    if meta.get("experiment") == "paper_claims":
        claims = claims_table(table)
        sections.insert(
            0,
            (
                "The paper's claims, recomputed",
                '<p class="note">'
                + html.esc(
                    "Printed: the paper's figure. Recomputed: the same ratio from the paper's own table entries "
                    "(Table 10's FastViTHD series, and Table 4's where it changes the answer). Measured here: the "
                    f"ratio of this sweep's two points. 'reproduces' = within {CLAIM_TOLERANCE:.0%} of the "
                    "printed figure."
                )
                + "</p>"
                + html.table_html(claims, sortable=False),
            ),
        )
    sections += _search_sections(ctx, out, report)
    done = data.completed(table)
    if len(done) and all(c in done for c in objectives):
        front = pareto_front(done, objectives)
        front = front[[c for c in dict.fromkeys([*FRONT_COLUMNS, *objectives]) if c in front]]
        front = front[[c for c in front.columns if front[c].notna().any()]]
        report.exports = _export_front(front, out, f"Pareto set: {name} ({data.where(table)})")
        links = ", ".join(f'<a href="{html.esc(p.name)}">{html.esc(p.name)}</a>' for p in report.exports)
        sections.append(("Pareto set", html.table_html(front) + f'<p class="note">Export: {links}</p>'))
    hardware = data.devices(table)
    if len(hardware) > 1:
        sections.insert(
            0,
            (
                "Warning: timings from several devices",
                "<p>These trials were timed on different "
                "hardware; bars are labelled with their device fingerprint and no figure averages "
                "across devices.</p>" + html.table_html(hardware),
            ),
        )
    elif len(hardware):
        sections.append(("Device", html.table_html(hardware) + _cache_note(hardware)))
    problems = data.failed_and_noisy(table)
    sections.append(
        (
            "Failed, noisy and pruned trials",
            "<h3>Failed (with their error)</h3>"
            + html.table_html(problems["failed"])
            + "<h3>Noisy timings (IQR/median > 10 %)</h3>"
            + html.table_html(problems["noisy"])
            + "<h3>Pruned (no value for an objective, with every source's reason)</h3>"
            + html.table_html(problems["pruned"]),
        )
    )
    method = data.method(table, meta)
    sections.append(
        (
            "Method",
            f"<p>Reproduce: <code>{html.esc(method['command'])}</code></p>"
            f"<p>Published numbers: {html.esc(CITATION)}, transcribed in "
            "<code>fastvitsearch/data/fastvlm_paper_results.csv</code>; never presented as ours.</p>"
            + html.json_block(method),
        )
    )
    report.html.write_text(html.page(f"fastvitsearch report: {name}", sections), encoding="utf-8")
    stamp.write_text(digest)
    return report
