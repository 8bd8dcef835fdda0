"""Several sweeps side by side: the same points timed on other runtimes, devices or the paper's M1 Max.

``python -m fastvitsearch.report <sweep> <sweep> …`` writes one page: every shared point's latency
(TTFT when every sweep has it, else encoder latency) per sweep on shared axes, the paper's M1 Max
number beside them where it publishes the point, the ranking of the points in each sweep with its
Kendall tau against the paper's (or the first sweep's) ranking, and each point's ratio to the
FastViTHD point — the ratios the paper's comparison rests on. From the results tables alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pandas as pd

from fastvitsearch import paper
from fastvitsearch.paper import CITATION
from fastvitsearch.report import data, html, png
from fastvitsearch.results import TableError, load_folder

PAPER = "paper M1 Max (published)"


class Sweep(NamedTuple):
    label: str
    table: pd.DataFrame
    meta: dict


class ComparisonInfo(NamedTuple):
    """``values``: one row per (point, sweep) with ``ms`` and its ``source``; ``rankings``: per
    sweep the points in order, tau against the reference ranking; ``ratios``: point / reference point."""

    metric: str
    values: pd.DataFrame
    rankings: pd.DataFrame
    ratios: pd.DataFrame
    reference_point: str | None


def sweep_label(table: pd.DataFrame, meta: dict, folder: Path) -> str:
    """``<study> [<device> <runtime> <precision>]``: what tells two sweeps apart."""
    done = data.profiled(table)
    parts = [meta.get("study") or folder.name]
    for column in ("device", "runtime", "precision"):
        if column in done and done[column].notna().any():
            parts.append(str(done[column].dropna().iloc[0]))
    return f"{parts[0]} [{' '.join(parts[1:])}]" if len(parts) > 1 else parts[0]


def _published(point: pd.Series, metric: str) -> tuple[float, str] | None:
    encoder = paper.encoder_latencies().get((point["encoder"], int(point["resolution"])))
    if encoder is None or paper.ENCODER_NAMES.get(point["encoder"]) is None:
        return None
    if metric == "encoder_ms":
        return encoder[0], f"published:{encoder[1]}"
    prefill = paper.prefills().get((point.get("llm"), int(point["visual_tokens"])))
    if prefill is None:
        return None
    return encoder[0] + prefill[0], f"published:{encoder[1]} + {prefill[1]}"


def comparison(sweeps: list[Sweep]) -> ComparisonInfo:
    done = [(s.label, data.profiled(s.table)) for s in sweeps]
    metric = "ttft_ms" if all("ttft_ms" in t and t["ttft_ms"].notna().any() for _, t in done) else "encoder_ms"
    rows = []
    for label, table in done:
        for _, r in table.iterrows():
            if pd.notna(r.get(metric)):
                rows.append(
                    {"point": r["point"], "sweep": label, "ms": float(r[metric]), "source": r.get(f"{metric}_source")}
                )
    values = pd.DataFrame(rows, columns=["point", "sweep", "ms", "source"])
    shared = set.intersection(*(set(values[values["sweep"] == label]["point"]) for label, _ in done)) if done else set()
    if not shared:
        counts = ", ".join(f"{label}: {values['sweep'].eq(label).sum()}" for label, _ in done)
        raise TableError(f"sweep_dirs: no point has {metric} in every sweep (points that have it: {counts})")
    values = values[values["point"].isin(shared)]
    first = done[0][1] if done else pd.DataFrame()
    published = []
    for _, r in first[first["point"].isin(shared)].drop_duplicates("point").iterrows() if len(first) else []:
        if (hit := _published(r, metric)) is not None:
            published.append({"point": r["point"], "sweep": PAPER, "ms": hit[0], "source": hit[1]})
    if len(published) == len(shared) and shared:
        values = pd.concat([values, pd.DataFrame(published)], ignore_index=True)
    order = [label for label, _ in done] + ([PAPER] if PAPER in set(values["sweep"]) else [])
    reference = PAPER if PAPER in order else (order[0] if order else None)
    wide = values.pivot_table(index="point", columns="sweep", values="ms") if len(values) else pd.DataFrame()
    rankings = []
    for label in order:
        column = wide[label].sort_values()
        tau = data.ranking_agreement(pd.DataFrame({"ours_ms": wide[label], "paper_ms": wide[reference]}))
        rankings.append({"sweep": label, "fastest first": " < ".join(column.index), f"tau vs {reference}": tau})
    reference_point = next((p for p in wide.index if p.startswith("fastvithd@")), wide.index[0] if len(wide) else None)
    ratios = (wide.div(wide.loc[reference_point], axis=1).T if reference_point else pd.DataFrame()).round(3)
    return ComparisonInfo(metric, values, pd.DataFrame(rankings), ratios.reset_index(), reference_point)


def fronts(sweeps: list[Sweep]) -> dict[str, data.ScatterInfo] | None:
    """Each sweep's accuracy-vs-TTFT points and Pareto front, when every sweep has both."""
    objectives = {"ttft_ms": "minimize", "accuracy": "maximize"}
    infos = {}
    for sweep in sweeps:
        done = data.completed(sweep.table)
        if not all(c in done and done[c].notna().any() for c in objectives):
            return None
        infos[sweep.label] = data.objective_scatter(sweep.table, objectives)
    return infos


