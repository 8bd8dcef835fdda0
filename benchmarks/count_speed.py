"""How long counting FastViTHD at 1024 px takes, and its peak memory: fast path vs fvcore.

Each counter runs in its own fresh process (so peak RSS is its own), with 1 torch thread.
Prints times, the ratio, and the memory added over the imports; target for the fast path:
under 1 s and no full-size weights allocated (fvcore needs them: ~0.5 GB for FastViTHD).

    python benchmarks/count_speed.py [--encoder fastvithd] [--resolution 1024]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _one(method: str, encoder: str, resolution: int) -> dict:
    import torch

    from fastvitsearch.build import build_encoder
    from fastvitsearch.presets import get_spec
    from fastvitsearch.profile.count import count_encoder, count_macs_fvcore

    torch.set_num_threads(1)
    spec = get_spec(encoder)
    base = _peak_rss_mb()
    start = time.perf_counter()
    if method == "fast":
        macs = count_encoder(spec, resolution).macs_by_op
    else:
        model = build_encoder(spec, resolution, inference_mode=True).eval()
        macs = count_macs_fvcore(model, torch.zeros(1, 3, resolution, resolution)).macs_by_op
    seconds = time.perf_counter() - start
    return {"method": method, "seconds": seconds, "added_peak_rss_mb": _peak_rss_mb() - base, "macs_by_op": macs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="fastvithd")
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--one", choices=["fast", "fvcore"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_one(args.one, args.encoder, args.resolution)))
        return
    results = {}
    for method in ("fast", "fvcore"):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                method,
                "--encoder",
                args.encoder,
                "--resolution",
                str(args.resolution),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        results[method] = json.loads(out.stdout.strip().splitlines()[-1])
    import torch

    print(
        f"counting {args.encoder} @ {args.resolution}px  (1 thread, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()})"
    )
    for method, label in (("fast", "meta + FlopCounterMode"), ("fvcore", "fvcore FlopCountAnalysis")):
        r = results[method]
        macs = ", ".join(f"{k} {v / 1e9:.2f}G" for k, v in r["macs_by_op"].items())
        print(f"  {label:26s} {r['seconds']:7.3f} s   +{r['added_peak_rss_mb']:7.1f} MB peak RSS   MACs: {macs}")
    print(f"  fvcore / fast time ratio: {results['fvcore']['seconds'] / results['fast']['seconds']:.1f}x")
    agree = all(
        results["fast"]["macs_by_op"].get(k) == v
        for k, v in results["fvcore"]["macs_by_op"].items()
        if k in ("conv", "linear", "attention")
    )
    print(f"  conv/linear/attention MACs agree: {agree}")


if __name__ == "__main__":
    main()
