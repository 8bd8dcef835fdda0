"""Encoder latency per deployment runtime, side by side in one run, and how the paper's ratios move.

The paper's three encoders at their paper resolutions x every runtime/precision this machine
runs (eager fp32 and bf16, ONNX Runtime fp32, OpenVINO fp32 and bf16), 1 thread, the timing
protocol's median; each with its numerical error against eager fp32. Then the ratio that decides
the paper's comparison, FastViTHD@1024 / ViT-L/14@336, per runtime beside the paper's Neural
Engine ratio (Table 10), and the cost of OpenVINO's export + check + first timing of
FastViTHD@1024 with an empty cache (target <= 60 s) and of a rerun (cached). Last, the ceiling:
this CPU's matrix-multiply rate per precision (torch, 2048^3, same threads) against FastViTHD's
counted MACs, i.e. the fastest any runtime could run it if every MAC ran at that rate.

    python benchmarks/runtime_speed.py [--out benchmarks/results/runtime_speed_<date>_<machine>.md]

Each run writes its own file (date and CPU in the name): the ratios depend on the CPU (an AMX
Xeon runs bf16 six times faster than fp32, an AVX-512 EPYC 2.4 times), so no machine's run
replaces another's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

from fastvitsearch import paper
from fastvitsearch.cache import MeasurementCache
from fastvitsearch.presets import get_spec
from fastvitsearch.profile.count import count_encoder
from fastvitsearch.profile.measure import measure_encoder
from fastvitsearch.profile.runtimes import RUNTIME_TABLE, check_runtime
from fastvitsearch.profile.timing import TimingProtocol, cpu_model, cpu_slug, versions
from fastvitsearch.spec import SpecError
from fastvitsearch.torch_threads import fixed_threads

POINTS = (("fastvithd", 1024), ("vit_l14", 336), ("fastvit", 768))
CANDIDATES = (("eager", "fp32"), ("eager", "bf16"), ("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "bf16"))
PROTOCOL = TimingProtocol(warmup_runs=1, warmup_seconds=0.0, min_runs=3, max_runs=5, budget_seconds=10.0)


def gemm_rate(dtype: torch.dtype, threads: int, n: int = 2048, repeats: int = 5) -> float:
    """Multiply-accumulates per second of one ``n``-cubed matrix product in ``dtype`` (median of
    ``repeats`` after a warm-up): what a compute-bound layer can reach on this CPU at best."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    times = []
    with fixed_threads(threads):
        torch.matmul(a, b)
        for _ in range(repeats):
            start = time.perf_counter()
            torch.matmul(a, b)
            times.append(time.perf_counter() - start)
    return n**3 / sorted(times)[len(times) // 2]


def ceiling_lines(results: dict, best: tuple[str, str], threads: int) -> list[str]:
    """How close eager fp32 and the fastest runtime run FastViTHD@1024 to this CPU's matrix rates,
    and the largest speed-up over eager fp32 that the bf16 rate allows."""
    macs = count_encoder(get_spec("fastvithd"), 1024).macs
    fp32, bf16 = gemm_rate(torch.float32, threads), gemm_rate(torch.bfloat16, threads)
    eager_ms = results[("fastvithd", "eager", "fp32")].value
    best_ms = results[("fastvithd", *best)].value
    best_rate = bf16 if best[1] == "bf16" else fp32
    floor_ms = macs / bf16 * 1e3
    return [
        "",
        f"Ceiling (matrix products, torch {torch.__version__}, 2048^3, {threads} thread(s), measured in this run): "
        f"fp32 {fp32 / 1e9:.1f} GMAC/s, bf16 {bf16 / 1e9:.1f} GMAC/s. FastViTHD@1024 is {macs / 1e9:.1f} GMAC "
        f"(counted): eager fp32 runs it at {macs / eager_ms / 1e6:.1f} GMAC/s ({macs / eager_ms * 1e3 / fp32:.0%} "
        f"of the fp32 rate), {best[0]} {best[1]} at {macs / best_ms / 1e6:.1f} GMAC/s "
        f"({macs / best_ms * 1e3 / best_rate:.0%} of the {best[1]} rate). Every MAC at the bf16 rate: "
        f"{floor_ms:,.0f} ms = {eager_ms / floor_ms:.2f}x eager fp32, the most a bf16 runtime can give here.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="default: results/runtime_speed_<date>_<machine>.md")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.out is None:
        args.out = Path(__file__).parent / "results" / f"runtime_speed_{date.today()}_{cpu_slug()}.md"
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
    lines += ceiling_lines(results, best, args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
