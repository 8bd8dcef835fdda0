"""Accuracy ``proxy``: a real, small training run on what FastVLM is about — reading small text
in a high-resolution image — for any encoder spec at any resolution, on this CPU.

Task. A page of ``canvas`` px holds a ``grid x grid`` table of digits rendered with Pillow's
bundled font at several sizes (some small), on a cluttered background (lines, boxes, noise). The
page is resized to the trial's resolution; the target is the digit in every cell. Pages are
generated on the fly from the seed; the held-out pages come from a disjoint seed range.

Model. A scaled-down copy of the spec (same stages, mixers and strides; widths x
``width_scale``, rounded to the attention head dim where needed; depths x ``depth_scale``,
at least 1) built with the same builder, then LLaVA's projector shape (Linear, GELU, Linear to
``hidden``), then a light linear read-out on every visual token. Tokens are aligned to the
digit grid: a token grid finer than the digit grid is average-pooled to it; a coarser one
predicts ``k x k`` cells per token (so too few tokens means too little capacity per cell — the
effect the paper reports). Per-token supervision is what makes this learnable in minutes;
whole-image read-outs stay at chance.

Output: held-out accuracy (overall and per font size) with a Wilson 95 % interval, cached by
(spec hash, resolution, proxy config, seed).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import nn

from fastvitsearch.build import build_encoder
from fastvitsearch.cache import MeasurementCache
from fastvitsearch.llm import LLMSpec
from fastvitsearch.record import Refusal, Sourced
from fastvitsearch.spec import EncoderSpec, SpecError
from fastvitsearch.torch_threads import fixed_threads

EVAL_SEED_OFFSET = 1_000_000
#: what the proxy scores (the record's accuracy_metric)
METRIC = "proxy-glyph-reading"


@dataclass(frozen=True)
class ProxyConfig:
    canvas: int = 512
    grid: int = 8
    font_sizes: tuple[int, ...] = (10, 14, 20)
    clutter: bool = True
    steps: int = 300
    seconds: float | None = None  # stop early after this much training time
    batch: int = 8
    lr: float = 2e-3
    width_scale: float = 0.125
    depth_scale: float = 0.25
    hidden: int = 64
    eval_pages: int = 48
    threads: int = 1

    def __post_init__(self) -> None:
        if self.canvas % self.grid:
            raise SpecError("accuracy.proxy.canvas", f"{self.canvas} is not a multiple of grid={self.grid}")
        if self.steps < 1 or self.batch < 1 or self.eval_pages < 1:
            raise SpecError("accuracy.proxy.steps", "steps, batch and eval_pages must be >= 1")


def render_page(rng: np.random.Generator, config: ProxyConfig) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """One page: the image, the digit in each cell, and each cell's font-size index."""
    size = config.canvas
    background = rng.integers(170, 256)
    image = Image.new("L", (size, size), int(background))
    draw = ImageDraw.Draw(image)
    if config.clutter:
        for _ in range(int(rng.integers(20, 40))):
            x0, y0, x1, y1 = (int(v) for v in rng.integers(0, size, 4))
            shade = int(rng.integers(110, 230))
            if rng.random() < 0.5:
                draw.line((x0, y0, x1, y1), fill=shade, width=int(rng.integers(1, 3)))
            else:
                draw.rectangle((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), outline=shade)
    cell = size // config.grid
    digits = rng.integers(0, 10, (config.grid, config.grid))
    sizes = rng.integers(0, len(config.font_sizes), (config.grid, config.grid))
    for row in range(config.grid):
        for col in range(config.grid):
            font = ImageFont.load_default(size=config.font_sizes[sizes[row, col]])
            text = str(digits[row, col])
            left, top, right, bottom = font.getbbox(text)
            slack_x, slack_y = max(0, cell - (right - left)), max(0, cell - (bottom - top))
            x = col * cell + int(rng.integers(0, slack_x + 1)) - left
            y = row * cell + int(rng.integers(0, slack_y + 1)) - top
            draw.text((x, y), text, fill=int(rng.integers(0, 70)), font=font)
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    pixels = np.clip(pixels + rng.normal(0, 0.03, pixels.shape).astype(np.float32), 0, 1)
    return Image.fromarray((pixels * 255).astype(np.uint8)), digits, sizes


def batch(seed: int, count: int, resolution: int, config: ProxyConfig) -> tuple[torch.Tensor, ...]:
    """``count`` pages from ``seed``: images [B,3,res,res] in [0,1], digits and size indices."""
    rng = np.random.default_rng(seed)
    images, digits, sizes = [], [], []
    for _ in range(count):
        page, d, s = render_page(rng, config)
        if resolution != config.canvas:
            page = page.resize((resolution, resolution), Image.Resampling.BILINEAR)
        images.append(torch.from_numpy(np.asarray(page, dtype=np.float32) / 255.0))
        digits.append(torch.from_numpy(d))
        sizes.append(torch.from_numpy(s))
    x = torch.stack(images)[:, None].expand(-1, 3, -1, -1).contiguous()
    return x, torch.stack(digits).long(), torch.stack(sizes).long()


