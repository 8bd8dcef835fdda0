"""What one proxy training run costs on this CPU, and so what the default arch_search costs.

The proxy trains every candidate for ``steps`` steps of ``batch`` windows (the validated
setting: 600 x 32), so a run's cost is ``steps x (draw + train step)``. This measures both
parts per step for the paper's three encoders at their headline resolutions, in NCHW and in
channels-last (:func:`fastvitsearch.accuracy.channels_last.to_channels_last`, which reroutes the
strided 1x1 convs that crash oneDNN in channels-last), on 1 and 2 threads, and projects a full run
and the default ``+experiment=arch_search`` (30 trials, the anchors reusing the calibration's runs)
from FastViTHD@1024 in the layout the proxy trains it in on a CPU (channels-last for conv kinds).
Each step timing runs in its own process, and an abort is recorded as such. Medians of
``--steps`` timed steps after one warm-up step.
Writes ``benchmarks/results/proxy_cost_<date>_<machine>.md``.

    python benchmarks/proxy_cost.py [--steps 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F

from fastvitsearch.accuracy.channels_last import to_channels_last
from fastvitsearch.accuracy.proxy import ProxyConfig, ProxyModel, window_side, windows
from fastvitsearch.presets import get_spec
from fastvitsearch.profile.timing import cpu_model, cpu_slug, versions
from fastvitsearch.torch_threads import fixed_threads

POINTS = (("fastvithd", 1024), ("fastvit", 768), ("vit_l14", 336))
LAYOUTS = {"NCHW": torch.contiguous_format, "channels-last": torch.channels_last}
#: trials of the default arch_search that train (conf/experiment/arch_search.yaml: 30 trials, of
#: which the anchors' 3 encoders reuse the calibration's runs)
SEARCH_TRIALS = 30


def step_seconds(name: str, resolution: int, layout: torch.memory_format, threads: int, steps: int) -> float:
    """Median seconds of one training step (forward, backward, AdamW) on a fixed batch."""
    config = ProxyConfig()
    spec = get_spec(name)
    side = window_side(spec, resolution, config)
    images, centres, digits, _ = windows(12_345, config.batch, resolution, side, config)
    images = images.contiguous(memory_format=layout)
    with fixed_threads(threads):
        torch.manual_seed(0)
        model = ProxyModel(spec.scaled(config.width_scale, config.depth_scale), side, resolution, config)
        if layout == torch.channels_last:
            to_channels_last(model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
        times = []
        for _ in range(steps + 1):
            start = time.perf_counter()
            loss = F.cross_entropy(model(images, centres).flatten(0, 1), digits.flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def draw_seconds(name: str, resolution: int, repeats: int = 3) -> float:
    """Seconds to draw one step's windows (pages rendered and cropped) in this process."""
    config = ProxyConfig()
    side = window_side(get_spec(name), resolution, config)
    start = time.perf_counter()
    for i in range(repeats):
        windows(1000 + i * config.batch, config.batch, resolution, side, config)
    return (time.perf_counter() - start) / repeats


def _step_in_child(name: str, resolution: int, layout: str, threads: int, steps: int) -> float | str:
    """:func:`step_seconds` in a fresh process: seconds, or why the process died."""
    command = [sys.executable, __file__, "--one", name, str(resolution), layout, str(threads), "--steps", str(steps)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        why = (done.stderr.strip().splitlines() or ["no message"])[-1][:80]
        return f"process aborted (exit {done.returncode}: {why})"
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--one", nargs=4, metavar=("NAME", "RESOLUTION", "LAYOUT", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        name, resolution, layout, threads = args.one
        print(step_seconds(name, int(resolution), LAYOUTS[layout], int(threads), args.steps))
        return
    out = args.out or Path(__file__).parent / "results" / f"proxy_cost_{date.today()}_{cpu_slug()}.md"
    config = ProxyConfig()
    rows, full_runs = [], {}
    for name, resolution in POINTS:
        draw = draw_seconds(name, resolution)
        for threads in (1, 2):
            for layout_name in LAYOUTS:
                step = _step_in_child(name, resolution, layout_name, threads, args.steps)
                cells = f"| {name}@{resolution} | {threads} | {layout_name} | {draw:.3f} |"
                if isinstance(step, str):
                    rows.append(f"{cells} {step} | — |")
                else:
                    full_runs[(name, threads, layout_name)] = config.steps * (draw + step)
                    rows.append(f"{cells} {step:.3f} | {full_runs[(name, threads, layout_name)] / 60:.1f} |")
                print(rows[-1], flush=True)
    trained = SEARCH_TRIALS - len(POINTS)
    lines = [
        f"# Proxy training cost on this machine ({date.today()})",
        "",
        f"Machine: {cpu_model()}; torch {versions()['torch']}. Proxy: {config.steps} steps x {config.batch} "
        f"windows of {config.window} px, widths x{config.width_scale}, depths x{config.depth_scale} "
        f"(the validated setting). Step = forward + backward + AdamW on one batch, median of {args.steps} "
        "after a warm-up; draw = rendering one step's windows in the training process.",
        "",
        "| point | threads | layout | draw s/step | train s/step | full run, min |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"Default arch_search ({SEARCH_TRIALS} trials, {trained} of them new designs that train; a design costs "
        "about what the paper's encoders cost, since every candidate trains on the same windows), "
        "from FastViTHD@1024's channels-last run (the layout the proxy trains conv kinds in on a CPU): one "
        f"sweep on 2 threads ~{trained * full_runs[('fastvithd', 2, 'channels-last')] / 3600:.1f} h; two workers "
        f"of 1 thread ~{trained * full_runs[('fastvithd', 1, 'channels-last')] / 2 / 3600:.1f} h (in NCHW: "
        f"{trained * full_runs[('fastvithd', 2, 'NCHW')] / 3600:.1f} h and "
        f"{trained * full_runs[('fastvithd', 1, 'NCHW')] / 2 / 3600:.1f} h). Target (issue 13): 45 min.",
    ]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
