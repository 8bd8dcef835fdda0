"""What each report figure shows, computed from the results table alone (pure functions).

Each figure's data is a typed tuple (as Optuna's ``_get_pareto_front_info`` feeds both of its
renderers); rendering lives in ``png.py`` (matplotlib) and ``html.py`` (plotly), and both draw
exactly these, so the tests check the data without drawing anything. Torch-, timm- and
Optuna-free: a report needs the results table alone.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from fastvitsearch import paper
from fastvitsearch.pareto import hypervolume, pareto_mask
from fastvitsearch.presets import get_spec
from fastvitsearch.record import Sourced, kind_of

PARTS = ("encoder_ms", "projector_ms", "prefill_ms")
LABELS = {
    "ttft_ms": "time to first token (ms)",
    "encoder_ms": "encoder latency (ms)",
    "accuracy": "accuracy (%)",
    "visual_tokens": "visual tokens",
    "macs": "encoder MACs",
    "prefill_ms": "LLM prefill (ms)",
}


def label(column: str, table: pd.DataFrame | None = None) -> str:
    """Axis label with unit; accuracy names its benchmark."""
    if (
        column == "accuracy"
        and table is not None
        and "accuracy_metric" in table
        and table["accuracy_metric"].notna().any()
    ):
        return f"{table['accuracy_metric'].dropna().iloc[0]} accuracy (%)"
    return LABELS.get(column, column)


def where(table: pd.DataFrame) -> str:
    """Device, runtime, precision and threads of the timed trials, for figure titles."""
    done = profiled(table)

    def values(column: str) -> str:
        return "/".join(sorted({str(v) for v in done[column].dropna()})) if column in done else ""

    sources = done["encoder_ms_source"].dropna() if "encoder_ms_source" in done else []
    # a measured part's label names its device (a tiled point's adds " x<n> passes …")
    measured = {Sourced.split(s)[1].split(" x")[0] for s in sources if kind_of(s) == "measured"}
    device = "/".join(sorted(measured)) or values("device")
    runtime = " ".join(v for v in (values("runtime"), values("precision")) if v)
    threads = values("threads")
    parts = [device, runtime, f"{threads} thread(s)" if threads else ""]
    return ", ".join(p for p in parts if p)


source_kind = kind_of  # ``published:Table 6`` -> ``published``; missing -> ``none``


def completed(table: pd.DataFrame) -> pd.DataFrame:
    """Trials with every objective (the ones a Pareto front can hold)."""
    return table[table["state"] == "COMPLETE"] if "state" in table and len(table) else table


def profiled(table: pd.DataFrame) -> pd.DataFrame:
    """Trials that were counted and timed, with or without an accuracy (COMPLETE or PRUNED)."""
    return table[table["state"].isin(["COMPLETE", "PRUNED"])] if "state" in table and len(table) else table


def _hover(row: pd.Series, objectives: dict[str, str]) -> str:
    parts = [
        f"{row.get('point')} on {row.get('device_fingerprint') or row.get('device')}",
        f"family {row.get('family')}, {row.get('resolution')} px, "
        f"{row.get('visual_tokens')} tokens, {row.get('macs', float('nan')) / 1e9:.1f} GMACs",
    ]
    for part in ("encoder_ms", "projector_ms", "prefill_ms", "ttft_ms"):
        if part in row and pd.notna(row.get(part)):
            error = row.get(f"{part}_error")
            err = f" ±{error * 100:.0f}%" if pd.notna(error) and error else ""
            parts.append(f"{part} {row[part]:.1f}{err} [{row.get(f'{part}_source')}]")
    if pd.notna(row.get("accuracy")):
        parts.append(f"accuracy {row['accuracy']:.1f} [{row.get('accuracy_source')}]")
    return "\n".join(str(p) for p in parts)


#: the resolution of the paper's headline FastViTHD point (256 tokens, 1024 px)
HEADLINE_RESOLUTION = 1024


class ScatterInfo(NamedTuple):
    """The first two objectives of every completed trial; ``front`` is the Pareto set."""

    x: str
    y: str
    points: pd.DataFrame
    front: pd.DataFrame


def objective_scatter(table: pd.DataFrame, objectives: dict[str, str]) -> ScatterInfo:
    """Colour = LLM, marker = encoder family, style = source kind of the y value (published /
    predicted with error bar / proxy / user / measured / counted)."""
    x, y = list(objectives)[:2]
    done = completed(table).copy()
    if done.empty:
        return ScatterInfo(x, y, done, done)
    done["llm"] = done.get("llm", pd.Series(index=done.index, dtype=object)).fillna("(no LLM)")
    done["y_kind"] = done.get(f"{y}_source", pd.Series(index=done.index, dtype=object)).map(kind_of)
    if y == "visual_tokens" or f"{y}_source" not in done:
        done["y_kind"] = "counted"
    for axis, column in (("x", x), ("y", y)):
        error = done.get(f"{column}_error")
        done[f"{axis}_err"] = (error.astype(float) * done[column]).fillna(0.0) if error is not None else 0.0
    done["hover"] = done.apply(lambda r: _hover(r, objectives), axis=1)
    directions = [objectives[x], objectives[y]]
    done["on_front"] = pareto_mask(done[[x, y]].to_numpy(float), directions)
    done["on_family_front"] = False
    for _, group in done.groupby("family"):
        done.loc[group.index, "on_family_front"] = pareto_mask(group[[x, y]].to_numpy(float), directions)
    # the paper's headline point: FastViTHD at its paper resolution (1024 px), single image
    tiled = done["tiling"].notna() if "tiling" in done else False
    done["headline"] = (done["family"] == "FastViTHD") & (done["resolution"] == HEADLINE_RESOLUTION) & ~tiled
    front = done[done["on_front"]].sort_values(x)
    return ScatterInfo(x, y, done, front)


#: the measured parts whose timing times span a device's row in :func:`devices`
TIMED_PARTS = ("encoder_ms", "projector_ms", "prefill_ms")


def _timed_values(table: pd.DataFrame, stat: str) -> pd.Series:
    """Every timed part's ``<part>_<stat>`` values in one series, empty for tables written before
    the column existed."""
    columns = [table[f"{part}_{stat}"] for part in TIMED_PARTS if f"{part}_{stat}" in table]
    return pd.concat(columns).dropna() if columns else pd.Series(dtype=object)


def devices(table: pd.DataFrame) -> pd.DataFrame:
    """One row per device fingerprint: its name, trial count, median encoder latency, and when its
    timings were taken (first and last, UTC) with how many were reused from the cache.

    Timings from different hardware must never mix silently: when there is more than one row,
    the report says so and labels every bar with its device. Timings of one device taken on
    different days may mix (the cache reuses them), so the row says over which span.
    """
    done = profiled(table)
    columns = ["device_fingerprint", "device", "trials", "median_encoder_ms"]
    columns += ["timed_from", "timed_to", "timings_cached"]
    if done.empty or "device_fingerprint" not in done:
        return pd.DataFrame(columns=columns)
    grouped = done.groupby(done["device_fingerprint"].fillna(done["device"]))
    rows = []
    for fingerprint, g in grouped:
        times, cached = _timed_values(g, "measured_at"), _timed_values(g, "cached")
        rows.append(
            {
                "device_fingerprint": fingerprint,
                "device": g["device"].iloc[0],
                "trials": len(g),
                "median_encoder_ms": float(g["encoder_ms"].median()) if "encoder_ms" in g else None,
                "timed_from": min(times) if len(times) else None,
                "timed_to": max(times) if len(times) else None,
                "timings_cached": f"{int(cached.isin([True, 'True']).sum())} of {len(cached)}" if len(cached) else None,
            }
        )
    frame = pd.DataFrame(rows, columns=columns)
    # published or user's latencies were never timed here: no span to show
    return frame.drop(columns=[c for c in ("timed_from", "timed_to", "timings_cached") if frame[c].isna().all()])


def ttft_breakdown(table: pd.DataFrame) -> pd.DataFrame:
    """Long table (label, llm, part, ms, source) of the TTFT parts, stacked per encoder and resolution."""
    done = profiled(table)
    if done.empty or "ttft_ms" not in done:
        return pd.DataFrame(columns=["label", "llm", "part", "ms", "source"])
    several = "device_fingerprint" in done and done["device_fingerprint"].nunique() > 1
    rows = []
    for _, r in done.sort_values(["llm", "family", "resolution"]).iterrows():
        where = f" [{r['device_fingerprint']}]" if several else ""
        for part in PARTS:
            rows.append(
                {
                    "label": f"{r['encoder']} @{r['resolution']}{where}",
                    "llm": r["llm"],
                    "part": part,
                    "ms": float(r[part]),
                    "source": r.get(f"{part}_source"),
                }
            )
    return pd.DataFrame(rows)


def scaling(table: pd.DataFrame) -> pd.DataFrame:
    """Per (family, encoder, resolution): tokens, MACs (attention share) and encoder latency."""
    done = profiled(table)
    if done.empty:
        return pd.DataFrame()
    columns = [
        "family",
        "encoder",
        "resolution",
        "visual_tokens",
        "macs",
        "macs_attention",
        "encoder_ms",
        "encoder_ms_source",
    ]
    present = [c for c in columns if c in done]
    out = done[present].drop_duplicates(["encoder", "resolution"]).sort_values(["family", "resolution"])
    if "macs_attention" in out:
        out = out.assign(attention_share=out["macs_attention"].fillna(0) / out["macs"])
    return out.reset_index(drop=True)


def measured_vs_paper(table: pd.DataFrame) -> pd.DataFrame:
    """Our TTFT beside the paper's M1 Max TTFT (both components published) for shared points.

    ``ratio`` = ours / paper; ``rank_ours`` / ``rank_paper`` order the shared points by TTFT, so
    a reader sees at once whether the paper's ranking holds on this hardware.
    """
    done = profiled(table)
    if done.empty or "ttft_ms" not in done or (done["device"] == "paper_m1max").all():
        return pd.DataFrame()
    encoders, prefills = paper.encoder_latencies(), paper.prefills()
    rows = []
    for _, r in done.iterrows():
        preset = r.get("encoder")
        if preset not in paper.ENCODER_NAMES or get_spec(preset).content_hash != r.get("spec_hash"):
            continue  # not one of the paper's encoders (by architecture)
        encoder = encoders.get((preset, int(r["resolution"])))
        prefill = prefills.get((r.get("llm"), int(r["visual_tokens"])))
        if encoder is None or prefill is None:
            continue  # the paper did not publish both components of this point
        paper_ttft = encoder[0] + prefill[0]
        rows.append(
            {
                "point": r["point"],
                "ours_ms": float(r["ttft_ms"]),
                "ours_source": r["ttft_ms_source"],
                "paper_ms": round(paper_ttft, 1),
                "paper_source": f"published:{encoder[1]} + published:{prefill[1]}",
                "ratio": float(r["ttft_ms"]) / paper_ttft,
            }
        )
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["rank_ours"] = out["ours_ms"].rank(method="min").astype(int)
    out["rank_paper"] = out["paper_ms"].rank(method="min").astype(int)
    return out.sort_values("paper_ms").reset_index(drop=True)


def ranking_agreement(comparison: pd.DataFrame) -> float | None:
    """Kendall's tau between our and the paper's TTFT order (1 = same ranking)."""
    if len(comparison) < 2:
        return None
    ours, paper = comparison["ours_ms"].to_numpy(), comparison["paper_ms"].to_numpy()
    concordant = discordant = 0
    for i in range(len(ours)):
        for j in range(i + 1, len(ours)):
            s = np.sign(ours[i] - ours[j]) * np.sign(paper[i] - paper[j])
            concordant += s > 0
            discordant += s < 0
    pairs = concordant + discordant
    return float((concordant - discordant) / pairs) if pairs else None


class ProgressInfo(NamedTuple):
    """For sampler searches: hypervolume of the feasible front after each trial, and the budget."""

    hypervolume: pd.DataFrame
    budget: float | None
    objectives: list[str]
    reference: list[float]


def search_progress(table: pd.DataFrame, objectives: dict[str, str], budget: float | None) -> ProgressInfo:
    done = completed(table).sort_values("trial")
    names = list(objectives)[:2]
    if done.empty or len(names) < 2:
        return ProgressInfo(pd.DataFrame(), budget, names, [])
    feasible = done if budget is None or "ttft_ms" not in done else done[done["ttft_ms"] <= budget]
    values = feasible[names].to_numpy(float)
    directions = [objectives[n] for n in names]
    # reference: just beyond the worst value seen, per objective
    all_values = done[names].to_numpy(float)
    reference = [
        np.nanmax(all_values[:, i]) * 1.1 if d == "minimize" else np.nanmin(all_values[:, i]) * 0.9
        for i, d in enumerate(directions)
    ]
    trials = feasible["trial"].to_numpy()
    curve = [
        {"trial": int(t), "hypervolume": hypervolume(values[: i + 1], directions, reference)}
        for i, t in enumerate(trials)
    ]
    return ProgressInfo(pd.DataFrame(curve), budget, names, reference)


def failed_and_noisy(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    failed = table[table["state"] == "FAIL"] if "state" in table else table.iloc[0:0]
    noisy_cols = [c for c in table.columns if c.endswith("_noisy")]
    noisy = table[table[noisy_cols].isin([True, "True"]).any(axis=1)] if noisy_cols else table.iloc[0:0]
    pruned = table[table["state"] == "PRUNED"] if "state" in table else table.iloc[0:0]
    return {
        "failed": failed[[c for c in ("trial", "point", "error") if c in failed]],
        "noisy": noisy[[c for c in ("trial", "point", *noisy_cols) if c in noisy]],
        "pruned": pruned[[c for c in ("trial", "point", "missing") if c in pruned]],
    }


def method(table: pd.DataFrame, meta: dict[str, Any]) -> dict[str, Any]:
    """Where the numbers came from: device, threads, versions, runtime, protocol, sources."""
    done = completed(table)

    def values(column: str) -> list[Any]:
        return sorted({str(v) for v in done[column].dropna()}) if column in done else []

    sources = {}
    for column in (
        "encoder_ms_source",
        "projector_ms_source",
        "prefill_ms_source",
        "ttft_ms_source",
        "accuracy_source",
        "counts_source",
    ):
        if column in done:
            sources[column.removesuffix("_source")] = done[column].dropna().value_counts().to_dict()
    errors = {}
    for column in ("prefill_ms_error", "encoder_ms_error", "accuracy_error"):
        if column in done and done[column].notna().any():
            errors[column.removesuffix("_error")] = float(done[column].dropna().max())
    versions = {c.removeprefix("version_"): values(c) for c in done.columns if c.startswith("version_")}
    recipes = []
    if "accuracy_detail" in done:
        for detail in done["accuracy_detail"].dropna():
            parsed = json.loads(detail) if isinstance(detail, str) else detail
            if parsed and parsed.get("recipe"):
                recipes.append(parsed["recipe"])
    config = meta.get("config") or {}
    return {
        "experiment": meta.get("experiment"),
        "study": meta.get("study"),
        "command": meta.get("command"),
        "device": values("device"),
        "device_fingerprint": values("device_fingerprint"),
        "threads": values("threads"),
        "runtime": values("runtime"),
        "runtime_version": values("runtime_version"),
        "precision": values("precision"),
        "prefill_and_projector": "timed in torch (eager) whatever the encoder's runtime" if values("runtime") else None,
        "versions": versions,
        "timing_protocol": (config.get("device") or {}).get("timing"),
        "sources": sources,
        "largest_relative_errors": errors,
        "accuracy_recipes": sorted(set(recipes)),
        "trials": {state: int(n) for state, n in table["state"].value_counts().items()} if "state" in table else {},
    }


# --- architecture search: what was found ------------------------------------------------------
def is_anchor(table: pd.DataFrame) -> pd.Series:
    """Rows of the paper's encoders (a preset family); ``custom`` rows are the search's designs."""
    return table["family"].fillna("custom") != "custom"


def architecture(spec: Any) -> dict[str, Any]:
    """A spec's shape in one row: stages, widths, depths, mixers, stride (hybrid specs; others say
    their kind)."""
    data = json.loads(spec) if isinstance(spec, str) else dict(spec or {})
    stages = data.get("stages") or []
    if not stages:
        return {"kind": data.get("kind", "?")}
    downsamples = sum(bool(s.get("downsample")) for s in stages)
    return {
        "kind": data.get("kind", "hybrid"),
        "stages": len(stages),
        "widths": "/".join(str(s["width"]) for s in stages),
        "depths": "/".join(str(s["depth"]) for s in stages),
        "mixers": "/".join("A" if s["mixer"] == "attention" else "R" for s in stages),
        "mlp": "/".join(f"{s['mlp_ratio']:g}" for s in stages),
        "stride": 4 * 2**downsamples,
    }


def front_architectures(front: pd.DataFrame) -> pd.DataFrame:
    """Each front point's architecture (R = RepMixer stage, A = attention stage), tokens included."""
    rows = []
    for row in front.itertuples():
        rows.append(
            {
                "point": row.point,
                "anchor": row.family != "custom",
                **architecture(getattr(row, "spec", None)),
                "resolution": row.resolution,
                "visual_tokens": row.visual_tokens,
            }
        )
    return pd.DataFrame(rows)


