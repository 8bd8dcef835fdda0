"""``python -m fastvitsearch.workers n=4 +experiment=<name> storage=postgresql://…``

Scale a sweep out without a scheduler of our own: Optuna's RDB storage (PostgreSQL) is the
shared state. This launcher prepares the study once (creates it and queues every grid point
not yet in it), starts ``n`` local worker processes running the same sweep command with
``worker=true``, waits for them, then writes the results table and the report. Each worker pops
queued points atomically, so a grid point runs exactly once; a worker killed mid-trial stops
sending heartbeats, and after ``workers.grace_s`` another worker fails that trial and its point
is queued again (Optuna's RetryHeartbeatStaleTrialCallback). On a cluster, run the launcher with
``n=0`` once (prepare only) and start workers yourself, e.g. a SLURM array (README).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import hydra
import optuna
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from fastvitsearch.results import write_tables
from fastvitsearch.space import grid_points
from fastvitsearch.spec import SpecError
from fastvitsearch.sweep import _selected, enqueue_grid, front_table, make_storage, objectives_of, run_sweep


def prepare(cfg: DictConfig) -> optuna.Study:
    """Create (or open) the study and queue the grid's missing points; no trial runs here."""
    with open_dict(cfg):
        cfg.worker = True
    directory = Path(cfg.output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    objectives = objectives_of(cfg)
    study = optuna.create_study(
        study_name=cfg.study_name,
        storage=make_storage(cfg, directory),
        directions=list(objectives.values()),
        load_if_exists=True,
    )
    if cfg.search.name == "grid":
        points = grid_points(
            OmegaConf.to_container(cfg.grid, resolve=True),
            resolution=cfg.resolution,
            llm=_selected(cfg, "llm"),
            encoder=_selected(cfg, "encoder"),
        )
        added = enqueue_grid(study, points)
        if not cfg.quiet:
            print(f"study {cfg.study_name!r}: {added} point(s) queued, {len(points) - added} already in the study")
    return study


def worker_command(overrides: list[str], worker_id: int) -> list[str]:
    kept = [o for o in overrides if not o.startswith(("n=", "worker=", "worker_id="))]
    return [sys.executable, "-m", "fastvitsearch.sweep", *kept, "worker=true", f"worker_id={worker_id}", "report=false"]


def launch(cfg: DictConfig, overrides: list[str]) -> int:
    """Prepare, run ``cfg.n`` workers, then write the table (and report). Returns failed workers."""
    study = prepare(cfg)
    processes = [subprocess.Popen(worker_command(overrides, i)) for i in range(int(cfg.n))]
    failed = sum(p.wait() != 0 for p in processes)
    directory = Path(cfg.output_dir)
    table = write_tables(study, directory)
    if not cfg.quiet:
        print(f"{len(table)} trial(s) in the study; {failed} worker(s) exited with an error")
    return failed


@hydra.main(version_base="1.3", config_path="../conf", config_name="workers")
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
    print(front_table(outcome, objectives_of(cfg)))
    if cfg.report:
        from fastvitsearch.report.build import build_report

        print(f"report: {build_report(outcome.directory, cfg.report_dir).html}")
    if failed:
        sys.exit(f"error: {failed} worker(s) failed")


if __name__ == "__main__":
    main()
