"""Encoder latency per deployment runtime, side by side in one run, and how the paper's ratios move.

The paper's three encoders at their paper resolutions x every runtime/precision this machine
runs (eager fp32 and bf16, ONNX Runtime fp32, OpenVINO fp32 and bf16), 1 thread, the timing
protocol's median; each with its numerical error against eager fp32. Then the ratio that decides
the paper's comparison, FastViTHD@1024 / ViT-L/14@336, per runtime beside the paper's Neural
Engine ratio (Table 10), and the cost of OpenVINO's export + check + first timing of
FastViTHD@1024 with an empty cache (target <= 60 s) and of a rerun (cached).

    python benchmarks/runtime_speed.py [--out benchmarks/results/runtime_speed.md]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from fastvitsearch import paper
from fastvitsearch.cache import MeasurementCache
from fastvitsearch.presets import get_spec
from fastvitsearch.profile.measure import measure_encoder
from fastvitsearch.profile.runtimes import RUNTIME_TABLE, check_runtime
from fastvitsearch.profile.timing import TimingProtocol, cpu_model, versions
from fastvitsearch.spec import SpecError

POINTS = (("fastvithd", 1024), ("vit_l14", 336), ("fastvit", 768))
CANDIDATES = (("eager", "fp32"), ("eager", "bf16"), ("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "bf16"))
PROTOCOL = TimingProtocol(warmup_runs=1, warmup_seconds=0.0, min_runs=3, max_runs=5, budget_seconds=10.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "runtime_speed.md")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    available = []
    for runtime, precision in CANDIDATES:
        try:
            check_runtime(runtime, precision)
            available.append((runtime, precision))
        except SpecError as err:
            print(f"skipped {runtime} {precision}: {err}")
    device = torch.device("cpu")
    lines = [
        "# Encoder latency per runtime (measured)",
        "",
        f"Machine: {cpu_model()}, {args.threads} thread(s); torch {versions()['torch']}, "
        + ", ".join(f"{r} {RUNTIME_TABLE[r].version()}" for r in dict.fromkeys(r for r, _ in available)),
        f"Protocol: warm-up 1 run, median of 3-5 runs (`{PROTOCOL}`); random weights, batch 1, reparameterized.",
        "",
    ]

    # 1. OpenVINO's first-use cost (export + check + first timing) with an empty cache, then a rerun
    with tempfile.TemporaryDirectory() as empty:
        cache = MeasurementCache(empty)
        kw = dict(device=device, threads=args.threads, protocol=PROTOCOL, cache=cache)
        start = time.perf_counter()
        measure_encoder(get_spec("fastvithd"), 1024, runtime="openvino", precision="fp32", **kw)
        first = time.perf_counter() - start
        start = time.perf_counter()
        measure_encoder(get_spec("fastvithd"), 1024, runtime="openvino", precision="fp32", **kw)
        rerun = time.perf_counter() - start
    print(f"openvino fp32 FastViTHD@1024: export + check + first timing {first:.1f} s; rerun {rerun:.2f} s (cached)")

    # 2. every point x runtime, interleaved per point so drift hits every runtime alike
    with tempfile.TemporaryDirectory() as folder:
        cache = MeasurementCache(folder)
        kw = dict(device=device, threads=args.threads, protocol=PROTOCOL, cache=cache)
        results = {}
        for name, resolution in POINTS:
            for runtime, precision in available:
                m = measure_encoder(get_spec(name), resolution, runtime=runtime, precision=precision, **kw)
                results[(name, runtime, precision)] = m
                env = m.detail["environment"]
                print(
                    f"{name:10s}@{resolution:4d} {runtime:12s} {precision}: {m.value:9.1f} ms "
                    f"(IQR {m.detail['iqr_ms']:.1f}, error {env['numerics_vs_eager_fp32']:.1e}, "
                    f"other CPU {env['other_processes_cpu_cores']})"
                )
    header = "| encoder | " + " | ".join(f"{r} {p}" for r, p in available) + " |"
    lines += [header, "|---" * (len(available) + 1) + "|"]
    for name, resolution in POINTS:
        cells = []
        for runtime, precision in available:
            m = results[(name, runtime, precision)]
            speedup = results[(name, "eager", "fp32")].value / m.value
            cells.append(f"{m.value:,.0f} ms ({speedup:.2f}x)")
        lines.append(f"| {name}@{resolution} | " + " | ".join(cells) + " |")
    lines += ["", "Numerical error vs eager fp32 (max |diff| / max |reference|):", ""]
    lines += [header, "|---" * (len(available) + 1) + "|"]
    for name, resolution in POINTS:
        errors = [results[(name, r, p)].detail["environment"]["numerics_vs_eager_fp32"] for r, p in available]
        lines.append(f"| {name}@{resolution} | " + " | ".join(f"{e:.1e}" for e in errors) + " |")
    published = paper.encoder_latencies()
    hd, vit = published[("fastvithd", 1024)], published[("vit_l14", 336)]
    lines += [
        "",
        "FastViTHD@1024 / ViT-L/14@336 latency ratio per runtime (the paper's comparison; < 1: FastViTHD faster):",
        "",
        "| runtime | ratio |",
        "|---|---|",
    ]
    for runtime, precision in available:
        ratio = results[("fastvithd", runtime, precision)].value / results[("vit_l14", runtime, precision)].value
        lines.append(f"| {runtime} {precision} | {ratio:.2f} |")
    lines.append(f"| paper, M1 Max Neural Engine (published: {hd[1]} / {vit[1]}) | {hd[0] / vit[0]:.2f} |")
    best = min(available, key=lambda rp: results[("fastvithd", *rp)].value)
    speedup = results[("fastvithd", "eager", "fp32")].value / results[("fastvithd", *best)].value
    lines += [
        "",
        f"Fastest on FastViTHD@1024: {best[0]} {best[1]}, {speedup:.2f}x eager fp32 (target >= 2.5x), "
        f"error {results[('fastvithd', *best)].detail['environment']['numerics_vs_eager_fp32']:.1e}.",
        f"OpenVINO fp32 FastViTHD@1024, empty cache: export + check + first timing {first:.1f} s "
        f"(target <= 60 s); rerun {rerun:.2f} s (cached).",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
