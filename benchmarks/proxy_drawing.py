"""How long the proxy waits for one training step's windows to be drawn, per input resolution.

A CPU proxy run draws its 32 windows a step in the training process (a GPU run waits on it too),
so drawing is part of every candidate's cost; at 256 px a window is the whole page (~500 glyphs).
``--reference`` takes another version of ``fastvitsearch/accuracy/proxy.py`` (e.g. ``git show
<rev>:fastvitsearch/accuracy/proxy.py > old.py``) and times the two in turn in one process,
after checking that they draw the same windows bit for bit. Appends a table to
``results/proxy_drawing_<date>_<cpu>.md``.

    python benchmarks/proxy_drawing.py [--reference old.py] [--steps 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from types import ModuleType

import torch

from fastvitsearch.accuracy import proxy
from fastvitsearch.profile.timing import cpu_model, cpu_slug

RESULTS = Path(__file__).parent / "results"
RESOLUTIONS = (256, 512, 768, 1024)


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("reference_proxy", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def seconds_per_step(module: ModuleType, resolution: int, steps: int) -> float:
    config = module.ProxyConfig()
    start = time.perf_counter()
    for step in range(steps):
        module.windows(step * config.batch, config.batch, resolution, config.window, config)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, help="another proxy.py to time against this one")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    versions = {"this": proxy} | ({"reference": _load(args.reference)} if args.reference else {})
    if args.reference:
        for resolution in RESOLUTIONS:
            ours, theirs = (v.windows(99, 4, resolution, 256, v.ProxyConfig())[0] for v in versions.values())
            if not torch.equal(ours, theirs):
                raise SystemExit(f"the two versions draw different windows at {resolution} px")
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.rounds):  # in turn, so a change in the host's speed hits both alike
        for resolution in RESOLUTIONS:
            for name, module in versions.items():
                times.setdefault((name, resolution), []).append(seconds_per_step(module, resolution, args.steps))
    header = "| version | " + " | ".join(f"{r} px" for r in RESOLUTIONS) + " |"
    lines = [header, "|---" * (len(RESOLUTIONS) + 1) + "|"]
    for name in versions:
        cells = " | ".join(f"{statistics.median(times[name, r]):.3f}" for r in RESOLUTIONS)
        lines.append(f"| {name} | {cells} |")
    table = "\n".join(lines)
    print(table)
    path = RESULTS / f"proxy_drawing_{datetime.now():%Y-%m-%d}_{cpu_slug()}.md"
    text = (
        path.read_text()
        if path.exists()
        else "# Proxy window drawing, seconds per training step (benchmarks/proxy_drawing.py)\n"
    )
    text += (
        f"\n## {datetime.now():%H:%M}: {cpu_model()}, 1 thread, 32 windows of 256 px a step, median of "
        f"{args.rounds} rounds of {args.steps} steps"
        + (f", against `{args.reference.name}` (same windows bit for bit)" if args.reference else "")
        + f"\n\n{table}\n"
    )
    path.write_text(text)


if __name__ == "__main__":
    main()
