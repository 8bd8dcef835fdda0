"""The two effects FastVLM reports, on the proxy glyph-reading task, at equal training steps:

1. the same tiny encoder reads small glyphs better at higher input resolution;
2. at one resolution, an encoder whose output stride leaves too few tokens for the page's cells
   (stride 64 at 512 px: each token answers for 4x4 cells of the proxy's read-out) scores lower.

Prints held-out accuracy (Wilson 95 % interval) overall and per font size, 1 CPU thread.

    python benchmarks/proxy_resolution.py [--steps 150] [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from fastvitsearch.accuracy.proxy import ProxyConfig, train_and_evaluate
from fastvitsearch.presets import get_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--encoder", default="tiny_fastvit", help="stride-32 encoder for effect 1")
    parser.add_argument("--coarse", default="tiny_fastvithd", help="stride-64 encoder for effect 2")
    args = parser.parse_args()
    config = ProxyConfig(steps=args.steps, width_scale=1.0, depth_scale=1.0, lr=3e-3)
    print(
        f"proxy: {config.canvas}px page, {config.grid}x{config.grid} digits, font sizes {config.font_sizes}, "
        f"{config.steps} steps x {config.batch} pages, 1 thread, torch {torch.__version__}"
    )
    runs = [("resolution", args.encoder, 256), ("resolution", args.encoder, 512), ("stride", args.coarse, 512)]
    for seed in args.seeds:
        for effect, name, resolution in runs:
            spec = get_spec(name)
            start = time.perf_counter()
            r = train_and_evaluate(spec, resolution, config, seed)
            sizes = "  ".join(f"{s}px {v:5.1f}" for s, v in r["by_font_size"].items())
            print(
                f"seed {seed} {effect:10s} {name:15s} @{resolution:4d}px stride {spec.output_stride:3d} "
                f"tokens {spec.tokens(resolution):4d}: {r['accuracy']:5.1f} % "
                f"[{r['ci95'][0]:.1f}, {r['ci95'][1]:.1f}]  by font: {sizes}  "
                f"({time.perf_counter() - start:.0f} s)"
            )


if __name__ == "__main__":
    main()
