"""Tiled (AnyRes-style) inputs: a grid of encoder-resolution tiles plus one downscaled base image.

A point with ``tiling=2x2`` runs the encoder once per tile and once on the base image. By the
paper's convention (FastVLM Sec. 3.2.2, Table 10), its visual tokens are ``(tiles + 1) x tokens
per tile`` and its encoder latency ``(tiles + 1) x one-tile latency`` (sequential passes, batch
1); the LLM prefill runs over all the tokens. The released LLaVA-NeXT code also drops padding and
adds a newline token per row; that count is not modelled here (the record says
``paper convention``). Torch-free: tiling is data of a point.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastvitsearch.spec import EncoderSpec, SpecError

_GRID = re.compile(r"^([1-9][0-9]?)x([1-9][0-9]?)$")


@dataclass(frozen=True)
class Tiling:
    rows: int
    cols: int

    @property
    def passes(self) -> int:
        """Encoder passes: every tile and the base image."""
        return self.rows * self.cols + 1

    @property
    def label(self) -> str:
        return f"{self.rows}x{self.cols}+1"

    def tokens(self, spec: EncoderSpec, resolution: int) -> int:
        """Visual tokens by the paper's convention: (tiles + base) x tokens per tile."""
        return self.passes * spec.tokens(resolution)


def parse_tiling(value: Any, field: str = "tiling") -> Tiling | None:
    """``none`` / null -> no tiling; ``RxC`` (``2x2``, ``3x3``, ``1x2``) -> that grid plus a base image."""
    if value is None or (isinstance(value, str) and value.lower() == "none"):
        return None
    match = _GRID.match(str(value).strip())
    if not match:
        raise SpecError(field, f"{value!r} is not a tile grid; use none, 2x2, 3x3, … (rows x cols, plus a base image)")
    return Tiling(int(match.group(1)), int(match.group(2)))
