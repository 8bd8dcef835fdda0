"""The only reader of the FastVLM paper's published numbers (package data).

``data/fastvlm_paper_results.csv`` is transcribed from arXiv 2412.13303 (v2 and CVPR 2025), one
number per row with its table and row. It is published data: every value read from it is
labelled ``published:<table>`` and never presented as our own measurement.

Everything that knows the paper lives here: its names for our presets and LLMs, which rows are
single-image points (AnyRes / tiled rows are not), which table wins when a number is printed
twice, the training recipes, and the M1 Max latency components. Torch-free, so the report can
use it.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from importlib.resources import files

import pandas as pd

from fastvitsearch.presets import get_preset, get_spec
from fastvitsearch.spec import EncoderSpec, SpecError

CITATION = "Vasu et al., FastVLM: Efficient Vision Encoding for Vision Language Models, CVPR 2025 (arXiv 2412.13303)"
#: the CSV's encoder names for each of our presets
ENCODER_NAMES = {
    "fastvithd": ("FastViTHD",),
    "fastvit": ("FastViT (MobileCLIP MCi2)",),
    "vit_l14": ("ViT-L/14 (CLIP)", "ViT-L/14"),
    "siglip_so400m": ("SigLIP ViT-SO400M",),
    "vitamin_large": ("ViTamin-L",),
    # "ConvNeXt-L" names two encoders: ConvLLaVA's 5-stage one (its rows' model is ConvLLaVA) and
    # the 4-stage CLIP ConvNeXt-L (Tables 3 and 4); ENCODER_MODELS tells them apart
    "convllava": ("ConvNeXt-L",),
    "convnext_large": ("ConvNeXt-L",),
    "convnext_xxlarge": ("ConvNeXt-XXL",),
}
#: presets whose rows are only those of one model (the CSV's ``model`` column)
ENCODER_MODELS = {"convllava": "ConvLLaVA"}
#: the CSV's LLM names for each of our LLM presets
LLM_NAMES = {"qwen2_0_5b": "Qwen2-0.5B", "qwen2_1_5b": "Qwen2-1.5B", "qwen2_7b": "Qwen2-7B", "vicuna_7b": "Vicuna-7B"}
#: M1 Max latency series, in order of preference. Table 4 is left out: its FastViTHD latencies are
#: a second series, ~2x Table 10's, and every Table 6 TTFT is built from Table 10.
LATENCY_TABLES = ("Table 10", "Table 1", "Table 12", "Table 3")
#: accuracy tables in order of preference when one recipe has the same point in several tables
ACCURACY_TABLES = ("Table 6", "Table 1", "Table 4", "Table 5", "Table 11", "Table 7", "Table 2")
_LLAVA15 = re.compile(r"^LLaVA-1\.5 2-stage \(558K PT \+ 665K IT\)$|PT\+IT = 0\.5\+0\.6$")
_PT_IT = re.compile(r"PT\+IT = ([0-9.]+\+[0-9.]+)")
_TILED = re.compile(r"AnyRes|dynamic resolution|tile \d|total visual tokens", re.IGNORECASE)


@functools.cache
def paper_results() -> pd.DataFrame:
    """All transcribed rows; ``value`` numeric, ``resolution_px`` numeric where it is one number,
    ``tiled`` True for AnyRes / dynamic-resolution rows and rows whose tokens are a multi-pass total
    (several passes, not one image)."""
    path = files("fastvitsearch") / "data" / "fastvlm_paper_results.csv"
    with path.open() as handle:
        frame = pd.read_csv(handle, dtype=str, keep_default_na=False)
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    frame["resolution_px"] = pd.to_numeric(frame["resolution"], errors="coerce")
    frame["tiled"] = (frame["training"] + " " + frame["note"]).str.contains(_TILED)
    return frame


def table_rank(table: str, order: tuple[str, ...]) -> int:
    """Position of ``table`` (``Table 10 R3`` counts as ``Table 10``) in ``order``; last if absent."""
    return next((i for i, t in enumerate(order) if table == t or table.startswith(t + " ")), len(order))


def training_tag(training: str) -> str | None:
    """``llava15`` for the LLaVA-1.5 recipe, else the printed ``PT+IT`` data sizes (``15+1.1``);
    None for rows that are not a single-image recipe (AnyRes, encoder finetuned)."""
    if _LLAVA15.search(training):
        return "llava15"
    if "AnyRes" in training or "encoder finetuned" in training:
        return None
    match = _PT_IT.search(training)
    return match.group(1) if match else None


@functools.cache
def _preset_by_hash() -> dict[str, str]:
    return {get_spec(p).content_hash: p for p in ENCODER_NAMES}


def paper_encoder(spec: EncoderSpec) -> str | None:
    """Which of the paper's encoders this spec is (by architecture, not by name), or None."""
    return _preset_by_hash().get(spec.content_hash)


