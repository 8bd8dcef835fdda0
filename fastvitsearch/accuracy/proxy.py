"""Accuracy ``proxy``: a real, small training run on what FastVLM is about — reading small text
on a high-resolution page — for any encoder spec at any resolution, on this CPU.

Task. A page is a ``canvas``-px document: a grid of ``cell``-px cells, each holding one digit
rendered with Pillow's bundled font at one of several sizes (most of them small), on a cluttered
background (rules, boxes, noise). The page is seen at the trial's resolution, so a 10-px digit
on a 1024-px page is 2.5 px at 256 px input and unreadable: resolution matters exactly as in
TextVQA. Pages come from the seed; held-out pages from a disjoint seed range.

Matched compute. Every training and evaluation step sees a ``window``-px crop of the page at the
trial's resolution (the whole page when the resolution is smaller), so every candidate costs the
same per step whatever its resolution, and tokens per glyph are those of the full image. Every
window is supervised on the same number of cells (``cells_per_window``).

Model. A scaled-down copy of the spec (same stages, mixers and strides; widths x
``width_scale``, depths x ``depth_scale``) from the same builder, then LLaVA's projector shape
(Linear, GELU, Linear to ``hidden``), then a read-out that asks, for each cell, the visual token
covering the cell's centre and where in that token the cell lies (a learned offset embedding),
and answers its digit with a small MLP — the way an LLM reads a position out of the visual
tokens. Too few tokens means several cells must share one token's ``hidden`` numbers: the
capacity effect the paper reports for stride-64 encoders at low resolution.

Output: held-out accuracy (overall and per font size) with a Wilson 95 % interval, cached by
(spec hash, resolution, proxy config, seed).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import nn

from fastvitsearch.accuracy.calibration import NOT_PART_OF_THE_TASK
from fastvitsearch.accuracy.channels_last import CHANNELS_LAST_KINDS, to_channels_last
from fastvitsearch.accuracy.stamping import blend_glyphs
from fastvitsearch.build import build_encoder
from fastvitsearch.cache import MeasurementCache
from fastvitsearch.llm import LLMSpec
from fastvitsearch.record import Refusal, Sourced
from fastvitsearch.spec import EncoderSpec, SpecError
from fastvitsearch.torch_threads import fixed_threads

EVAL_SEED_OFFSET = 1_000_000
#: what the proxy scores (the record's accuracy_metric)
METRIC = "proxy-glyph-reading"
#: bump when the task or the model changes, so cached runs of an older proxy are not reused
PROXY_VERSION = 2
#: grey-level statistics of the pages, to normalize the input (the mean background is light)
PAGE_MEAN, PAGE_STD = 0.75, 0.25
#: pages are drawn at this many times the input resolution (at most canvas size), then reduced
SUPERSAMPLE = 2.0
#: ``device`` value that picks the GPU when torch sees one, else the CPU
AUTO_DEVICE = "auto"


@dataclass(frozen=True)
class ProxyConfig:
    """The proxy's settings; every field is validated with the config key it came from."""

    canvas: int = 1024
    cell: int = 32
    font_sizes: tuple[int, ...] = (8, 12, 18, 27)
    occupancy: float = 0.5
    clutter: bool = True
    window: int = 256
    cells_per_window: int = 32
    #: 600 steps of 32 windows: the validated setting (benchmarks/results/proxy_validity, attempt
    #: v3-batch32, tau 0.71); with 200 steps of 8 the scaled FastViTHD never left chance
    steps: int = 600
    batch: int = 32
    lr: float = 3e-3
    width_scale: float = 0.125
    depth_scale: float = 0.25
    hidden: int = 128
    eval_windows: int = 64
    threads: int = 1
    #: torch device to train on; ``auto`` (the configs' default): the GPU when torch sees one (~1.5 min
    #: a design alone on an H200 instead of 10-17 on a 2-core CPU), else the CPU. Not part of the task
    device: str = "cpu"
    #: processes drawing the pages ahead of training (a GPU run waits on one core drawing 32
    #: windows a step: 78 s of a 78-s run on an H200); 0 draws in the training process, which
    #: is right on a CPU whose cores train. Not part of the task: every step sees the same windows.
    loader_workers: int = 0

    def __post_init__(self) -> None:
        for field in ("canvas", "cell", "window", "cells_per_window", "steps", "batch", "hidden", "eval_windows"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(f"accuracy.proxy.{field}", f"must be a positive integer, got {value!r}")
        if self.canvas % self.cell:
            raise SpecError("accuracy.proxy.cell", f"{self.cell} px does not divide canvas={self.canvas}")
        if not self.font_sizes or any(not 4 <= s <= self.cell for s in self.font_sizes):
            raise SpecError(
                "accuracy.proxy.font_sizes", f"must be sizes in [4, cell={self.cell}] px, got {self.font_sizes}"
            )
        if not 0 < self.occupancy <= 1:
            raise SpecError("accuracy.proxy.occupancy", f"must be in (0, 1], got {self.occupancy!r}")
        for field in ("lr", "width_scale", "depth_scale"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise SpecError(f"accuracy.proxy.{field}", f"must be a positive number, got {value!r}")
        if self.threads < 1:
            raise SpecError("accuracy.proxy.threads", f"must be >= 1, got {self.threads!r}")
        if isinstance(self.loader_workers, bool) or not isinstance(self.loader_workers, int) or self.loader_workers < 0:
            raise SpecError("accuracy.proxy.loader_workers", f"must be an integer >= 0, got {self.loader_workers!r}")
        if self.device == AUTO_DEVICE:  # resolved once, so the run's record names the real device
            object.__setattr__(self, "device", "cuda" if torch.cuda.is_available() else "cpu")
        _check_device(self.device)

    @property
    def grid(self) -> int:
        return self.canvas // self.cell


def _check_device(device: str) -> None:
    """Refuse a torch device this machine cannot train on, before any run starts (the device is not
    part of the task, so ``device=cpu`` reuses every cached run of another device)."""
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as err:
        raise SpecError("accuracy.proxy.device", f"{device!r} is not a torch device ({err})") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(kind, True):
        raise SpecError(
            "accuracy.proxy.device",
            f"{device!r}: this machine has no {kind} device; set it to cpu (cached runs of any device are reused)",
        )


@functools.lru_cache(maxsize=256)
def _glyph(digit: int, size: int) -> np.ndarray:
    """The digit's coverage mask (float32 in [0, 1]) at ``size`` px with Pillow's bundled font,
    cropped to its box: stamped with numpy, ~20x faster than drawing every cell with Pillow."""
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = font.getbbox(str(digit))
    mask = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(mask).text((-left, -top), str(digit), fill=255, font=font)
    return np.asarray(mask, dtype=np.float32) / 255.0


@dataclass(frozen=True)
class Page:
    """One page's content, fixed by its seed: digits, font-size indices, glyph offsets, clutter."""

    digits: np.ndarray  # [grid, grid]
    sizes: np.ndarray  # [grid, grid] index into font_sizes
    jitter: np.ndarray  # [grid, grid, 2] in [0, 1): where the glyph sits in its cell's slack
    clutter: list[tuple[int, ...]]
    background: int
    ink: np.ndarray  # [grid, grid]
    occupied: np.ndarray  # [grid, grid] bool: cells that hold a digit (text is sparse, as in photos)

    @classmethod
    def from_seed(cls, seed: int, config: ProxyConfig) -> Page:
        rng = np.random.default_rng(seed)
        g, size = config.grid, config.canvas
        clutter = []
        if config.clutter:
            for _ in range(int(rng.integers(40, 80))):
                x0, y0, x1, y1 = (int(v) for v in rng.integers(0, size, 4))
                clutter.append(
                    (int(rng.random() < 0.5), x0, y0, x1, y1, int(rng.integers(110, 230)), int(rng.integers(1, 3)))
                )
        return cls(
            digits=rng.integers(0, 10, (g, g)),
            sizes=rng.integers(0, len(config.font_sizes), (g, g)),
            jitter=rng.random((g, g, 2)),
            clutter=clutter,
            background=int(rng.integers(170, 256)),
            ink=rng.integers(0, 70, (g, g)),
            occupied=rng.random((g, g)) < config.occupancy,
        )

    def render(self, x0: int, y0: int, side: int, config: ProxyConfig, zoom: float = 1.0) -> np.ndarray:
        """The page region ``[x0, x0+side) x [y0, y0+side)`` in canvas pixels, drawn at ``zoom``
        (output ``round(side * zoom)`` px; glyphs at ``zoom`` x their size), only its cells drawn,
        as float32 grey levels in [0, 255]."""
        out = int(round(side * zoom))
        image = Image.new("L", (out, out), self.background)
        draw = ImageDraw.Draw(image)
        for is_line, ax, ay, bx, by, shade, width in self.clutter:
            ax, ay, bx, by = ((v - o) * zoom for v, o in ((ax, x0), (ay, y0), (bx, x0), (by, y0)))
            if is_line:
                draw.line((ax, ay, bx, by), fill=shade, width=width)
            else:
                draw.rectangle((min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)), outline=shade)
        pixels = np.asarray(image, dtype=np.float32).copy()
        c = config.cell
        first_row, last_row = max(0, y0 // c), min(config.grid, -(-(y0 + side) // c))
        first_col, last_col = max(0, x0 // c), min(config.grid, -(-(x0 + side) // c))
        rows, cols = np.nonzero(self.occupied[first_row:last_row, first_col:last_col])  # row-major
        rows, cols = rows + first_row, cols + first_col
        sizes = np.maximum(4, np.round(np.asarray(config.font_sizes)[self.sizes[rows, cols]] * zoom).astype(np.int64))
        masks = [_glyph(int(d), int(s)) for d, s in zip(self.digits[rows, cols], sizes, strict=True)]
        heights, widths = np.array([m.shape for m in masks], dtype=np.int64).reshape(-1, 2).T
        cell = c * zoom  # a glyph sits at its jitter share of the slack its cell leaves
        xs = ((cols * c - x0) * zoom + self.jitter[rows, cols, 0] * np.maximum(0.0, cell - widths)).astype(np.int64)
        ys = ((rows * c - y0) * zoom + self.jitter[rows, cols, 1] * np.maximum(0.0, cell - heights)).astype(np.int64)
        blend_glyphs(pixels, masks, xs, ys, self.ink[rows, cols])
        return pixels


def window_side(spec: EncoderSpec, resolution: int, config: ProxyConfig) -> int:
    """The crop side in input pixels: ``window`` rounded down to the output stride, or the whole
    image when the resolution is smaller."""
    stride = spec.output_stride
    side = max(stride, (config.window // stride) * stride)
    return min(side, resolution)


def windows(
    seed: int, count: int, resolution: int, side: int, config: ProxyConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``count`` crops from pages ``seed, seed+1, …`` seen at ``resolution``.

    Returns images ``[B,3,side,side]`` in [0,1], cell centres ``[B,K,2]`` (x, y in [0,1] of the
    window), digits ``[B,K]`` and font-size indices ``[B,K]``; the ``K`` cells are drawn from those
    wholly inside the window (the same ``K`` for every resolution).
    """
    scale = config.canvas / resolution  # canvas px per input px
    native = int(round(side * scale))
    c = config.cell
    if native < c:
        raise SpecError(
            "accuracy.proxy.window",
            f"a {side}-px window at {resolution} px covers {native} page px, less than one {c}-px cell; "
            "raise window or canvas",
        )
    images, centres, digits, sizes = [], [], [], []
    for i in range(count):
        page = Page.from_seed(seed + i, config)
        rng = np.random.default_rng((seed + i, 7))
        x0 = int(rng.integers(0, (config.canvas - native) // c + 1)) * c if native < config.canvas else 0
        y0 = int(rng.integers(0, (config.canvas - native) // c + 1)) * c if native < config.canvas else 0
        # drawn at (at most) twice the input resolution, then reduced: Pillow's reducing resize
        # filters like a camera at the lower resolution, at a quarter of the cost of full size
        region = page.render(x0, y0, native, config, zoom=min(1.0, SUPERSAMPLE * side / native))
        if region.shape[0] != side:
            region = np.asarray(Image.fromarray(region).resize((side, side), Image.Resampling.BILINEAR))
        pixels = np.clip(region / 255.0 + rng.normal(0, 0.03, region.shape), 0, 1).astype(np.float32)
        images.append(torch.from_numpy(pixels))
        inside = native // c
        held = page.occupied[y0 // c : y0 // c + inside, x0 // c : x0 // c + inside]
        rows, cols = np.nonzero(held) if held.any() else np.nonzero(np.ones_like(held))
        pick = rng.choice(rows.size, size=config.cells_per_window, replace=rows.size < config.cells_per_window)
        rows, cols = rows[pick], cols[pick]
        page_rows, page_cols = rows + y0 // c, cols + x0 // c
        centres.append(torch.from_numpy(np.stack([(cols + 0.5) * c / native, (rows + 0.5) * c / native], -1)).float())
        digits.append(torch.from_numpy(page.digits[page_rows, page_cols]))
        sizes.append(torch.from_numpy(page.sizes[page_rows, page_cols]))
    x = torch.stack(images)[:, None].expand(-1, 3, -1, -1).contiguous()
    return x, torch.stack(centres), torch.stack(digits).long(), torch.stack(sizes).long()


class ProxyModel(nn.Module):
    """Encoder -> mlp2x_gelu projector -> per-cell read-out from the token under the cell.

    A token covering ``S x S`` cells (``S`` from the stride, resolution and cell size) carries
    ``S*S`` digit answers: a linear head gives ``S*S*10`` logits per token and each cell takes
    the slot it falls in — the old fixed read-out of the glyph grid, generalized to crops. Few
    tokens therefore means many answers per token's ``hidden`` numbers (the capacity effect).
    """

    def __init__(self, spec: EncoderSpec, side: int, resolution: int, config: ProxyConfig) -> None:
        super().__init__()
        self.encoder = build_encoder(spec, side)
        self.token_grid = spec.grid(side)
        cells_per_token = spec.output_stride * config.canvas / (resolution * config.cell)
        self.slots = max(1, math.ceil(cells_per_token - 1e-9))
        self.projector = nn.Sequential(
            nn.Linear(spec.feature_width, config.hidden), nn.GELU(), nn.Linear(config.hidden, config.hidden)
        )
        self.readout = nn.Linear(config.hidden, self.slots * self.slots * 10)

    def forward(self, images: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        images = (images - PAGE_MEAN) / PAGE_STD  # as a VLM's image processor normalizes
        tokens = self.projector(self.encoder.features(images))  # [B, g*g, hidden]
        g, s = self.token_grid, self.slots
        position = centres * g  # in token units
        index = position.floor().clamp(0, g - 1)
        flat = (index[..., 1] * g + index[..., 0]).long()  # [B, K]
        picked = torch.gather(tokens, 1, flat[..., None].expand(-1, -1, tokens.shape[-1]))
        slot = ((position - index) * s).floor().clamp(0, s - 1).long()  # [B, K, 2]: x, y sub-cell
        logits = self.readout(picked).view(*picked.shape[:2], s * s, 10)
        choice = (slot[..., 1] * s + slot[..., 0])[..., None, None].expand(-1, -1, 1, 10)
        return torch.gather(logits, 2, choice).squeeze(2)  # [B, K, 10]


def wilson_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    if total == 0:
        return (0.0, 0.0)
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (max(0.0, centre - half), min(1.0, centre + half))


class _TrainingSteps(torch.utils.data.Dataset):
    """Step ``i``'s batch of windows, a pure function of (seed, step): the same data whether the
    training process draws it or ``loader_workers`` processes draw it ahead."""

    def __init__(self, seed: int, resolution: int, side: int, config: ProxyConfig) -> None:
        self.seed, self.resolution, self.side, self.config = seed, resolution, side, config

    def __len__(self) -> int:
        return self.config.steps

    def __getitem__(self, step: int) -> tuple[torch.Tensor, ...]:
        first = (self.seed * 100_003 + step) * self.config.batch
        return windows(first, self.config.batch, self.resolution, self.side, self.config)


def _training_batches(seed: int, resolution: int, side: int, config: ProxyConfig) -> torch.utils.data.DataLoader:
    workers = config.loader_workers
    return torch.utils.data.DataLoader(
        _TrainingSteps(seed, resolution, side, config),
        batch_size=None,  # each item is already a batch
        num_workers=workers,
        prefetch_factor=4 if workers else None,
    )


def train_and_evaluate(spec: EncoderSpec, resolution: int, config: ProxyConfig, seed: int = 0) -> dict[str, Any]:
    """Train the proxy model from scratch and score it on the fixed held-out windows."""
    spec.tokens(resolution)
    small = spec.scaled(config.width_scale, config.depth_scale)
    side = window_side(spec, resolution, config)
    with fixed_threads(config.threads):
        torch.manual_seed(seed)
        model = ProxyModel(small, side, resolution, config).to(config.device)
        # a conv kind trains in channels-last on a CPU (1.3-2.1x faster a step; the GPU runs that
        # validated the proxy were NCHW, so a GPU keeps it): the same computation, other kernels
        layout = (
            torch.channels_last
            if config.device == "cpu" and spec.kind in CHANNELS_LAST_KINDS
            else torch.contiguous_format
        )
        if layout == torch.channels_last:
            to_channels_last(model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=config.steps)
        start = time.perf_counter()
        model.train()
        for data in _training_batches(seed, resolution, side, config):
            images, centres, digits, _ = (t.to(config.device) for t in data)
            images = images.contiguous(memory_format=layout)
            loss = F.cross_entropy(model(images, centres).flatten(0, 1), digits.flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        train_seconds = time.perf_counter() - start
        model.eval()
        correct = torch.zeros(len(config.font_sizes))
        total = torch.zeros(len(config.font_sizes))
        with torch.inference_mode():
            for i in range(0, config.eval_windows, config.batch):
                n = min(config.batch, config.eval_windows - i)
                images, centres, digits, sizes = windows(EVAL_SEED_OFFSET + i, n, resolution, side, config)
                logits = model(images.to(config.device).contiguous(memory_format=layout), centres.to(config.device))
                hits = (logits.argmax(-1).cpu() == digits).float()
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
        "steps": config.steps,
        "window": side,
        "train_seconds": round(train_seconds, 1),
        "layout": "channels_last" if layout == torch.channels_last else "nchw",
        "device": config.device,
        "proxy_params": sum(p.numel() for p in model.parameters()),
        "proxy_spec": small.to_dict(),
    }


def proxy_config(options: dict[str, Any]) -> ProxyConfig:
    """A :class:`ProxyConfig` from config keys; an unknown key is named in the error."""
    known = {f.name for f in dataclasses.fields(ProxyConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise SpecError(f"accuracy.proxy.{unknown[0]}", f"unknown proxy setting; known: {sorted(known)}")
    options = dict(options)
    if "font_sizes" in options:
        options["font_sizes"] = tuple(options["font_sizes"])
    return ProxyConfig(**options)


class ProxyAccuracy:
    """The sweep-facing source: one cached proxy run per (spec, resolution, seed); the LLM is
    ignored (the proxy reads with a fixed light head), so its value is the same for every LLM.
    Several ``seeds`` are averaged (their spread is the reported error)."""

    name = "proxy"

    def __init__(self, seeds: list[int] | None = None, cache_dir: str | None = None, **config: Any) -> None:
        self.config = proxy_config(config)
        self.seeds = [0] if seeds is None else list(seeds)
        if not self.seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in self.seeds):
            raise SpecError("accuracy.proxy.seeds", f"must be a non-empty list of integers, got {self.seeds!r}")
        self.cache = MeasurementCache(cache_dir)

    def run(self, spec: EncoderSpec, resolution: int, seed: int) -> dict[str, Any]:
        key = {
            "kind": "proxy",
            "version": PROXY_VERSION,
            "spec_hash": spec.content_hash,
            "resolution": resolution,
            "config": {k: v for k, v in dataclasses.asdict(self.config).items() if k not in NOT_PART_OF_THE_TASK},
            "seed": seed,
        }
        if (hit := self.cache.get(key)) is not None:
            return hit
        result = train_and_evaluate(spec, resolution, self.config, seed)
        self.cache.put(key, result)
        return result

    def score(self, spec: EncoderSpec, resolution: int) -> Sourced:
        """Mean proxy accuracy over the seeds, with its error (:meth:`sourced`)."""
        runs = [self.run(spec, resolution, seed) for seed in self.seeds]
        detail = {
            "by_font_size": runs[0]["by_font_size"],
            "steps": runs[0]["steps"],
            "train_seconds": sum(r["train_seconds"] for r in runs),
            # where each seed trained (runs cached before 2026-12-08 did not record it)
            "trained_on": [r.get("device") for r in runs],
            "proxy_params": runs[0]["proxy_params"],
            "cells": sum(r["cells"] for r in runs),
        }
        return self.sourced([r["accuracy"] for r in runs], detail)

    def sourced(self, per_seed: list[float], detail: dict[str, Any], where: str = "") -> Sourced:
        """Per-seed accuracies (one per ``seeds``) as a record value: their mean; error = half the
        95 % interval (Wilson over the held-out cells for one seed, the seeds' standard error
        otherwise), relative to the value. ``where`` adds where the runs ran to the label."""
        values = np.array(per_seed, dtype=float)
        mean = float(values.mean())
        if len(values) == 1:
            cells = self.config.eval_windows * self.config.cells_per_window
            low, high = wilson_interval(round(values[0] / 100 * cells), cells)
            half = 100 * (high - low) / 2
        else:
            half = 1.96 * float(values.std(ddof=1)) / math.sqrt(len(values))
        label = f"glyph-page[v{PROXY_VERSION},{self.config.canvas}px,seeds={','.join(map(str, self.seeds))}]"
        detail = {"seeds": self.seeds, "per_seed": [round(v, 2) for v in values], **detail}
        return Sourced(
            round(mean, 2), "proxy", label + (f" ({where})" if where else ""), round(half / max(mean, 1e-9), 4), detail
        )

    def diagnostics(self) -> list[str]:
        return []

    def lookup(self, encoder: EncoderSpec, resolution: int, llm: LLMSpec, metric: str) -> Sourced | Refusal:
        if metric != METRIC:
            return Refusal(self.name, f"the proxy scores {METRIC}, not {metric}")
        try:
            return self.score(encoder, resolution)
        except SpecError as err:
            return Refusal(self.name, str(err))
