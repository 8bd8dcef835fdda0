"""FastVLM's quantified claims, each recomputed from the paper's own table entries and from a sweep.

Every claim is data: the figure the paper prints, the table entries its two sides are built from
(summed: encoder latency + prefill for a TTFT), the Table 4 variant where the paper's second
FastViTHD latency series changes the answer, and the two points a sweep measures
(``+experiment=paper_claims``). :func:`claims_table` joins them into one verdict per claim:
does the printed figure follow from the paper's tables, and does it hold on this machine. A claim
whose sides cannot be built here says why. Torch-free: the report calls it.
"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from fastvitsearch.paper import paper_results

#: within this relative distance a recomputed ratio "reproduces" the printed one
TOLERANCE = 0.05


class Entry(NamedTuple):
    """One printed number: its table (row), the CSV's encoder name, resolution and metric."""

    table: str
    encoder: str
    resolution: str
    metric: str


class Claim(NamedTuple):
    claim: str
    printed: float
    a: tuple[Entry, ...]
    b: tuple[Entry, ...]
    #: the point keys a sweep measures for each side ("" when it cannot be built here)
    point_a: str
    point_b: str
    column: str = "ttft_ms"
    #: side B again with Table 4's FastViTHD latency (the paper's second series), when it applies
    b_table4: tuple[Entry, ...] = ()
    note: str = ""


def _e(table: str, encoder: str, resolution: str, metric: str = "encoder_latency") -> Entry:
    return Entry(table, encoder, resolution, metric)


_HD_R3 = (_e("Table 10 R3", "FastViTHD", "1024"), _e("Table 10 R3", "FastViTHD", "1024", "LLM_prefill"))
_HD_T4 = _e("Table 4", "FastViTHD", "1024")
CLAIMS: tuple[Claim, ...] = (
    Claim(
        "85x faster TTFT than LLaVA-OneVision-0.5B (SigLIP-SO400M, 3x3+1 tiles of 384)",
        85.0,
        (_e("Table 10 R2", "SigLIP ViT-SO400M", "1152"), _e("Table 10 R2", "SigLIP ViT-SO400M", "1152", "LLM_prefill")),
        _HD_R3,
        "siglip_so400m@384[3x3+1]+qwen2_0_5b",
        "fastvithd@1024+qwen2_0_5b",
        b_table4=(_HD_T4, _HD_R3[1]),
        note="2721.4 ms = 10 x 272.1 (one 384 crop, Table 10 R1): the paper multiplies one crop by the passes",
    ),
    Claim(
        "3.2x faster TTFT than SigLIP-SO400M in the LLaVA-1.5 setup (Fig. 1a)",
        3.2,
        (_e("Table 10 R1", "SigLIP ViT-SO400M", "384"), _e("Table 10 R1", "SigLIP ViT-SO400M", "384", "LLM_prefill")),
        _HD_R3,
        "siglip_so400m@384+qwen2_0_5b",
        "fastvithd@1024+qwen2_0_5b",
        b_table4=(_HD_T4, _HD_R3[1]),
        note="the SigLIP side's prefill is nanoLLaVA's Qwen1.5-0.5B (Table 10 R1); the figure is read off a plot",
    ),
    Claim(
        "2.3x faster TTFT than ConvNeXt-L@768 with Vicuna-7B (Fig. 1b)",
        2.3,
        (),
        (_e("Table 10 R21", "FastViTHD", "1024"), _e("Table 10 R21", "FastViTHD", "1024", "LLM_prefill")),
        "convnext_large@768+vicuna_7b",
        "fastvithd@1024+vicuna_7b",
        note="ConvNeXt-L@768's latency is not printed in any table (plot only)",
    ),
    Claim(
        "6.9x faster encoder than ViT-L/14 (CLIP, 224 px; Table 3)",
        6.9,
        (_e("Table 3", "ViT-L/14", "224"),),
        (_e("Table 3", "FastViTHD", "224"),),
        "vit_l14@224",
        "fastvithd@256",
        column="encoder_ms",
        note="FastViTHD@224 does not fit its stride 64; measured here at 256 px",
    ),
    Claim(
        "5.6x faster encoder than ViTamin-L (224 px; Table 3)",
        5.6,
        (_e("Table 3", "ViTamin-L", "224"),),
        (_e("Table 3", "FastViTHD", "224"),),
        "vitamin_large@224",
        "fastvithd@256",
        column="encoder_ms",
        note="FastViTHD measured at 256 px (224 does not fit stride 64)",
    ),
    Claim(
        "3.3x faster encoder than ConvNeXt-XXL@512, as accurate (Table 4)",
        3.3,
        (_e("Table 4", "ConvNeXt-XXL", "512"),),
        (_e("Table 10 R3", "FastViTHD", "1024"),),
        "convnext_xxlarge@512",
        "fastvithd@1024",
        column="encoder_ms",
        b_table4=(_HD_T4,),
        note="reproduces only with Table 10's 116.3 ms, not with Table 4's own 235.6 ms",
    ),
    Claim(
        "FastViT ~4x lower latency than ViT-L/14 at 576 tokens (Table 1)",
        3.7,
        (_e("Table 1", "ViT-L/14", "336"),),
        (_e("Table 1", "FastViT (MobileCLIP MCi2)", "768"),),
        "vit_l14@336",
        "fastvit@768",
        column="encoder_ms",
    ),
    Claim(
        "7.9x faster than Cambrian-1-8B",
        7.93,
        (
            *(
                _e("Table 10 R36 (Cambrian-1)", name, res)
                for name, res in (
                    ("SigLIP ViT-SO400M", "384"),
                    ("ConvNeXt-XXL", "1024"),
                    ("DINOv2 ViT-L/14", "518"),
                    ("ViT-L/14 (CLIP)", "336"),
                )
            ),
            _e("Table 10 R36 (Cambrian-1)", "4 encoders", "mixed", "LLM_prefill"),
        ),
        (_e("Table 6 R40", "FastViTHD", "1024", "TTFT"),),
        "",
        "",
        note="not measured here: Cambrian-1's four encoders and LLaMA-3-8B are not presets",
    ),
    Claim(
        "2x faster than ConvLLaVA@1024 (Vicuna-7B)",
        2.0,
        (_e("Table 6 R26", "ConvNeXt-L", "1024", "TTFT"),),
        (_e("Table 6 R27", "FastViTHD", "1024", "TTFT"),),
        "",
        "",
        note="not measured here: ConvLLaVA's 5-stage ConvNeXt is not a preset yet",
    ),
)