def paper_family(spec: EncoderSpec) -> str:
    """The paper encoder's family name (``FastViTHD`` …), ``custom`` for any other architecture."""
    preset = paper_encoder(spec)
    return get_preset(preset).family if preset else "custom"


def single_image_rows(metric: str) -> pd.DataFrame:
    """Rows of ``metric`` for our presets' single-image points at a resolution the spec accepts,
    with ``preset``, ``llm_preset`` (None for other LLMs) and ``tokens`` columns added."""
    frame = paper_results()
    frame = frame[(frame["metric"] == metric) & ~frame["tiled"] & frame["resolution_px"].notna()]
    llm_of = {v: k for k, v in LLM_NAMES.items()}
    frame = frame.assign(preset=[preset_of(e, m) for e, m in zip(frame["encoder"], frame["model"], strict=True)])
    frame = frame[frame["preset"].notna()].copy()
    frame["llm_preset"] = frame["llm"].map(llm_of)
    tokens = [_tokens_or_none(p, r) for p, r in zip(frame["preset"], frame["resolution_px"], strict=True)]
    frame = frame.assign(tokens=tokens)
    frame = frame[frame["tokens"].notna()].copy()  # a resolution the spec cannot take (224 at stride 64)
    frame["resolution_px"] = frame["resolution_px"].astype(int)
    frame["tokens"] = frame["tokens"].astype(int)
    return frame


def preset_of(encoder: str, model: str) -> str | None:
    """Our preset for a row's encoder name and model: a model-bound preset (ConvLLaVA) takes its
    model's rows, the others every other row with their name."""
    for preset, names in ENCODER_NAMES.items():
        bound = ENCODER_MODELS.get(preset)
        if encoder in names and (bound == model if bound else model not in ENCODER_MODELS.values()):
            return preset
    return None


def _tokens_or_none(preset: str, resolution: float) -> int | None:
    try:
        return get_spec(preset).tokens(int(resolution)) if resolution == int(resolution) else None
    except SpecError:
        return None


@functools.cache
def encoder_latencies() -> dict[tuple[str, int], tuple[float, str]]:
    """M1 Max encoder latency: (preset, resolution) -> (ms, table), from the preferred series."""
    points: dict[tuple[str, int], tuple[float, str, int]] = {}
    for row in single_image_rows("encoder_latency").itertuples():
        rank = table_rank(row.source_table_or_figure, LATENCY_TABLES)
        key = (row.preset, row.resolution_px)
        if rank < len(LATENCY_TABLES) and (key not in points or rank < points[key][2]):
            points[key] = (float(row.value), row.source_table_or_figure, rank)
    return {k: (v, t) for k, (v, t, _) in points.items()}


@functools.cache
def tiled_encoder_latencies() -> dict[tuple[str, int, int, int], tuple[float, str]]:
    """M1 Max encoder latency of the paper's tiled rows: (preset, tile resolution, rows, cols) ->
    (ms, table). The grid is the one whose (tiles + 1) x tokens-per-tile equals the row's printed
    token count (LLaVA-OneVision's SigLIP at 1152 px, 7290 tokens: 3x3 tiles of 384; FastViTHD at
    2048 px, 1280 tokens: 2x2 of 1024). Rows of one encoder among two (MiniGemini-HD) are left out."""
    frame = paper_results()
    keys = ["model", "encoder", "resolution", "llm", "training", "source_table_or_figure"]
    printed = frame[frame["metric"] == "visual_tokens"].set_index(keys)["value"].to_dict()
    preset_of = {name: preset for preset, names in ENCODER_NAMES.items() for name in names}
    rows = frame[
        (frame["metric"] == "encoder_latency")
        & frame["tiled"]
        & frame["encoder"].isin(preset_of)
        & frame["resolution_px"].notna()
        & ~frame["note"].str.contains("one of two encoders")
    ]
    found: dict[tuple[str, int, int, int], tuple[float, str]] = {}
    for row in rows.itertuples():
        tokens = printed.get(tuple(getattr(row, k) for k in keys))
        preset = preset_of[row.encoder]
        for n in range(1, 7):
            tile = int(row.resolution_px) // n
            if tile * n != int(row.resolution_px) or tokens is None:
                continue
            if _tokens_or_none(preset, tile) is not None and (n * n + 1) * _tokens_or_none(preset, tile) == tokens:
                found.setdefault((preset, tile, n, n), (float(row.value), row.source_table_or_figure))
    return found


