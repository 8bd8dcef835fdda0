"""Does the accuracy proxy rank encoders the way the paper's benchmarks do?

Runs the proxy (``fastvitsearch/accuracy/proxy.py``) on every (encoder, resolution) the paper
publishes TextVQA for in one setting (LLaVA-1.5 recipe, Vicuna-7B; ``paper.validation_points``),
with several seeds, and reports Kendall tau-b and Spearman rho between the seed-mean proxy and
the published numbers, with bootstrap intervals (over seeds, and over points). The task is
designed on TextVQA; DocVQA and the other published metrics are reported as they come out.

Every attempt (a named set of proxy settings) is appended to ``results/proxy_validity/attempts.csv``
and keeps its runs (``<attempt>.json``), so the table shows every try, not only the best.
``--write-calibration default`` makes an attempt's runs the package's calibration
(``fastvitsearch/data/proxy_calibration.json``, used by ``accuracy=proxy_calibrated``).

    python benchmarks/proxy_validity.py --attempt v2-default --seeds 0 1 2 [--set steps=400] \
        [--device cuda] [--write-calibration]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import pandas as pd
import torch

from fastvitsearch import paper  # noqa: E402
from fastvitsearch.accuracy.calibration import (  # noqa: E402
    PACKAGED,
    MonotoneMap,
    ProxyRun,
    ProxyRuns,
    rank_agreement,
)
from fastvitsearch.accuracy.proxy import PROXY_VERSION, ProxyAccuracy, ProxyConfig, proxy_config  # noqa: E402
from fastvitsearch.presets import get_spec  # noqa: E402
from fastvitsearch.report import png  # noqa: E402
from fastvitsearch.spec import SpecError  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "proxy_validity"
DATA = Path(__file__).parents[1] / "fastvitsearch" / "data"
#: metrics reported beside TextVQA (not designed on)
OTHER_METRICS = ("DocVQA", "ChartQA", "OCRBench", "GQA", "SQA", "POPE", "SeedBench-I", "MMMU")


def parse_settings(pairs: list[str]) -> dict:
    settings = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        settings[key] = json.loads(value)
    return settings


def machine() -> str:
    return (
        f"{platform.node() or 'host'} ({platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads), torch {torch.__version__}"
    )


def run_points(config: ProxyConfig, seeds: list[int], cache_dir: str | None) -> list[ProxyRun]:
    source = ProxyAccuracy(seeds=seeds, cache_dir=cache_dir, **dataclasses.asdict(config))
    runs = []
    for row in paper.validation_points("TextVQA").itertuples():
        try:
            get_spec(row.preset).scaled(config.width_scale, config.depth_scale)
        except SpecError as err:  # a timm-model preset (ConvNeXt-L/XXL): no scaled copy to train
            print(f"  {row.preset}@{row.resolution}: skipped ({err})")
            continue
        accuracies, seconds = [], 0.0
        for seed in seeds:
            result = source.run(get_spec(row.preset), int(row.resolution), seed)  # cached like a sweep's runs
            accuracies.append(round(result["accuracy"], 3))
            seconds += result["train_seconds"]
            took = result["train_seconds"]
            print(f"  {row.preset}@{row.resolution} seed {seed}: {result['accuracy']:.1f} %  ({took} s)")
        runs.append(ProxyRun(row.preset, int(row.resolution), tuple(seeds), tuple(accuracies), round(seconds, 1)))
    return runs


def runs_from_file(path: Path, variant: str) -> tuple[str, tuple[ProxyRun, ...]]:
    """Runs measured elsewhere by ``proxy_variants.py`` (e.g. on a lent GPU): its JSON lines of
    ``variant``, grouped per validation point (the settings are this command's ``--set``)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("variant") == variant]
    if not rows:
        raise SystemExit(f"--from-runs: no rows of variant {variant!r} in {path}")
    runs = []
    for p in paper.validation_points("TextVQA").itertuples():
        mine = sorted(
            (r for r in rows if r["preset"] == p.preset and r["resolution"] == p.resolution), key=lambda r: r["seed"]
        )
        if mine:
            runs.append(
                ProxyRun(
                    p.preset,
                    int(p.resolution),
                    tuple(r["seed"] for r in mine),
                    tuple(round(r["accuracy"], 3) for r in mine),
                    round(sum(r.get("train_seconds", r["seconds"]) for r in mine), 1),
                )
            )
    where = sorted({f"{r.get('device', '?')}, torch {r.get('torch', '?')}" for r in rows})
    return f"{'; '.join(where)} (proxy_variants.py, {path.name})", tuple(runs)


def agreement_rows(attempt: str, runs: ProxyRuns) -> list[dict]:
    rows = []
    for metric in ("TextVQA", *OTHER_METRICS):
        paired, published, _ = runs.paired(metric)
        if len(paired) < 4:
            continue
        agreement = rank_agreement([r.accuracy for r in paired], published)
        fitted = MonotoneMap.fit(metric, [r.mean for r in paired], published)
        rows.append(
            {
                "attempt": attempt,
                "metric": metric,
                "designed_on": metric == "TextVQA",
                "points": agreement.n_points,
                "kendall_tau": agreement.kendall_tau,
                "tau_ci95_seeds": agreement.tau_ci95_seeds,
                "tau_ci95_points": agreement.tau_ci95_points,
                "spearman_rho": agreement.spearman_rho,
                "rho_ci95_seeds": agreement.rho_ci95_seeds,
                "fit_loo_rmse": round(fitted.loo_rmse, 2),
                "fit": f"{fitted.intercept:.1f} + {fitted.slope:.3f} x proxy",
            }
        )
    return rows


def baseline_rows(runs: ProxyRuns) -> list[dict]:
    """What scores that need no training get on the same points: the input resolution alone and
    the visual-token count alone. A proxy earns its cost only by what these miss, so the pairs at
    one resolution (where only the architecture differs) are counted separately."""
    rows = []
    for metric in ("TextVQA", "DocVQA"):
        paired, published, _ = runs.paired(metric)
        if len(paired) < 4:
            continue
        scores = {
            "input resolution": [float(r.resolution) for r in paired],
            "visual tokens": [float(get_spec(r.preset).tokens(r.resolution)) for r in paired],
            "proxy (this attempt)": [r.mean for r in paired],
        }
        for name, score in scores.items():
            same_res = [
                (i, j)
                for i in range(len(paired))
                for j in range(i + 1, len(paired))
                if paired[i].resolution == paired[j].resolution and published[i] != published[j]
            ]
            agree = sum((score[i] - score[j]) * (published[i] - published[j]) > 0 for i, j in same_res)
            rows.append(
                {
                    "metric": metric,
                    "score": name,
                    "kendall_tau": rank_agreement([[v] for v in score], published, n_boot=1).kendall_tau,
                    "same-resolution pairs ordered as published": f"{agree} of {len(same_res)}",
                }
            )
    return rows


def figure(attempt: str, runs: ProxyRuns, tau: float, path: Path) -> None:
    png.proxy_validity(runs, "TextVQA", f"Proxy vs published TextVQA [{attempt}]: Kendall tau {tau:.2f}", path)


def points_table(runs: ProxyRuns) -> pd.DataFrame:
    rows = []
    for run in runs.runs:
        row = {
            "point": f"{run.preset}@{run.resolution}",
            "proxy_mean": round(run.mean, 2),
            "proxy_sd": round(run.sd, 2),
            "per_seed": " / ".join(f"{a:.1f}" for a in run.accuracy),
            "train_s": run.train_seconds,
        }
        for metric in ("TextVQA", "DocVQA"):
            hit = paper.validation_points(metric)
            hit = hit[(hit["preset"] == run.preset) & (hit["resolution"] == run.resolution)]
            row[f"{metric} (published)"] = f"{hit['value'].iloc[0]} ({hit['table'].iloc[0]})" if len(hit) else ""
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempt", required=True, help="name of this attempt (a row of attempts.csv)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON", help="proxy settings, e.g. steps=400")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--note", default="", help="what this attempt changed, for the table")
    parser.add_argument("--from-runs", help="proxy_variants.py JSON lines of this attempt (runs measured elsewhere)")
    parser.add_argument(
        "--baselines-only",
        action="store_true",
        help="recompute the no-training baselines of an attempt already run (its <attempt>.json) and stop",
    )
    parser.add_argument(
        "--write-calibration",
        choices=["default", "tiny"],
        help="make these runs the package's calibration (default) or the smoke test's (tiny)",
    )
    args = parser.parse_args()

    if args.baselines_only:
        runs = ProxyRuns.from_json((RESULTS / f"{args.attempt}.json").read_text())
        print(pd.DataFrame(baseline_rows(runs)).to_markdown(index=False))
        return
    config = proxy_config(parse_settings(args.set))
    RESULTS.mkdir(parents=True, exist_ok=True)
    print(f"attempt {args.attempt}: proxy v{PROXY_VERSION} {dataclasses.asdict(config)}, seeds {args.seeds}")
    start = time.perf_counter()
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()}
    if args.from_runs:
        measured_on, point_runs = runs_from_file(Path(args.from_runs), args.attempt)
    else:
        measured_on, point_runs = machine(), tuple(run_points(config, args.seeds, args.cache_dir))
    runs = ProxyRuns(PROXY_VERSION, settings, measured_on, point_runs)
    (RESULTS / f"{args.attempt}.json").write_text(runs.to_json())
    rows = agreement_rows(args.attempt, runs)
    for row in rows:
        row["note"] = args.note
        row["proxy_settings"] = runs.fingerprint
        row["measured_on"] = runs.measured_on
        row["wall_s"] = round(time.perf_counter() - start)
    attempts_path = RESULTS / "attempts.csv"
    attempts = pd.read_csv(attempts_path) if attempts_path.exists() else pd.DataFrame()
    if len(attempts):
        attempts = attempts[attempts["attempt"] != args.attempt]
    attempts = pd.concat([attempts, pd.DataFrame(rows)], ignore_index=True)
    attempts.to_csv(attempts_path, index=False)
    textvqa = next(r for r in rows if r["metric"] == "TextVQA")
    figure(args.attempt, runs, textvqa["kendall_tau"], RESULTS / f"{args.attempt}.png")
    table = points_table(runs)
    (RESULTS / f"{args.attempt}.md").write_text(
        f"# Proxy validity, attempt `{args.attempt}`\n\n{args.note}\n\nMeasured on {runs.measured_on}; "
        f"proxy v{PROXY_VERSION} settings `{runs.fingerprint}`: `{json.dumps(runs.config)}`.\n\n"
        + table.to_markdown(index=False)
        + "\n\n"
        + pd.DataFrame(rows)[
            ["metric", "designed_on", "points", "kendall_tau", "tau_ci95_seeds", "tau_ci95_points", "spearman_rho"]
        ].to_markdown(index=False)
        + "\n\nBaselines that need no training, on the same points (`baseline_rows`):\n\n"
        + pd.DataFrame(baseline_rows(runs)).to_markdown(index=False)
        + "\n"
    )
    print(table.to_string(index=False))
    print(
        pd.DataFrame(rows)[["metric", "points", "kendall_tau", "tau_ci95_seeds", "spearman_rho"]].to_string(index=False)
    )
    if args.write_calibration:
        target = DATA / PACKAGED[None if args.write_calibration == "default" else args.write_calibration]
        target.write_text(runs.to_json())
        print(f"calibration written: {target}")


if __name__ == "__main__":
    main()