def dominance(table: pd.DataFrame, objectives: dict[str, str]) -> pd.DataFrame:
    """For each anchor: the search's designs that dominate it (no worse on every objective, better
    on one), or ``none``. Values are compared as recorded; their errors are in the front table."""
    done = completed(table)
    if not len(done) or not all(c in done for c in objectives):
        return pd.DataFrame()
    anchors, found = done[is_anchor(done)], done[~is_anchor(done)]
    sign = {c: (1.0 if d == "minimize" else -1.0) for c, d in objectives.items()}

    def half_width(row: Any, column: str) -> float:
        """A value's error in its own units (records keep it relative to the value)."""
        error = getattr(row, f"{column}_error", None)
        return 0.0 if error is None or pd.isna(error) else abs(float(error) * float(getattr(row, column)))

    rows = []
    for anchor in anchors.itertuples():
        better, clear = [], []
        for design in found.itertuples():
            diffs = [sign[c] * (getattr(design, c) - getattr(anchor, c)) for c in objectives]
            if all(d <= 0 for d in diffs) and any(d < 0 for d in diffs):
                better.append(design.point)
                margins = [
                    d + half_width(design, c) + half_width(anchor, c) for d, c in zip(diffs, objectives, strict=True)
                ]
                if all(m <= 0 for m in margins):  # still dominates with every value at its worse error edge
                    clear.append(design.point)
        rows.append(
            {
                "anchor": anchor.point,
                **{c: getattr(anchor, c) for c in objectives},
                "dominated_by": ", ".join(better) if better else "none",
                "beyond_errors": ", ".join(clear) if clear else "none",
            }
        )
    return pd.DataFrame(rows)
