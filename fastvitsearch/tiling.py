"""Tiled (AnyRes-style) inputs: a grid of encoder-resolution tiles plus one downscaled base image.

A point with ``tiling=2x2`` runs the encoder once per tile and once on the base image. By the
paper's convention (FastVLM Sec. 3.2.2, Table 10), its visual tokens are ``(tiles + 1) x tokens
per tile`` and its encoder latency ``(tiles + 1) x one-tile latency`` (sequential passes, batch
1); the LLM prefill runs over those tokens. The released code counts differently, and a point
that names its scheme records that count too (:meth:`Tiling.released_tokens`):

- ``llava_next`` (LLaVA-NeXT's ``spatial_unpad``): the tiles' feature maps are stitched, the
  padding removed, and one newline token added per row of the stitched map; the base image's
  tokens follow. 2x2 tiles of 336 px with ViT-L/14: 48 x 48 + 48 + 576 = 2928 tokens (paper: 2880).
- ``anyres_max_N`` (LLaVA-OneVision): the same, and a stitched map larger than ``N`` tiles' worth
  (by more than 10 %) is bilinearly shrunk to about ``N`` tiles' worth before the newlines.

Both counts are for an image of the grid's aspect ratio (no padding to remove); they equal
transformers' ``LlavaNextProcessor`` / ``LlavaOnevisionProcessor`` counts for such an image (tested).
Torch-free: tiling is data of a point.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from fastvitsearch.spec import EncoderSpec, SpecError

_GRID = r"([1-9][0-9]?)x([1-9][0-9]?)"
_VALUE = re.compile(rf"^(?:(llava_next|anyres_max_[1-9][0-9]?)(?::{_GRID})?|{_GRID})$")
#: grid a scheme gets when the value names no grid: LLaVA-NeXT's largest square pinpoint (672 px =
#: 2x2 of 336), the 3x3 of the paper's LLaVA-OneVision row (Table 10 R2: 10 passes, 7290 tokens)
DEFAULT_GRIDS = {"llava_next": (2, 2), "anyres_max": (3, 3)}
#: LLaVA-OneVision shrinks the stitched map only when it exceeds the cap by more than this ratio
ANYRES_SLACK = 1.1


@dataclass(frozen=True)
class Tiling:
    rows: int
    cols: int
    #: grid (the paper's convention only) | llava_next | anyres_max
    scheme: str = "grid"
    #: anyres_max_N's N: the stitched map's cap in tiles
    max_tiles: int | None = None

    @property
    def passes(self) -> int:
        """Encoder passes: every tile and the base image."""
        return self.rows * self.cols + 1

    @property
    def label(self) -> str:
        grid = f"{self.rows}x{self.cols}+1"
        if self.scheme == "grid":
            return grid
        return f"{self.scheme}{f'_{self.max_tiles}' if self.max_tiles else ''}:{grid}"

    def tokens(self, spec: EncoderSpec, resolution: int) -> int:
        """Visual tokens by the paper's convention: (tiles + base) x tokens per tile."""
        return self.passes * spec.tokens(resolution)

    def released_tokens(self, spec: EncoderSpec, resolution: int) -> int | None:
        """Visual tokens as the scheme's released code counts them (None for a plain grid): the
        stitched, unpadded map (capped for anyres_max), one newline per row, the base image's tokens."""
        if self.scheme == "grid":
            return None
        per_tile = spec.tokens(resolution)
        side = math.isqrt(per_tile)
        if side * side != per_tile:
            raise SpecError("tiling", f"{self.scheme} stitches square token maps; {spec.name} gives {per_tile} tokens")
        height, width = self.rows * side, self.cols * side
        stitched, newlines = height * width, height
        if self.scheme == "anyres_max":
            ratio = math.sqrt(height * width / (self.max_tiles * per_tile))
            if ratio > ANYRES_SLACK:
                stitched, newlines = int(height // ratio) * int(width // ratio), int(height // ratio)
        return stitched + newlines + per_tile


def parse_tiling(value: Any, field: str = "tiling") -> Tiling | None:
    """``none`` / null -> no tiling; ``RxC`` (``2x2``, ``3x3``, ``1x2``) -> that grid plus a base
    image; ``llava_next`` / ``anyres_max_9`` (optionally ``:RxC``) -> a released scheme's grid."""
    if value is None or (isinstance(value, str) and value.lower() == "none"):
        return None
    match = _VALUE.match(str(value).strip())
    if not match:
        raise SpecError(
            field,
            f"{value!r} is not a tile grid; use none, 2x2, 3x3, … (rows x cols, plus a base image), "
            "llava_next, anyres_max_9 or <scheme>:RxC",
        )
    scheme, rows, cols, grid_rows, grid_cols = match.groups()
    if scheme is None:
        return Tiling(int(grid_rows), int(grid_cols))
    name, max_tiles = ("anyres_max", int(scheme.removeprefix("anyres_max_"))) if "max" in scheme else (scheme, None)
    rows, cols = (int(rows), int(cols)) if rows else DEFAULT_GRIDS[name]
    return Tiling(rows, cols, name, max_tiles)
