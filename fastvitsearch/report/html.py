"""plotly rendering of the report as one self-contained HTML file (works offline, no CDN).

plotly.js is inlined once (about 5 MB); every user-provided string (encoder names, errors,
commands) is HTML-escaped before it reaches the page or a hover label.
"""

from __future__ import annotations

import html
import json
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from fastvitsearch.report.data import ProgressInfo, ScatterInfo, label

SYMBOLS = {"ViT-L/14": "square", "FastViT": "triangle-up", "FastViTHD": "circle", "tiny": "diamond", "custom": "cross"}
FILLED = {"published", "measured", "counted", "user"}


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _hover(text: str) -> str:
    return "<br>".join(esc(line) for line in str(text).split("\n"))


def objective_scatter(data: ScatterInfo, title: str, budget: float | None = None) -> go.Figure:
    x, y, points, front = data
    fig = go.Figure()
    llms = sorted(points["llm"].unique()) if len(points) else []
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
    for (llm, family, kind), group in points.groupby(["llm", "family", "y_kind"]) if len(points) else []:
        color = palette[llms.index(llm) % len(palette)]
        symbol = SYMBOLS.get(family, "circle") + ("" if kind in FILLED else "-open")
        fig.add_trace(
            go.Scatter(
                x=group[x],
                y=group[y],
                mode="markers",
                name=esc(f"{family} · {llm} ({kind})"),
                marker={"symbol": symbol, "color": color, "size": 10},
                error_x={"type": "data", "array": group["x_err"], "visible": bool(group["x_err"].any())},
                error_y={"type": "data", "array": group["y_err"], "visible": bool(group["y_err"].any())},
                text=[_hover(t) for t in group["hover"]],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    if len(front):
        fig.add_trace(
            go.Scatter(
                x=front[x],
                y=front[y],
                mode="lines",
                line={"shape": "hv", "color": "black"},
                name="Pareto front",
                hoverinfo="skip",
            )
        )
    if budget is not None:
        fig.add_vline(x=budget, line_dash="dash", annotation_text=f"TTFT budget {budget:g} ms")
    fig.update_layout(
        title=esc(title),
        xaxis_title=label(x, points),
        yaxis_title=label(y, points),
        legend={"x": 1.02, "y": 1},
        margin={"r": 260},
        height=520,
    )
    if x.endswith("_ms"):
        fig.update_xaxes(type="log")
    return fig


def ttft_breakdown(parts: pd.DataFrame, title: str) -> go.Figure:
    llms = list(dict.fromkeys(parts["llm"]))
    fig = make_subplots(rows=len(llms), cols=1, subplot_titles=[esc(m) for m in llms], shared_xaxes=False)
    for row, llm in enumerate(llms, start=1):
        sub = parts[parts["llm"] == llm]
        for i, part in enumerate(["encoder_ms", "projector_ms", "prefill_ms"]):
            p = sub[sub["part"] == part]
            fig.add_trace(
                go.Bar(
                    y=[esc(v) for v in p["label"]],
                    x=p["ms"],
                    orientation="h",
                    name=part.removesuffix("_ms"),
                    legendgroup=part,
                    showlegend=row == 1,
                    marker_color=["#1f77b4", "#ff7f0e", "#2ca02c"][i],
                    text=[esc(s) for s in p["source"]],
                    hovertemplate="%{x:.1f} ms<br>%{text}",
                ),
                row=row,
                col=1,
            )
        fig.update_xaxes(title_text="time to first token (ms)", row=row, col=1)
    fig.update_layout(barmode="stack", title=esc(title), height=220 + 28 * len(parts) // 3)
    return fig


def scaling(table: pd.DataFrame, title: str) -> go.Figure:
    metrics = [c for c in ("visual_tokens", "macs", "encoder_ms") if c in table]
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[label(m) for m in metrics])
    for col, metric in enumerate(metrics, start=1):
        for i, (family, group) in enumerate(table.groupby("family")):
            fig.add_trace(
                go.Scatter(
                    x=group["resolution"],
                    y=group[metric],
                    mode="lines+markers",
                    name=esc(family),
                    legendgroup=family,
                    showlegend=col == 1,
                    marker={"symbol": SYMBOLS.get(family, "circle")},
                    line={"color": ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"][i % 5]},
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(type="log", title_text="input resolution (px)", row=1, col=col)
        fig.update_yaxes(type="log", row=1, col=col)
    fig.update_layout(title=esc(title), height=420)
    return fig


def measured_vs_paper(comparison: pd.DataFrame, tau: float | None, title: str) -> go.Figure:
    text = [
        _hover(
            f"{r.point}\nours {r.ours_ms:.1f} ms [{r.ours_source}]\npaper {r.paper_ms:.1f} ms "
            f"[{r.paper_source}]\nratio {r.ratio:.1f}"
        )
        for r in comparison.itertuples()
    ]
    fig = go.Figure(
        go.Scatter(
            x=comparison["paper_ms"],
            y=comparison["ours_ms"],
            mode="markers+text",
            text=[esc(p) for p in comparison["point"]],
            textposition="top center",
            hovertext=text,
            hoverinfo="text",
        )
    )
    suffix = f" (Kendall τ of rankings = {tau:.2f})" if tau is not None else ""
    fig.update_layout(
        title=esc(title + suffix),
        xaxis_title="paper: M1 Max TTFT (ms, published)",
        yaxis_title="ours: TTFT on this device (ms)",
        height=480,
    )
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return fig


def search_progress(progress: ProgressInfo, title: str) -> go.Figure:
    curve = progress.hypervolume
    fig = go.Figure(go.Scatter(x=curve.get("trial", []), y=curve.get("hypervolume", []), mode="lines+markers"))
    fig.update_layout(
        title=esc(title),
        xaxis_title="trial",
        yaxis_title=esc(f"hypervolume of feasible {' × '.join(progress.objectives)}"),
        height=380,
    )
    return fig


def comparison(values: pd.DataFrame, metric: str, title: str) -> go.Figure:
    """Grouped bars: one group per point, one bar per sweep; hover names each value's source."""
    fig = go.Figure()
    for sweep, group in values.groupby("sweep", sort=False):
        fig.add_trace(
            go.Bar(
                y=[esc(p) for p in group["point"]],
                x=group["ms"],
                orientation="h",
                name=esc(sweep),
                text=[esc(s) for s in group["source"]],
                hovertemplate="%{y}: %{x:,.1f} ms<br>%{text}<extra>" + esc(sweep) + "</extra>",
            )
        )
    fig.update_layout(title=esc(title), barmode="group", xaxis_title=esc(label(metric)), height=220 + 40 * len(values))
    fig.update_xaxes(type="log")
    return fig


def fronts(infos: dict[str, ScatterInfo], title: str) -> go.Figure:
    """Several sweeps' points and Pareto fronts on shared axes, one colour per sweep."""
    fig = go.Figure()
    for sweep, info in infos.items():
        fig.add_trace(
            go.Scatter(
                x=info.points[info.x],
                y=info.points[info.y],
                mode="markers",
                name=esc(sweep),
                legendgroup=esc(sweep),
                text=[_hover(t) for t in info.points["hover"]],
                hoverinfo="text",
                opacity=0.6,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=info.front[info.x],
                y=info.front[info.y],
                mode="lines",
                line_shape="hv",
                name=esc(f"{sweep} front"),
                legendgroup=esc(sweep),
            )
        )
    first = next(iter(infos.values()))
    fig.update_layout(title=esc(title), xaxis_title=esc(label(first.x)), yaxis_title=esc(label(first.y)), height=520)
    fig.update_xaxes(type="log")
    return fig


SORT_JS = """
document.querySelectorAll('table.sortable th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0], rows = Array.from(body.rows);
    var asc = th.dataset.asc !== 'true'; th.dataset.asc = asc;
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def table_html(frame: pd.DataFrame, sortable: bool = True, digits: int = 2) -> str:
    if frame is None or frame.empty:
        return "<p><em>none</em></p>"
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = []
        for value in row:
            shown = f"{value:,.{digits}f}" if isinstance(value, float) else value
            cells.append(f'<td data-v="{esc(value)}">{esc(shown)}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    cls = ' class="sortable"' if sortable else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; font-size: 13px; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; }
th { background: #f3f3f3; cursor: pointer; }
code, pre { background: #f6f6f6; padding: 2px 4px; }
pre { padding: 0.7em; overflow-x: auto; }
.note { color: #555; }
"""


def page(title: str, sections: list[tuple[str, str]]) -> str:
    """The whole document: ``sections`` are (heading, already-safe HTML body)."""
    body = "\n".join(f"<section><h2>{esc(h)}</h2>\n{content}</section>" for h, content in sections)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1>\n{body}\n<script>{SORT_JS}</script>"
        "</body></html>\n"
    )


def figure_html(fig: go.Figure, first: bool, div_id: str) -> str:
    """A figure's div; plotly.js is inlined with the first figure only."""
    return fig.to_html(
        full_html=False, include_plotlyjs=True if first else False, div_id=div_id, config={"displaylogo": False}
    )


def json_block(value: Any) -> str:
    return f"<pre>{esc(json.dumps(value, indent=1, default=str))}</pre>"
