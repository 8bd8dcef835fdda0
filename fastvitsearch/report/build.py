"""Assemble a report folder from a sweep folder: ``index.html`` plus one PNG per figure.

Everything comes from the results table (and its ``meta.json``), so a report can be rebuilt
anywhere, any time, without rerunning the sweep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fastvitsearch.paper import CITATION
from fastvitsearch.pareto import pareto_front
from fastvitsearch.report import data, html, png
from fastvitsearch.results import load_folder

FRONT_COLUMNS = [
    "point",
    "encoder",
    "family",
    "resolution",
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


def default_report_dir(sweep_dir: Path, meta: dict) -> Path:
    """``reports/<experiment>/<study>``, beside the ``sweeps/`` folder the study lives in."""
    experiment = meta.get("experiment") or sweep_dir.parent.name
    study = meta.get("study") or sweep_dir.name
    root = sweep_dir.parents[2] if len(sweep_dir.parents) > 2 and sweep_dir.parents[1].name == "sweeps" else Path(".")
    return root / "reports" / experiment / study


def build_report(sweep_dir: str | Path, out_dir: str | Path | None = None) -> Report:
    sweep_dir = Path(sweep_dir)
    table, meta = load_folder(sweep_dir)
    out = Path(out_dir) if out_dir else default_report_dir(sweep_dir, meta)
    out.mkdir(parents=True, exist_ok=True)
    objectives = meta.get("objectives") or {"ttft_ms": "minimize", "accuracy": "maximize"}
    budget = meta.get("ttft_budget_ms")
    name = f"{meta.get('experiment', sweep_dir.parent.name)} / {meta.get('study', sweep_dir.name)}"
    report = Report(out, out / "index.html")
    sections: list[tuple[str, str]] = []
    first = True

    def add_figure(heading: str, fig, png_path: Path, note: str = "") -> None:
        nonlocal first
        report.pngs.append(png_path)
        body = html.figure_html(fig, first, png_path.stem)
        first = False
        sections.append(
            (
                heading,
                (f'<p class="note">{note}</p>' if note else "")
                + body
                + f'<p class="note">PNG: <a href="{html.esc(png_path.name)}">{html.esc(png_path.name)}</a></p>',
            )
        )

    done = data.completed(table)
    if len(objectives) >= 2 and len(done):
        scatter = data.objective_scatter(table, objectives)
        x, y = scatter["x"], scatter["y"]
        title = f"{data.label(y, table)} vs {data.label(x, table)}"
        png.objective_scatter(scatter, title, out / "front.png", budget)
        add_figure(
            "Pareto front",
            html.objective_scatter(scatter, title, budget),
            out / "front.png",
            "Colour: LLM. Marker: encoder family. Filled: published / measured / counted values; hollow "
            "with error bars: predicted (bar = its held-out error). Black line: the Pareto front.",
        )
    parts = data.ttft_breakdown(table)
    if len(parts):
        png.ttft_breakdown(parts, "TTFT breakdown", out / "ttft_breakdown.png")
        add_figure(
            "TTFT breakdown",
            html.ttft_breakdown(parts, "TTFT breakdown (encoder + projector + prefill)"),
            out / "ttft_breakdown.png",
        )
    scale = data.scaling(table)
    if len(scale):
        png.scaling(scale, "Scaling with resolution", out / "scaling.png")
        add_figure(
            "Scaling with resolution",
            html.scaling(scale, "Tokens, MACs and encoder latency vs resolution"),
            out / "scaling.png",
            "Log-log. ViT's attention cost grows with the square of its tokens; "
            "FastViTHD's extra downsampling stage keeps its tokens 4x fewer than FastViT's.",
        )
    comparison = data.measured_vs_paper(table)
    if len(comparison):
        tau = data.ranking_agreement(comparison)
        png.measured_vs_paper(comparison, tau, "This device vs the paper's M1 Max", out / "vs_paper.png")
        add_figure(
            "This device vs the paper's M1 Max",
            html.measured_vs_paper(comparison, tau, "TTFT here vs the paper's M1 Max"),
            out / "vs_paper.png",
            "Points where the paper publishes both TTFT components (Table 10). Does the ranking hold?",
        )
        sections.append(("Ranking here vs the paper", html.table_html(comparison)))
    if meta.get("config", {}).get("search", {}).get("name", "grid") != "grid":
        progress = data.search_progress(table, objectives, budget)
        png.search_progress(progress, "Search progress", out / "hypervolume.png")
        add_figure("Search progress", html.search_progress(progress, "Hypervolume by trial"), out / "hypervolume.png")
    if len(done) and all(c in done for c in objectives):
        front = pareto_front(done, objectives)
        columns = [c for c in dict.fromkeys([*FRONT_COLUMNS, *objectives]) if c in front]
        sections.append(("Pareto set", html.table_html(front[columns])))
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
        sections.append(("Device", html.table_html(hardware)))
    problems = data.failed_and_noisy(table)
    sections.append(
        (
            "Failed, noisy and pruned trials",
            "<h3>Failed</h3>"
            + html.table_html(problems["failed"])
            + "<h3>Noisy timings (IQR/median > 10 %)</h3>"
            + html.table_html(problems["noisy"])
            + "<h3>Pruned (no value for an objective)</h3>"
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
    return report