def _value(entry: Entry) -> float:
    frame = paper_results()
    rows = frame[
        frame["source_table_or_figure"].eq(entry.table)
        & frame["encoder"].eq(entry.encoder)
        & frame["resolution"].eq(entry.resolution)
        & frame["metric"].eq(entry.metric)
    ]
    if rows.empty:
        raise KeyError(f"no {entry.metric} of {entry.encoder}@{entry.resolution} in {entry.table}")
    return float(rows["value"].iloc[0])


def _side(entries: tuple[Entry, ...]) -> tuple[float, str] | None:
    if not entries:
        return None
    return sum(_value(e) for e in entries), " + ".join(f"{_value(e):g} ({e.table})" for e in entries)


def _verdict(value: float | None, printed: float) -> str:
    if value is None:
        return "-"
    change = value / printed - 1
    return "reproduces" if abs(change) <= TOLERANCE else f"differs by {change:+.0%}"


def claims_table(results: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per claim: printed; recomputed from the paper's tables (and with Table 4's series);
    measured on the sweep's device where ``results`` holds both points; a verdict for each."""
    measured = {}
    if results is not None and len(results) and "point" in results:
        done = results[results["state"].isin(["COMPLETE", "PRUNED"])] if "state" in results else results
        measured = {p: r for p, r in done.set_index("point").iterrows()}
    rows = []
    for c in CLAIMS:
        a, b, b4 = _side(c.a), _side(c.b), _side(c.b_table4)
        recomputed = a[0] / b[0] if a and b else None
        table4 = a[0] / b4[0] if a and b4 else None
        here = None
        if c.point_a in measured and c.point_b in measured:
            va, vb = measured[c.point_a].get(c.column), measured[c.point_b].get(c.column)
            here = float(va) / float(vb) if pd.notna(va) and pd.notna(vb) else None
        rows.append(
            {
                "claim": c.claim,
                "printed": c.printed,
                "recomputed from the paper's tables": round(recomputed, 2) if recomputed else None,
                "paper's parts": f"{a[1]} / {b[1]}" if a and b else "",
                "verdict (tables)": _verdict(recomputed, c.printed),
                "with Table 4's FastViTHD series": round(table4, 2) if table4 else None,
                "measured here": round(here, 2) if here else None,
                "points": f"{c.point_a} / {c.point_b}" if c.point_a else "",
                "verdict (here)": _verdict(here, c.printed),
                "note": c.note,
            }
        )
    return pd.DataFrame(rows)


def claim_points() -> list[str]:
    """Every point key a ``paper_claims`` sweep measures."""
    return sorted({p for c in CLAIMS for p in (c.point_a, c.point_b) if p})
