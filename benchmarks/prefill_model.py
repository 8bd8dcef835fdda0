"""Held-out error of the prefill latency model ``t = a + FLOPs/R`` on this machine (target <= 10 %).

Measures prefill of random-weight LLMs at several lengths (1 thread, bf16 where the CPU has it),
fits the model, and prints its leave-one-out MAPE; with two or more LLMs it also prints the
leave-one-LLM-out error, the one that applies when a 7B model is predicted from smaller ones.

    python benchmarks/prefill_model.py [--llms qwen2_0_5b qwen2_1_5b] [--tokens 16 64 144 256]
"""

from __future__ import annotations

import argparse

import torch

from fastvitsearch.llm import LLM_PRESETS
from fastvitsearch.profile.devices import LocalDevice
from fastvitsearch.profile.latency_model import fit_latency
from fastvitsearch.profile.measure import PREFILL_PROTOCOL, prefill_dtype


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llms", nargs="+", default=["qwen2_0_5b"])
    parser.add_argument("--tokens", nargs="+", type=int, default=[16, 64, 144, 256])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    device = LocalDevice(
        threads=args.threads,
        protocol=PREFILL_PROTOCOL,
        cache=None,
        calibration_llms=tuple(args.llms),
        calibration_tokens=tuple(args.tokens),
    )
    dtype = prefill_dtype(torch.device("cpu"))
    print(f"prefill on cpu, {args.threads} thread(s), dtype {dtype}, torch {torch.__version__}")
    points = []
    for name in args.llms:
        llm = LLM_PRESETS[name]
        for tokens in args.tokens:
            estimate = device.prefill_latency(llm, tokens)
            flops = llm.prefill_flops(tokens)
            points.append((name, flops, estimate.value))
            print(
                f"  {name:11s} T={tokens:4d}  {flops / 1e9:8.1f} GFLOPs  {estimate.value:9.1f} ms"
                f"{'  (noisy)' if estimate.detail['noisy'] else ''}"
            )
        own = [(f, t) for n, f, t in points if n == name]
        model = fit_latency(name, [f for f, _ in own], [t for _, t in own])
        print(
            f"  -> {name}: t = {model.intercept_ms:.1f} ms + FLOPs / {1 / model.ms_per_unit / 1e6:.1f} GFLOP/s; "
            f"leave-one-out MAPE {model.loo_error * 100:.1f} % (target <= 10 %)"
        )
    if len(args.llms) > 1:
        model = device.prefill_model()
        print(f"  pooled over {args.llms}: leave-one-LLM-out MAPE {model.loo_error * 100:.1f} %")


if __name__ == "__main__":
    main()
