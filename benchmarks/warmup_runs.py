"""How many untimed runs an encoder needs before its timings are steady (the main job's encoders).

Why: the main job's floor is one forward pass per encoder point, and a slow encoder (seconds a run
on a CPU) pays three today: the numerics check's run (the one warm-up ``device.timing`` asks for) and
two timed runs that must agree. Could the check's run be a sample, or need it be followed by a second
warm-up? This times, for each of the main job's encoder points, the check's run and then ``--runs``
runs one by one, as :func:`fastvitsearch.profile.measure.measure_encoder` does, and reports each run
against the median of runs 3.. (the steady state). ``--trim before-check`` returns freed memory to
the system before the check's run instead of after it (where the protocol does it), so the check's
run is the one that pays the page faults.

    python benchmarks/warmup_runs.py --trim after-check   # today's order
    python benchmarks/warmup_runs.py --trim before-check
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime
from pathlib import Path

import torch

from fastvitsearch.presets import get_spec
from fastvitsearch.profile.measure import _timed_encoder
from fastvitsearch.profile.runtimes import prepare_checked
from fastvitsearch.profile.timing import cpu_model, cpu_slug, retain_freed_memory
from fastvitsearch.torch_threads import fixed_threads

RESULTS = Path(__file__).parent / "results"
POINTS = [("vit_l14", 224), ("vit_l14", 336)] + [
    (name, r) for name in ("fastvit", "fastvithd") for r in (256, 512, 768, 1024)
]


def _ms(run) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1e3


def probe(name: str, resolution: int, runs: int, trim_before_check: bool) -> list[float]:
    """The check's run, then ``runs`` runs: each one's milliseconds."""
    cpu = torch.device("cpu")
    encoder = _timed_encoder(get_spec(name), resolution, cpu, "eager")
    torch.manual_seed(0)
    images = torch.rand(1, 3, resolution, resolution)
    times = []
    with fixed_threads(1):
        if trim_before_check:
            retain_freed_memory()
        start = time.perf_counter()
        run, _ = prepare_checked(encoder, images, "eager", "fp32", 1)
        times.append((time.perf_counter() - start) * 1e3)
        if not trim_before_check:
            retain_freed_memory()
        with torch.inference_mode():
            times += [_ms(run) for _ in range(runs)]
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--trim", choices=["after-check", "before-check"], default="after-check")
    args = parser.parse_args()
    retain_freed_memory()  # the allocator setting every measurement runs under
    rows = []
    for name, resolution in POINTS:
        times = probe(name, resolution, args.runs, args.trim == "before-check")
        steady = statistics.median(times[3:])
        rows.append(
            f"| {name}@{resolution} | {steady:.0f} | "
            + " | ".join(f"{t / steady:.3f}" for t in times[:3])
            + f" | {(max(times[3:]) - min(times[3:])) / steady:.3f} |"
        )
        print(rows[-1], flush=True)
    path = RESULTS / f"warmup_runs_{datetime.now():%Y-%m-%d}_{cpu_slug()}.md"
    header = (
        f"# Warm-up runs an encoder needs (benchmarks/warmup_runs.py)\n\n{cpu_model()}, eager fp32, 1 thread, "
        f"torch {torch.__version__}. Each run's time over the steady state (median of runs 3..{args.runs}); "
        "spread = (max - min) / steady over those runs.\n"
    )
    text = path.read_text() if path.exists() else header
    text += (
        f"\n## {datetime.now():%H:%M}, freed memory returned {args.trim.replace('-', ' ')}\n\n"
        "| encoder | steady ms | check's run | run 1 | run 2 | spread of runs 3.. |\n|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )
    path.write_text(text)


if __name__ == "__main__":
    main()
