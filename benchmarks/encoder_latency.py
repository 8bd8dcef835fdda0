"""Encoder latency ratios on this machine, all measured in one run with one protocol.

1. our ``fastvithd`` vs timm's ``fastvit_mci3``, both reparameterized (target ratio <= 1.00:
   building on timm must cost nothing);
2. FastViTHD@1024 vs ViT-L/14@336 and FastViT@768, beside the paper's M1 Max encoder latencies
   (read from the package data through ``fastvitsearch.paper``, Table 10 first): does the ranking hold here?
3. each runtime's speedup over eager fp32 (FastViTHD at --runtime-resolution).

    python benchmarks/encoder_latency.py [--threads 1] [--budget 3] [--skip-compile]
"""

from __future__ import annotations

import argparse
import statistics

import timm
import torch
from timm.utils.model import reparameterize_model

from fastvitsearch import paper
from fastvitsearch.build import build_encoder
from fastvitsearch.presets import get_spec
from fastvitsearch.profile.measure import measure_encoder
from fastvitsearch.profile.runtimes import RUNTIMES
from fastvitsearch.profile.timing import TimingProtocol, measure

POINTS = (("fastvithd", 1024), ("vit_l14", 336), ("fastvit", 768))
PAPER_MS = {point: paper.encoder_latencies()[point] for point in POINTS}  # (ms, table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--budget", type=float, default=3.0, help="seconds of repeats per point")
    parser.add_argument("--twin-resolution", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds for the ours-vs-timm ratio")
    parser.add_argument("--runtime-resolution", type=int, default=512)
    parser.add_argument("--skip-compile", action="store_true", help="torch.compile takes minutes on a CPU")
    parser.add_argument("--parts", type=int, default=3, help="1: only ours vs timm; 3: everything")
    args = parser.parse_args()
    protocol = TimingProtocol(warmup_runs=1, warmup_seconds=0.0, min_runs=5, max_runs=30, budget_seconds=args.budget)
    cpu = torch.device("cpu")
    kw = dict(device=cpu, threads=args.threads, protocol=protocol, cache=None)

    res = args.twin_resolution
    torch.manual_seed(0)
    ours = build_encoder(get_spec("fastvithd"), res).reparameterize().eval()
    twin = reparameterize_model(timm.create_model("fastvit_mci3", pretrained=False, num_classes=0)).eval()
    images = torch.rand(1, 3, res, res)
    # Both modules built once and timed alike, alternating (A B A B ...) so the machine's slow
    # drift (about 5 % between back-to-back runs here) hits both equally.
    ours_ms, theirs_ms = [], []
    for _ in range(args.rounds):
        mine = measure(lambda: ours.features(images), device=cpu, threads=args.threads, protocol=protocol)
        ours_ms.append(mine.median_ms)
        theirs = measure(lambda: twin.forward_features(images), device=cpu, threads=args.threads, protocol=protocol)
        theirs_ms.append(theirs.median_ms)
    env = theirs.environment
    print(
        f"device: {env['device_name']} | threads {args.threads} | torch {env['torch']} | timm {env['timm']} "
        f"| other processes' CPU during last run: {env['other_processes_cpu_cores']} cores"
    )
    ours_median, theirs_median = statistics.median(ours_ms), statistics.median(theirs_ms)
    print(
        f"\n1. ours fastvithd vs timm fastvit_mci3 @ {res}px (both reparameterized, {args.rounds} alternating rounds): "
        f"{ours_median:.1f} ms vs {theirs_median:.1f} ms -> ratio {ours_median / theirs_median:.3f} (target <= 1.00)"
    )

    if args.parts == 1:
        return
    print("\n2. the paper's encoders at the paper's resolutions (measured here vs published M1 Max)")
    measured = {k: measure_encoder(get_spec(k[0]), k[1], **kw) for k in PAPER_MS}
    base = measured[("fastvithd", 1024)].value
    paper_base = PAPER_MS[("fastvithd", 1024)][0]
    for (name, r), (published, table) in PAPER_MS.items():
        m = measured[(name, r)]
        noisy = " (noisy)" if m.detail["noisy"] else ""
        print(
            f"   {name:10s} @ {r:4d}px: {m.value:9.1f} ms{noisy}  ratio to FastViTHD@1024 {m.value / base:5.2f}   "
            f"paper {published:6.1f} ms ({table}), ratio {published / paper_base:5.2f}"
        )

    print(f"\n3. runtimes, FastViTHD @ {args.runtime_resolution}px (speedup over eager fp32; numerics checked)")
    eager = None
    for runtime in RUNTIMES:
        if runtime == "compile" and args.skip_compile:
            print("   compile: skipped (--skip-compile)")
            continue
        try:
            m = measure_encoder(get_spec("fastvithd"), args.runtime_resolution, runtime=runtime, **kw)
        except Exception as err:  # a runtime that fails here is reported, not fatal
            print(f"   {runtime}: failed: {str(err).splitlines()[0]}")
            continue
        eager = eager or m.value
        print(
            f"   {runtime:14s} {m.value:9.1f} ms  speedup {eager / m.value:5.2f}x  "
            f"(rel. error vs eager {m.detail['environment']['numerics_vs_eager_fp32']:.1e})"
        )


if __name__ == "__main__":
    main()