def _method_row(sweep: Sweep) -> dict[str, str]:
    method = data.method(sweep.table, sweep.meta)
    keys = ("device_fingerprint", "threads", "runtime", "precision")
    return {
        "sweep": sweep.label,
        **{k: ", ".join(method[k]) for k in keys},
        "versions": "; ".join(f"{k} {', '.join(v)}" for k, v in method["versions"].items()),
        "command": method["command"] or "",
    }


def _fronts_section(sweeps: list[Sweep], out: Path) -> list[tuple[str, str]]:
    infos = fronts(sweeps)
    if infos is None:
        return []
    first = next(iter(infos.values()))
    title = f"{data.label(first.y, sweeps[0].table)} vs {data.label(first.x)}, per sweep"
    png.fronts(infos, title, out / "fronts.png")
    body = html.figure_html(html.fronts(infos, title), False, "fronts")
    note = "Each sweep's points (markers) and Pareto front (line), on shared axes."
    return [("Fronts per sweep", f'<p class="note">{html.esc(note)}</p>' + body)]


def build_comparison(folders: list[str | Path], out_dir: str | Path | None = None) -> Path:
    paths = [Path(folder) for folder in folders]
    seen: dict[Path, Path] = {}
    for path in paths:
        if path.resolve() in seen:
            raise TableError(f"sweep_dirs: {seen[path.resolve()]} is given twice; compare different sweeps")
        seen[path.resolve()] = path
    loaded = [(path, *load_folder(path)) for path in paths]
    labels = [sweep_label(table, meta, path) for path, table, meta in loaded]
    # two studies of the same name on the same device would share one bar colour: the folder tells them apart
    labels = [
        f"{label} ({path})" if labels.count(label) > 1 else label
        for label, (path, _, _) in zip(labels, loaded, strict=True)
    ]
    sweeps = [Sweep(label, table, meta) for label, (_, table, meta) in zip(labels, loaded, strict=True)]
    experiments = {s.meta.get("experiment") for s in sweeps}
    shared = experiments.pop() if len(experiments) == 1 else None
    out = Path(out_dir) if out_dir else Path("reports") / (shared or "compare")
    out = out / "comparison" if out_dir is None else out
    out.mkdir(parents=True, exist_ok=True)
    info = comparison(sweeps)
    title = f"{data.label(info.metric)} per sweep"
    png.comparison(info.values, info.metric, title, out / "comparison.png")
    figure = html.comparison(info.values, info.metric, title)
    note = (
        f"{len(set(info.values['point']))} point(s) every sweep holds; "
        + (f"the paper's M1 Max numbers ({PAPER}) beside them. " if PAPER in set(info.values["sweep"]) else "")
        + "Each bar's hover names its source."
    )
    sections = [
        (
            "Latency per sweep",
            f'<p class="note">{html.esc(note)}</p>'
            + html.figure_html(figure, True, "comparison")
            + '<p class="note">PNG: <a href="comparison.png">comparison.png</a></p>',
        ),
        ("Ranking per sweep", html.table_html(info.rankings)),
        *_fronts_section(sweeps, out),
        (f"Ratio to {info.reference_point} (same sweep)", html.table_html(info.ratios)),
        ("Sweeps", html.table_html(pd.DataFrame([_method_row(s) for s in sweeps]))),
        ("Method", f"<p>Published numbers: {html.esc(CITATION)}; never presented as ours.</p>"),
    ]
    page = out / "index.html"
    page.write_text(html.page("fastvitsearch comparison: " + ", ".join(s.label for s in sweeps), sections), "utf-8")
    return page
