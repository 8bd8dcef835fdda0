"""Screen proxy-task variants for rank agreement with the paper, many runs in parallel.

Each variant (a name and proxy settings over the defaults) is run on the validation points with
a few seeds, in ``--workers`` processes (``--device cuda`` where a GPU is lent: the pages are drawn
on the CPU cores, the models train on the GPU). Prints and writes one row per variant: Kendall tau
and Spearman rho vs published TextVQA (and DocVQA), mean train seconds. Used to choose the proxy
task; the chosen variant is then measured on this machine by ``proxy_validity.py``.

    python benchmarks/proxy_variants.py variants.json --seeds 0 1 --device cuda --workers 14 --out runs.jsonl
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

#: validation presets the proxy can train a scaled copy of (timm-model presets cannot be scaled)
PROXY_SCALABLE = ("fastvit", "fastvithd", "vit_l14")


def run_one(job: dict) -> dict:
    import torch

    from fastvitsearch.accuracy.proxy import proxy_config, train_and_evaluate
    from fastvitsearch.presets import get_spec

    torch.set_num_threads(1)
    config = proxy_config(
        {**job["settings"], "threads": 1, "device": job["device"], "loader_workers": job["loader_workers"]}
    )
    start = time.perf_counter()
    result = train_and_evaluate(get_spec(job["preset"]), job["resolution"], config, job["seed"])
    return {
        **{k: job[k] for k in ("variant", "preset", "resolution", "seed")},
        "device": f"{job['device']} ({torch.cuda.get_device_name() if job['device'] == 'cuda' else 'cpu'})",
        "torch": torch.__version__,
        "train_seconds": result["train_seconds"],
        "accuracy": result["accuracy"],
        "by_font_size": result["by_font_size"],
        "seconds": round(time.perf_counter() - start, 1),
    }


def summarize(rows: list[dict]) -> list[dict]:
    from fastvitsearch import paper
    from fastvitsearch.accuracy.calibration import rank_agreement

    out = []
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant]
        summary = {"variant": variant, "mean_seconds": round(float(np.mean([r["seconds"] for r in mine])), 1)}
        for metric in ("TextVQA", "DocVQA"):
            published = paper.validation_points(metric)
            per_seed, values = [], []
            for p in published.itertuples():
                runs = [r["accuracy"] for r in mine if r["preset"] == p.preset and r["resolution"] == p.resolution]
                if runs:
                    per_seed.append(runs)
                    values.append(p.value)
            if len(values) >= 4:
                agreement = rank_agreement(per_seed, values, n_boot=500)
                summary[f"{metric}_tau"] = agreement.kendall_tau
                summary[f"{metric}_tau_ci95_seeds"] = agreement.tau_ci95_seeds
                summary[f"{metric}_rho"] = agreement.spearman_rho
        points = {}
        for r in mine:
            points.setdefault(f"{r['preset']}@{r['resolution']}", []).append(r["accuracy"])
        summary["proxy"] = {k: round(float(np.mean(v)), 1) for k, v in points.items()}
        out.append(summary)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", help="JSON file: {name: {setting: value}}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--loader-workers", type=int, default=0, help="page-drawing processes per run (GPU runs)")
    parser.add_argument("--out", default="proxy_variants.jsonl")
    args = parser.parse_args()

    from fastvitsearch import paper

    variants = json.loads(Path(args.variants).read_text())
    points = paper.validation_points("TextVQA")
    points = points[points["preset"].isin(PROXY_SCALABLE)]
    jobs = [
        {"variant": name, "settings": settings, "preset": p.preset, "resolution": int(p.resolution), "seed": seed}
        | {"device": args.device, "loader_workers": args.loader_workers}
        for name, settings in variants.items()
        for seed in args.seeds
        for p in points.itertuples()
    ]
    rows = []
    # not a multiprocessing.Pool: its workers are daemons, which may not start page-drawing processes
    with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool, open(args.out, "w") as handle:
        for done in as_completed([pool.submit(run_one, job) for job in jobs]):
            row = done.result()
            rows.append(row)
            handle.write(json.dumps(row) + "\n")
            handle.flush()
            print(json.dumps(row), flush=True)
    for summary in summarize(rows):
        print(json.dumps(summary))
    Path(args.out).with_suffix(".summary.json").write_text(json.dumps(summarize(rows), indent=1))


if __name__ == "__main__":
    main()
