"""Time Core ML packages on a Mac, per compute unit; write a JSON results file.

Standalone: needs only ``coremltools`` and ``numpy`` on macOS (copy this file to the Mac, or
run ``python -m fastvitsearch.export.time_coreml``). Feed the results file back with
``device=coreml device.results=<file>``.

Protocol (per package and compute unit): load (compiles once, not timed), ``warmup`` predictions,
then ``rounds`` rounds of ``runs`` predictions; each round's mean is one sample; the report is the
median, a 10 %-trimmed mean and p90 over rounds, plus the load time. Random input in [0, 1].

    python time_coreml.py exports/*.mlpackage --out coreml_results.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time
from pathlib import Path

UNITS = ("ALL", "CPU_AND_NE", "CPU_AND_GPU", "CPU_ONLY")


def device_name() -> str:
    """The Mac's model and chip, e.g. ``MacBookPro18,2 / Apple M1 Max``."""
    parts = [platform.machine(), platform.mac_ver()[0]]
    for key in ("hw.model", "machdep.cpu.brand_string"):
        try:
            parts.append(subprocess.run(["sysctl", "-n", key], capture_output=True, text=True).stdout.strip())
        except OSError:
            pass
    return " / ".join(p for p in parts if p)


def _trimmed_mean(values: list[float], fraction: float = 0.1) -> float:
    k = int(len(values) * fraction)
    kept = sorted(values)[k : len(values) - k] or values
    return sum(kept) / len(kept)


def time_package(path: Path, unit: str, warmup: int, rounds: int, runs: int) -> dict:
    import coremltools as ct
    import numpy as np

    start = time.perf_counter()
    model = ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, unit))
    load_ms = (time.perf_counter() - start) * 1e3
    ((name, shape),) = ((i.name, tuple(i.type.multiArrayType.shape)) for i in model.get_spec().description.input)
    inputs = {name: np.random.default_rng(0).random(shape, dtype=np.float32)}
    for _ in range(warmup):
        model.predict(inputs)
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(runs):
            model.predict(inputs)
        samples.append((time.perf_counter() - start) * 1e3 / runs)
    ordered = sorted(samples)
    return {
        "compute_unit": unit,
        "median_ms": statistics.median(ordered),
        "trimmed_mean_ms": _trimmed_mean(ordered),
        "p90_ms": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "n": rounds * runs,
        "load_ms": load_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", nargs="+", type=Path)
    parser.add_argument("--units", nargs="+", default=list(UNITS), choices=UNITS)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("coreml_results.json"))
    args = parser.parse_args()
    if platform.system() != "Darwin":
        raise SystemExit("error: Core ML prediction needs macOS; export on Linux, time on a Mac")
    results = []
    for package in args.packages:
        sidecar = package.with_suffix(".json")
        info = json.loads(sidecar.read_text()) if sidecar.exists() else {}
        for unit in args.units:
            row = time_package(package, unit, args.warmup, args.rounds, args.runs)
            row.update(
                package=package.name,
                encoder=info.get("encoder"),
                spec_hash=info.get("spec_hash"),
                resolution=info.get("resolution"),
                precision=(info.get("export") or {}).get("precision"),
            )
            print(
                f"{package.name:40s} {unit:12s} {row['median_ms']:9.2f} ms (trimmed mean {row['trimmed_mean_ms']:.2f})"
            )
            results.append(row)
    import coremltools as ct

    payload = {
        "device_name": device_name(),
        "coremltools": ct.__version__,
        "protocol": {
            "warmup": args.warmup,
            "rounds": args.rounds,
            "runs_per_round": args.runs,
            "statistic": "median of round means; 10% trimmed mean also given",
        },
        "results": results,
    }
    args.out.write_text(json.dumps(payload, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
