"""Blending glyph masks into a proxy page: all at once where they cannot interact, else in order.

Why: a page seen at 256 px holds ~500 glyphs, and blending them one by one in Python was half of
the time a proxy training step waits for its windows to be drawn (8 of 17 ms a window, cProfile on
the 2-core AMX Xeon, 2026-12-07; benchmarks/proxy_drawing.py has the before/after per resolution).
Glyphs whose boxes share no pixel can be blended in one vectorized step with the very same
float32 arithmetic, so the pages (the proxy's validated task) stay bit-identical; where boxes
overlap, the order of blending matters and they are blended one by one.
"""

from __future__ import annotations

import numpy as np


def blend_glyphs(pixels: np.ndarray, masks: list[np.ndarray], xs: np.ndarray, ys: np.ndarray, inks: np.ndarray) -> None:
    """Blend every ``masks[i]`` (coverage in [0, 1]) at ``(xs[i], ys[i])`` with grey level
    ``inks[i]`` into ``pixels`` (float32, C-contiguous), in place, clipped to the image:
    ``p <- p + alpha * (ink - p)``, with the result of blending them in list order."""
    if not masks:
        return
    heights, widths = np.array([m.shape for m in masks], dtype=np.int64).T
    areas = heights * widths
    glyph = np.repeat(np.arange(len(masks)), areas)  # which glyph each box pixel belongs to
    offset = np.arange(int(areas.sum())) - np.repeat(np.cumsum(areas) - areas, areas)
    rows = ys[glyph] + offset // widths[glyph]
    cols = xs[glyph] + offset % widths[glyph]
    height, width = pixels.shape
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    flat = (rows * width + cols)[inside]
    if flat.size and np.bincount(flat, minlength=pixels.size).max() > 1:
        blend_in_order(pixels, masks, xs, ys, inks)  # boxes overlap: the order matters
        return
    alpha = np.concatenate([m.ravel() for m in masks])[inside]
    ink = inks.astype(np.float32)[glyph][inside]
    view = pixels.reshape(-1)
    target = view[flat]
    view[flat] = target + alpha * (ink - target)


def blend_in_order(
    pixels: np.ndarray, masks: list[np.ndarray], xs: np.ndarray, ys: np.ndarray, inks: np.ndarray
) -> None:
    """:func:`blend_glyphs` one glyph after the other (the reference it must equal)."""
    height, width = pixels.shape
    for mask, x, y, ink in zip(masks, xs.tolist(), ys.tolist(), inks.tolist(), strict=True):
        h, w = mask.shape
        ya, yb, xa, xb = max(0, y), min(height, y + h), max(0, x), min(width, x + w)
        if ya >= yb or xa >= xb:
            continue
        alpha = mask[ya - y : yb - y, xa - x : xb - x]
        target = pixels[ya:yb, xa:xb]
        pixels[ya:yb, xa:xb] = target + alpha * (float(ink) - target)
