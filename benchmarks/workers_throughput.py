"""Trials per minute with 1, 2 and 4 local workers on the `smoke` experiment.

Each run uses a fresh study and a fresh measurement cache (so every trial really measures) in
PostgreSQL when the server binaries are installed (a throw-away server on loopback), else SQLite.
On a 2-core machine more than 2 timing workers only add contention; the numbers say how much.

    python benchmarks/workers_throughput.py [--workers 1 2 4]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from postgres import postgres_server, unavailable_reason  # noqa: E402


def run(workers: int, storage: str, folder: Path) -> float:
    command = [
        sys.executable,
        "-m",
        "fastvitsearch.workers",
        f"n={workers}",
        "+experiment=smoke",
        f"storage={storage}",
        f"output_dir={folder / 'study'}",
        f"device.cache_dir={folder / 'cache'}",
        "study_name=smoke",
        "quiet=true",
        "report=false",
        "workers.shared_cores=true",  # more workers than cores is what this benchmark measures
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=folder)
    minutes = (time.perf_counter() - start) / 60
    trials = optuna.load_study(study_name="smoke", storage=storage).get_trials()
    return sum(t.state.name == "COMPLETE" for t in trials) / minutes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    use_pg = unavailable_reason() is None
    print(
        f"storage: {'PostgreSQL (throw-away, loopback)' if use_pg else 'SQLite'}; smoke grid of 6 points; "
        "wall time includes process start-up and the launcher's final table"
    )
    base = None
    for n in args.workers:
        with tempfile.TemporaryDirectory() as tmp, postgres_server() if use_pg else nullcontext(None) as url:
            storage = url or f"sqlite:///{Path(tmp) / 'study.db'}"
            rate = run(n, storage, Path(tmp))
        base = base or rate
        print(f"  {n} worker(s): {rate:6.1f} trials/min  ({rate / base:.2f}x of 1 worker)")


if __name__ == "__main__":
    main()
