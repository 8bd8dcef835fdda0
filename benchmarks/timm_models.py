"""Which of timm's models work as an encoder: every ``timm.list_models()`` name, on the meta device.

For each model at its own input size (rounded to a multiple of its reduction where it is a
feature map) and at twice that size (a VLM encoder runs above its pre-training size),
``encoder=timm encoder.model=<name>`` is resolved, built and run through ``features``; the tokens
it returns are checked against the token rule the record counts. Each model ends as its first
outcome other than ``ok`` over the two sizes: ``ok`` (its tokens equal the rule's at both),
``refused`` (a clear error naming the key: not a token grid, or a resolution the rule does not
take), ``mismatch`` (a wrong count: a bug) or ``error`` (an exception that names no key).
Writes ``results/timm_models_<date>[_<filter>].md``.

    python benchmarks/timm_models.py [--filter 'swin*']
"""

from __future__ import annotations

import argparse
import collections
import time
import warnings
from datetime import date
from pathlib import Path

import timm
import torch

from fastvitsearch.build import build_encoder, timm_probe_resolution
from fastvitsearch.presets import resolve_encoder
from fastvitsearch.spec import SpecError

RESULTS = Path(__file__).parent / "results"


#: the sizes checked, as multiples of the model's own (probe) size
SIZES = (1, 2)


def check(name: str) -> tuple[int, str]:
    """(resolution, outcome) for one timm model: its first outcome other than ok over ``SIZES``."""
    cfg = timm.models.get_pretrained_cfg(name)
    resolution = int((cfg.input_size if cfg else (3, 224, 224))[-1])
    try:
        spec = resolve_encoder({"model": name})
        probe = timm_probe_resolution(spec, cfg.input_size if cfg else None)
        for resolution in (probe * size for size in SIZES):
            expected = spec.tokens(resolution)
            encoder = build_encoder(spec, resolution, device="meta").eval()
            with torch.no_grad():
                out = encoder.features(torch.empty(1, 3, resolution, resolution, device="meta"))
            if out.shape[1] != expected:
                return resolution, f"mismatch: {out.shape[1]} tokens, rule {expected}"
        return probe, "ok"
    except SpecError as err:
        return resolution, f"refused: {err}"
    except Exception as err:  # noqa: BLE001 - the audit records every failure
        return resolution, f"error: {type(err).__name__}: {str(err)[:150]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filter", default="", help="a timm.list_models pattern (default: all)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    names = timm.list_models(args.filter) if args.filter else timm.list_models()
    start = time.perf_counter()
    outcomes = {name: check(name) for name in names}
    seconds = time.perf_counter() - start
    kinds = collections.Counter(outcome.split(":")[0] for _, outcome in outcomes.values())
    lines = [
        f"# timm models as encoders (benchmarks/timm_models.py, {date.today()})",
        "",
        f"timm {timm.__version__}, torch {torch.__version__}; {len(names)} models"
        + (f" matching `{args.filter}`" if args.filter else "")
        + f", checked on the meta device at {' and '.join(f'{k}x' for k in SIZES)} their own input size "
        + f"in {seconds:.0f} s: "
        + ", ".join(f"**{kinds[k]} {k}**" for k in ("ok", "refused", "mismatch", "error")),
        "",
        "| model | resolution | outcome |",
        "|---|---|---|",
    ]
    lines += [
        f"| {name} | {resolution} | {outcome.replace('|', '/')} |"
        for name, (resolution, outcome) in outcomes.items()
        if outcome != "ok"
    ]
    part = "_" + "".join(c if c.isalnum() else "-" for c in args.filter) if args.filter else ""
    path = RESULTS / f"timm_models_{date.today()}{part}.md"  # a filtered run keeps the full audit
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:3]))


if __name__ == "__main__":
    main()
