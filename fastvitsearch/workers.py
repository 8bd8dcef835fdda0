"""``python -m fastvitsearch.workers n=4 +experiment=<name> storage=postgresql://…``

Scale a sweep out without a scheduler of our own: Optuna's RDB storage (PostgreSQL) is the
shared state. This launcher prepares the study once (creates it and queues every grid point —
or a search's anchors — not yet in it), starts ``n`` local worker processes running the same
sweep command with ``worker=true``, waits for them, then writes the results table and the
report. Each worker pops queued points atomically, so a grid point runs exactly once; a worker
killed mid-trial stops sending heartbeats, and after ``workers.grace_s`` another worker fails
that trial and its point is queued again (Optuna's RetryHeartbeatStaleTrialCallback). On a
cluster, run the launcher with ``n=0`` once (prepare only) and start workers yourself, e.g. a
SLURM array (README).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import hydra
import optuna
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from fastvitsearch.config import check_known_keys, register_configs
from fastvitsearch.results import write_tables
from fastvitsearch.spec import SpecError
from fastvitsearch.sweep import SweepSetup, finish, run_sweep


def prepare(cfg: DictConfig) -> optuna.Study:
    """Create (or open) the study and queue the strategy's missing points; no trial runs here."""
    with open_dict(cfg):
        cfg.worker = True
    setup = SweepSetup.from_config(cfg)
    setup.directory.mkdir(parents=True, exist_ok=True)
    study = setup.open()
    added = setup.strategy.prepare(study)
    setup.say(f"study {setup.study_name!r}: {added} point(s) queued")
    return study


#: accuracy sources that train (a proxy run per point): their threads are split between workers
TRAINING_SOURCES = ("proxy", "proxy_calibrated")


def training_threads(cfg: DictConfig, overrides: list[str], workers: int) -> list[str]:
    """Overrides that give each of ``workers`` processes its share of this machine's cores for proxy
    training (one sweep alone uses them all), unless the user set the threads."""
    sources = list((cfg.get("accuracy") or {}).get("sources") or [])
    share = max(1, (os.cpu_count() or 1) // max(1, workers))
    return [
        f"accuracy.{name}.threads={share}"
        for name in TRAINING_SOURCES
        if name in sources and not any(o.startswith(f"accuracy.{name}.threads=") for o in overrides)
    ]


def worker_command(overrides: list[str], worker_id: int) -> list[str]:
    kept = [o for o in overrides if not o.startswith(("n=", "worker=", "worker_id="))]
    return [sys.executable, "-m", "fastvitsearch.sweep", *kept, "worker=true", f"worker_id={worker_id}", "report=false"]


def check_cores(cfg: DictConfig) -> None:
    """Refuse local workers whose timings would share cores: ``n`` workers each timing with
    ``device.threads`` threads need that many cores, or every timing waits on another worker's
    (on this project's 2-core VM a busy neighbour core made inference ~15x slower). A GPU is
    one device per worker, so ``device=cuda`` takes one local worker per GPU (:func:`worker_env`).
    ``workers.shared_cores=true`` accepts the contention (throughput tests, fault drills)."""
    device = cfg.get("device") or {}
    name = device.get("name")
    if cfg.n <= 1 or name not in ("cpu", "cuda") or (cfg.get("workers") or {}).get("shared_cores"):
        return
    if name == "cpu":
        threads = int(device.get("threads") or 1)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if cfg.n * threads > cores:
            raise SpecError(
                "n",
                f"{cfg.n} workers x device.threads={threads} need {cfg.n * threads} cores to time without "
                f"waiting on each other; this machine has {cores}: use n<={max(1, cores // threads)} "
                "(workers.shared_cores=true accepts contended timings)",
            )
        return
    import torch

    gpus = torch.cuda.device_count()
    if cfg.n > gpus:
        raise SpecError(
            "n",
            f"{cfg.n} local workers would time on {gpus} GPU(s) at once; use n<={max(1, gpus)}, or start one "
            "worker per GPU yourself (CUDA_VISIBLE_DEVICES) as on a cluster (workers.shared_cores=true "
            "accepts contended timings)",
        )


def worker_env(cfg: DictConfig, worker_id: int) -> dict[str, str] | None:
    """``device=cuda``: worker i sees only the i-th visible GPU (``torch.device("cuda")`` is GPU 0
    in every process otherwise, so all workers would time on one GPU); else the launcher's env."""
    if (cfg.get("device") or {}).get("name") != "cuda":
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = visible.split(",") if visible else [str(i) for i in range(int(cfg.n))]
    return {**os.environ, "CUDA_VISIBLE_DEVICES": gpus[worker_id % len(gpus)].strip()}


def launch(cfg: DictConfig, overrides: list[str]) -> int:
    """Prepare, run ``cfg.n`` workers, then write the table. Returns the number of failed workers."""
    if isinstance(cfg.n, bool) or not isinstance(cfg.n, int) or cfg.n < 0:
        raise SpecError("n", f"the number of workers must be a whole number >= 0, got {cfg.n!r}")
    check_known_keys(cfg, "workers")  # before any check reads a setting a typo would hide
    check_cores(cfg)
    study = prepare(cfg)
    overrides = [*overrides, *training_threads(cfg, overrides, int(cfg.n))]
    processes = [subprocess.Popen(worker_command(overrides, i), env=worker_env(cfg, i)) for i in range(int(cfg.n))]
    failed = sum(p.wait() != 0 for p in processes)
    table = write_tables(study, Path(cfg.output_dir))
    if not cfg.quiet:
        print(f"{len(table)} trial(s) in the study; {failed} worker(s) exited with an error")
    return failed


register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="workers")
def main(cfg: DictConfig) -> None:
    try:
        failed = launch(cfg, list(HydraConfig.get().overrides.task))
        if cfg.n == 0:
            return
        # one more local pass writes meta.json, prints the front and (report=true) the report
        with open_dict(cfg):
            cfg.worker = False
        outcome = run_sweep(cfg)
    except SpecError as err:
        sys.exit(f"error: {err}")
    finish(outcome, cfg)
    if failed:
        sys.exit(f"error: {failed} worker(s) failed")


if __name__ == "__main__":
    main()