@functools.cache
def prefills() -> dict[tuple[str, int], tuple[float, str]]:
    """M1 Max LLM prefill: (LLM preset, visual tokens) -> (ms, tables).

    Rows of our encoders and LLMs count, tiled ones included, at the token count printed in the
    same table row (an AnyRes FastViTHD@2048 row is a 1280-token prefill, never a 1024-token one;
    LLaVA-OneVision's SigLIP 3x3+1 row is a 7290-token one); a row without a printed count takes
    the spec's.
    Rows that disagree are resolved by majority (Vicuna-7B @576: 1170.0 in R26-28, not R12's 332.1).
    """
    frame = paper_results()
    keys = ["model", "encoder", "resolution", "llm", "training", "source_table_or_figure"]
    printed = frame[frame["metric"] == "visual_tokens"].set_index(keys)["value"].to_dict()
    single = {
        (r.source_table_or_figure, r.llm, r.resolution): r.tokens for r in single_image_rows("LLM_prefill").itertuples()
    }
    llm_of = {v: k for k, v in LLM_NAMES.items()}
    values: dict[tuple[str, int], list[tuple[float, str]]] = {}
    ours = frame["encoder"].isin([name for names in ENCODER_NAMES.values() for name in names])
    for row in frame[(frame["metric"] == "LLM_prefill") & frame["llm"].isin(llm_of) & ours].itertuples():
        tokens = printed.get(tuple(getattr(row, k) for k in keys))
        if tokens is None or tokens != tokens:
            tokens = single.get((row.source_table_or_figure, row.llm, row.resolution))
        if tokens is None:
            continue  # neither printed nor derivable: not used
        values.setdefault((llm_of[row.llm], int(tokens)), []).append((float(row.value), row.source_table_or_figure))
    chosen = {}
    for key, entries in values.items():
        value, _ = Counter(v for v, _ in entries).most_common(1)[0]
        chosen[key] = (value, ", ".join(sorted({t for v, t in entries if v == value})))
    return chosen


def accuracy_rows(metric: str) -> pd.DataFrame:
    """Single-image accuracy rows of our presets and LLMs, with their training ``recipe`` tag and
    table ``rank``; rows printed only in the CVPR version lose to arXiv v2 and are dropped."""
    frame = single_image_rows(metric)
    frame = frame[(frame["source_version"] != "CVPR only") & frame["llm_preset"].notna()].copy()
    frame["recipe"] = frame["training"].map(training_tag)
    frame["rank"] = frame["source_table_or_figure"].map(lambda t: table_rank(t, ACCURACY_TABLES))
    return frame[frame["recipe"].notna()]


def metrics() -> set[str]:
    """Every metric name the paper's table uses (TextVQA, DocVQA, …)."""
    return set(paper_results()["metric"])


#: the one setting where the paper publishes several encoders and resolutions side by side
#: (Sec. 3: LLaVA-1.5 data and recipe, Vicuna-7B): what the accuracy proxy is validated against
VALIDATION_SETTING = {"llm_preset": "vicuna_7b", "recipe": "llava15"}


def validation_points(metric: str = "TextVQA") -> pd.DataFrame:
    """One published value per (encoder preset, resolution) in :data:`VALIDATION_SETTING`:
    ``preset, resolution, value, table`` (the first table of :data:`ACCURACY_TABLES` wins; Table
    2's multi-scale feature variants are other architectures and are left out)."""
    rows = accuracy_rows(metric)
    rows = rows[~rows["note"].str.startswith("multi-scale")]
    for column, value in VALIDATION_SETTING.items():
        rows = rows[rows[column] == value]
    rows = rows.assign(order=rows["source_table_or_figure"].map(lambda t: table_rank(t, ACCURACY_TABLES)))
    rows = rows.sort_values("order").drop_duplicates(["preset", "resolution_px"])
    out = pd.DataFrame(
        {
            "preset": rows["preset"],
            "resolution": rows["resolution_px"].astype(int),
            "value": rows["value"].astype(float),
            "table": rows["source_table_or_figure"],
        }
    )
    return out.sort_values(["preset", "resolution"]).reset_index(drop=True)
