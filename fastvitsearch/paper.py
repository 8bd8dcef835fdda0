"""The FastVLM paper's published numbers (package data), looked up by our presets' names.

``data/fastvlm_paper_results.csv`` is transcribed from arXiv 2412.13303 (v2 and CVPR 2025), one
number per row with its table. It is published data: every value read from it is labelled
``published:<table>`` and never presented as our own measurement.
"""

from __future__ import annotations

import functools
from importlib.resources import files

import pandas as pd

#: the CSV's encoder names for each of our presets
ENCODER_NAMES = {
    "fastvithd": ("FastViTHD",),
    "fastvit": ("FastViT (MobileCLIP MCi2)",),
    "vit_l14": ("ViT-L/14 (CLIP)", "ViT-L/14"),
}
CITATION = "Vasu et al., FastVLM: Efficient Vision Encoding for Vision Language Models, CVPR 2025 (arXiv 2412.13303)"


@functools.cache
def paper_results() -> pd.DataFrame:
    """All transcribed rows; ``value`` numeric, ``resolution`` numeric where it is one number."""
    path = files("fastvitsearch") / "data" / "fastvlm_paper_results.csv"
    with path.open() as handle:
        frame = pd.read_csv(handle, dtype=str, keep_default_na=False)
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    frame["resolution_px"] = pd.to_numeric(frame["resolution"], errors="coerce")
    return frame


def rows_for(preset: str, metric: str) -> pd.DataFrame:
    """Rows of one metric for one of our presets (by the paper's names for it)."""
    frame = paper_results()
    names = ENCODER_NAMES.get(preset, ())
    return frame[frame["encoder"].isin(names) & (frame["metric"] == metric)]