class ProxyModel(nn.Module):
    """Encoder -> mlp2x_gelu projector -> per-token read-out aligned to the digit grid."""

    def __init__(self, spec: EncoderSpec, resolution: int, config: ProxyConfig) -> None:
        super().__init__()
        self.encoder = build_encoder(spec, resolution)
        self.token_grid = spec.grid(resolution)
        self.cells_per_token = max(1, math.ceil(config.grid / self.token_grid))
        self.grid = config.grid
        self.projector = nn.Sequential(
            nn.Linear(spec.feature_width, config.hidden), nn.GELU(), nn.Linear(config.hidden, config.hidden)
        )
        self.readout = nn.Linear(config.hidden, 10 * self.cells_per_token**2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.projector(self.encoder.features(images))
        b, g, k = images.shape[0], self.token_grid, self.cells_per_token
        logits = self.readout(tokens).view(b, g, g, 10, k, k)
        logits = logits.permute(0, 3, 1, 4, 2, 5).reshape(b, 10, g * k, g * k)  # [B, 10, gk, gk]
        if g * k != self.grid:
            logits = F.adaptive_avg_pool2d(logits, self.grid)
        return logits  # [B, 10, grid, grid]


def wilson_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    if total == 0:
        return (0.0, 0.0)
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (max(0.0, centre - half), min(1.0, centre + half))


def train_and_evaluate(spec: EncoderSpec, resolution: int, config: ProxyConfig, seed: int = 0) -> dict[str, Any]:
    """Train the proxy model from scratch and score it on the fixed held-out pages."""
    spec.tokens(resolution)
    small = spec.scaled(config.width_scale, config.depth_scale)
    with fixed_threads(config.threads):
        torch.manual_seed(seed)
        model = ProxyModel(small, resolution, config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=config.steps)
        start, steps_done = time.perf_counter(), 0
        model.train()
        for step in range(config.steps):
            images, digits, _ = batch(seed * 100_003 + step, config.batch, resolution, config)
            loss = F.cross_entropy(model(images), digits)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            steps_done += 1
            if config.seconds is not None and time.perf_counter() - start > config.seconds:
                break
        train_seconds = time.perf_counter() - start
        model.eval()
        correct = torch.zeros(len(config.font_sizes))
        total = torch.zeros(len(config.font_sizes))
        with torch.inference_mode():
            for i in range(0, config.eval_pages, config.batch):
                n = min(config.batch, config.eval_pages - i)
                images, digits, sizes = batch(EVAL_SEED_OFFSET + i, n, resolution, config)
                hits = (model(images).argmax(1) == digits).float()
                for s in range(len(config.font_sizes)):
                    mask = sizes == s
                    correct[s] += hits[mask].sum()
                    total[s] += mask.sum()
    right, count = int(correct.sum()), int(total.sum())
    low, high = wilson_interval(right, count)
    return {
        "accuracy": 100.0 * right / count,
        "ci95": [100.0 * low, 100.0 * high],
        "by_font_size": {
            str(size): 100.0 * float(correct[i] / total[i]) if total[i] else None
            for i, size in enumerate(config.font_sizes)
        },
        "cells": count,
        "chance": 10.0,
        "steps": steps_done,
        "train_seconds": round(train_seconds, 1),
        "proxy_params": sum(p.numel() for p in model.parameters()),
        "proxy_spec": small.to_dict(),
    }


class ProxyAccuracy:
    """The sweep-facing source: one cached proxy run per (spec, resolution); the LLM is ignored
    (the proxy reads with a fixed light head), so its value is the same for every LLM."""

    name = "proxy"

    def __init__(self, seed: int = 0, cache_dir: str | None = None, **config: Any) -> None:
        if "font_sizes" in config:
            config["font_sizes"] = tuple(config["font_sizes"])
        self.config = ProxyConfig(**config)
        self.seed = seed
        self.cache = MeasurementCache(cache_dir)

    def run(self, spec: EncoderSpec, resolution: int) -> dict[str, Any]:
        key = {
            "kind": "proxy",
            "spec_hash": spec.content_hash,
            "resolution": resolution,
            "config": dataclasses.asdict(self.config),
            "seed": self.seed,
        }
        if (hit := self.cache.get(key)) is not None:
            return hit
        result = train_and_evaluate(spec, resolution, self.config, self.seed)
        self.cache.put(key, result)
        return result

    def diagnostics(self) -> list[str]:
        return []

    def lookup(self, encoder: EncoderSpec, resolution: int, llm: LLMSpec, metric: str) -> Sourced | Refusal:
        if metric != METRIC:
            return Refusal(self.name, f"the proxy scores {METRIC}, not {metric}")
        result = self.run(encoder, resolution)
        low, high = result["ci95"]
        error = (high - low) / 2 / max(result["accuracy"], 1e-9)
        detail = {k: result[k] for k in ("ci95", "by_font_size", "steps", "train_seconds", "proxy_params", "cells")}
        return Sourced(
            round(result["accuracy"], 2),
            "proxy",
            f"glyph-grid[{self.config.grid}x{self.config.grid},seed={self.seed}]",
            round(error, 4),
            detail,
        )
