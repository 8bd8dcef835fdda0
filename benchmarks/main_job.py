"""How long the README's main job takes here: empty measurement cache, then a rerun of the finished study.

Runs ``python -m fastvitsearch.sweep +experiment=res_vs_llm`` in a scratch folder with an empty
``FASTVITSEARCH_CACHE``, times it, reruns it on the finished study, and splits the timed runs by
kind from the cache it filled (median x (runs + warm-up), so an estimate of the time spent timing).
Targets (issue 15): <= 120 s with an empty cache, <= 3 s for the rerun. Writes
``benchmarks/results/main_job.md`` (appends one row per run, so every attempt stays).

    python benchmarks/main_job.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from fastvitsearch.profile.timing import cpu_model

RESULTS = Path(__file__).parent / "results" / "main_job.md"
COMMAND = [sys.executable, "-m", "fastvitsearch.sweep", "+experiment=res_vs_llm", "quiet=true"]
HEADER = """# The README's main job: wall time (benchmarks/main_job.py)

`python -m fastvitsearch.sweep +experiment=res_vs_llm` in a scratch folder, empty
`FASTVITSEARCH_CACHE`, then once more on the finished study. Targets (issue 15): empty cache <= 120 s,
rerun <= 3 s. "timed runs" = median x (runs + warm-up) summed per kind from the cache the run
filled: an estimate of the time spent timing. One row per run, every run kept.

| date | machine | commit | empty cache s | rerun s | timed s: enc. / prefill / proj. | slow encoders, 3+ runs |
|---|---|---|---|---|---|---|
"""


def _run(folder: Path, cache: Path) -> float:
    start = time.perf_counter()
    subprocess.run(COMMAND, cwd=folder, env={**os.environ, "FASTVITSEARCH_CACHE": str(cache)}, check=True)
    return time.perf_counter() - start


def _timed_runs(cache: Path) -> tuple[dict[str, float], int]:
    seconds: dict[str, float] = {}
    third_runs = 0
    for path in cache.rglob("*.json"):
        entry = json.loads(path.read_text())
        kind, value = entry.get("key", {}).get("kind"), entry.get("value", entry)
        if kind not in ("encoder", "prefill", "projector"):
            continue
        seconds[kind] = seconds.get(kind, 0.0) + value["median_ms"] * (value["n"] + 1) / 1e3
        third_runs += kind == "encoder" and value["median_ms"] > 1000 and value["n"] >= 3
    return seconds, third_runs


def main() -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as scratch:
        folder, cache = Path(scratch) / "run", Path(scratch) / "cache"
        folder.mkdir()
        empty = _run(folder, cache)
        rerun = _run(folder, cache)
        seconds, third_runs = _timed_runs(cache)
    row = (
        f"| {date.today()} | {cpu_model()}, {os.cpu_count()} cores, 1 thread | {commit} | {empty:.0f} | {rerun:.1f} | "
        f"{seconds.get('encoder', 0):.0f} / {seconds.get('prefill', 0):.0f} / {seconds.get('projector', 0):.0f} | "
        f"{third_runs} |\n"
    )
    lines = (RESULTS.read_text() if RESULTS.exists() else HEADER).splitlines(keepends=True)
    last = max(i for i, line in enumerate(lines) if line.startswith("|"))  # under the table, above the notes
    RESULTS.write_text("".join(lines[: last + 1]) + row + "".join(lines[last + 1 :]))
    print(row, end="")


if __name__ == "__main__":
    main()
