"""``python -m fastvitsearch.sweep +experiment=<name> [overrides]``: the main job.

A Hydra config becomes an Optuna study (Optuna 5, driven here: the hydra-optuna-sweeper plugin
pins optuna 2.x) whose trials are (encoder, resolution, LLM) points. Each trial's full record
is a user attr; failed points are FAIL trials with their error and the sweep goes on; a point
no accuracy source covers is PRUNED with the reason. Re-running the same command resumes:
finished trials are kept and not re-run, a trial interrupted by a killed process is failed as
``interrupted`` and its point re-enqueued. The results table is rewritten after every trial.
"""

from __future__ import annotations

import contextlib
import fcntl
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState
from tqdm import tqdm

from fastvitsearch.accuracy import make_sources
from fastvitsearch.pareto import pareto_front
from fastvitsearch.point import Point, evaluate
from fastvitsearch.profile.devices import device_from_config
from fastvitsearch.profile.runtimes import RuntimeMismatch
from fastvitsearch.results import RECORD_ATTR, sqlite_url, trials_table, write_meta, write_tables
from fastvitsearch.space import anchor_params, grid_points, suggest_point
from fastvitsearch.spec import SpecError

INTERRUPTED = "interrupted: the process running this trial died before it finished"


class SweepAborted(RuntimeError):
    """Too many trials failed; everything recorded so far is kept."""


@dataclass
class SweepOutcome:
    study: optuna.Study
    directory: Path
    ran: int
    failed: int


def _sampler(cfg: DictConfig) -> optuna.samplers.BaseSampler:
    """Constraints (the TTFT budget) reach NSGA-II and TPE through ``Trial.set_constraint``."""
    search = cfg.search
    seed = search.get("seed", 0)
    if search.name == "grid":  # never samples: every grid point is queued and popped (see enqueue_grid)
        return optuna.samplers.RandomSampler(seed=seed)
    if search.name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=search.population_size, seed=seed)
    if search.name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if search.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise SpecError("search.name", f"unknown search {search.name!r}; one of grid, nsga2, tpe, random")


@contextlib.contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """One local sweep per study folder; holding the lock proves RUNNING trials are stale."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".sweep.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SpecError("output_dir", f"another sweep is running on {directory} (its lock is held)") from None
        yield


def _recover_interrupted(study: optuna.Study, retry_failed: bool) -> int:
    """Fail trials left RUNNING by a killed process and enqueue their points again (and, with
    ``retry_failed``, the points of failed trials). A retry names its original in ``retry_of``."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    recovered = 0
    for trial in trials:
        if trial.state == TrialState.RUNNING:
            study._storage.set_trial_user_attr(trial._trial_id, "error", INTERRUPTED)
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        elif not (retry_failed and trial.state == TrialState.FAIL):
            continue
        # a queued point killed before its first suggest has it only in its fixed params; a sampled
        # trial killed there has none, so there is nothing to retry (a fresh one is sampled)
        params = trial.params or trial.system_attrs.get("fixed_params", {})
        if trial.number in retried or not params:
            continue
        study.enqueue_trial(params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
        recovered += 1
    return recovered


def make_storage(cfg: DictConfig, directory: Path) -> optuna.storages.BaseStorage | str:
    """The study's storage. Workers (``worker=true``) get heartbeats, so a killed worker's trial
    is failed after ``workers.grace_s`` and re-enqueued (Optuna's RetryHeartbeatStaleTrialCallback);
    ``journal:<file>`` selects Optuna's JournalStorage for shared file systems."""
    url = cfg.storage or sqlite_url(directory)
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    if not cfg.worker:
        return url
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=int(cfg.workers.heartbeat_s),
            grace_period=int(cfg.workers.grace_s),
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=int(cfg.workers.max_retry)
            ),
        )


def enqueue_grid(study: optuna.Study, points: list[Point]) -> int:
    """Queue every grid point not yet in the study (any state): run once, before workers start,
    so that workers only pop queued points and no point is ever run twice."""
    present = _done_keys(study) | {t.user_attrs.get("point") for t in study.get_trials(deepcopy=False)}
    added = 0
    for point in points:
        if point.key not in present:
            study.enqueue_trial({"point": point.key}, user_attrs={"point": point.key}, skip_if_exists=False)
            added += 1
    return added


def _beats(storage: optuna.storages.BaseStorage) -> bool:
    """Whether the storage keeps heartbeats (Optuna's own test, public methods only)."""
    return hasattr(storage, "record_heartbeat") and storage.get_heartbeat_interval() is not None


def _claim_queued(study: optuna.Study) -> optuna.Trial | None:
    """Pop one queued (WAITING) trial atomically, as ``Study.ask`` does, but never sample a new
    one: with several workers a sampled grid point could duplicate a queued one."""
    storage = study._storage
    for frozen in storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(frozen._trial_id, state=TrialState.RUNNING):
                if _beats(storage):
                    storage.record_heartbeat(frozen._trial_id)  # stale-able from the first moment
                return optuna.Trial(study, frozen._trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


@contextlib.contextmanager
def _heartbeat(study: optuna.Study, trial: optuna.Trial, interval: float) -> Iterator[None]:
    """Record the trial's heartbeat every ``interval`` s while it runs (worker mode)."""
    storage = study._storage
    if not _beats(storage):
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            storage.record_heartbeat(trial._trial_id)

    storage.record_heartbeat(trial._trial_id)
    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _done_keys(study: optuna.Study) -> set[str]:
    """Grid points finished, running or queued (an interrupted trial's point is not done)."""
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING)
    keys = set()
    for t in study.get_trials(deepcopy=False, states=states):
        if t.state == TrialState.FAIL and t.user_attrs.get("error") == INTERRUPTED:
            continue
        keys.add(t.params.get("point") or t.system_attrs.get("fixed_params", {}).get("point"))
    return keys


def _summary(record: dict[str, Any], objectives: dict[str, str]) -> str:
    parts = []
    for name in objectives:
        value = record.get(name)
        source = record.get(f"{name}_source") or record.get("counts_source", "counted").split(":")[0]
        parts.append(f"{name}={value:.4g} ({source})" if isinstance(value, float | int) else f"{name}=n/a")
    return "  ".join(parts)


def _command(cfg: DictConfig) -> str:
    """The command line that reproduces this run (Hydra's overrides when run from the CLI)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:  # composed in-process (tests, notebooks): the config in meta.json is exact
        overrides = [f"+experiment={cfg.name}", "# composed in-process; full config in meta.json"]
    return " ".join(["python -m fastvitsearch.sweep", *overrides])


def objectives_of(cfg: DictConfig) -> dict[str, str]:
    """``{field: direction}`` from ``objectives.minimize`` / ``objectives.maximize`` lists."""
    unknown = sorted(set(cfg.objectives) - {"minimize", "maximize"})
    if unknown:
        raise SpecError(f"objectives.{unknown[0]}", "objectives take two lists: minimize and maximize")
    objectives = {name: "minimize" for name in cfg.objectives.get("minimize") or []}
    objectives.update({name: "maximize" for name in cfg.objectives.get("maximize") or []})
    if not objectives:
        raise SpecError("objectives", "name at least one field to minimize or maximize")
    return objectives


def _selected(cfg: DictConfig, group: str) -> dict[str, Any] | None:
    """The config of a group chosen on the command line (``llm=qwen2_7b``), or None."""
    value = cfg.get(group)
    return OmegaConf.to_container(value, resolve=True) if value is not None else None


def run_sweep(cfg: DictConfig) -> SweepOutcome:
    directory = Path(cfg.output_dir)
    objectives = objectives_of(cfg)
    device = device_from_config(OmegaConf.to_container(cfg.device, resolve=True))
    sources = make_sources(list(cfg.accuracy.sources), OmegaConf.to_container(cfg.accuracy, resolve=True))
    metric = cfg.accuracy.metric
    is_grid = cfg.search.name == "grid"
    points = []
    if is_grid:
        points = grid_points(
            OmegaConf.to_container(cfg.grid, resolve=True),
            resolution=cfg.resolution,
            llm=_selected(cfg, "llm"),
            encoder=_selected(cfg, "encoder"),
        )
    by_key = {p.key: p for p in points}
    space = OmegaConf.to_container(cfg.space, resolve=True) if not is_grid else None
    budget = cfg.get("ttft_budget_ms")
    worker = bool(cfg.worker)
    # a local sweep owns its folder (so RUNNING trials there are stale); workers share a study
    with contextlib.nullcontext() if worker else _exclusive(directory):
        study = optuna.create_study(
            study_name=cfg.study_name,
            storage=make_storage(cfg, directory),
            sampler=_sampler(cfg),
            directions=list(objectives.values()),
            load_if_exists=True,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(objectives))
        if not worker:
            study.set_user_attr("experiment", cfg.name)
            write_meta(
                directory,
                {
                    "experiment": cfg.name,
                    "study": cfg.study_name,
                    "objectives": objectives,
                    "ttft_budget_ms": budget,
                    "command": _command(cfg),
                    "config": OmegaConf.to_container(cfg, resolve=True),
                },
            )
        recovered = 0 if worker else _recover_interrupted(study, bool(cfg.retry_failed))
        if is_grid and not worker:  # every point not yet done is queued, so none is sampled twice
            enqueue_grid(study, points)
        if space is not None and not study.trials:
            for params in anchor_params(space):
                study.enqueue_trial(params, user_attrs={"anchor": params["family"]})
        waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        if is_grid:
            planned = waiting if not worker else len(set(by_key) - _done_keys(study)) + waiting
        else:
            finished = sum(
                t.user_attrs.get("error") != INTERRUPTED  # a killed trial does not use up the budget
                for t in study.get_trials(
                    deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
                )
            )
            planned = max(0, int(cfg.search.n_trials) - finished)
        quiet = bool(cfg.quiet)
        if not quiet:
            print(
                f"study {cfg.study_name!r} in {directory}: {planned} trial(s) to run"
                + (f", {recovered} interrupted point(s) re-enqueued" if recovered else "")
                + (f" (worker {cfg.worker_id}, shared with others)" if worker else "")
            )
        ran = failed = 0
        bar = tqdm(total=planned, disable=quiet or not sys.stderr.isatty(), unit="trial", dynamic_ncols=True)
        while True:
            trial = _next_trial(cfg, study, ran, planned, is_grid)
            if trial is None:
                break
            start = time.perf_counter()
            state, values, message = TrialState.FAIL, None, ""
            with _heartbeat(study, trial, float(cfg.workers.heartbeat_s)):
                try:
                    if worker:
                        trial.set_user_attr("worker", str(cfg.worker_id))
                    if is_grid:
                        point: Point = by_key[trial.suggest_categorical("point", list(by_key))]
                    else:
                        point = suggest_point(trial, space)
                    trial.set_user_attr("point", point.key)
                    record = evaluate(point, device, sources, metric, int(cfg.text_tokens))
                    trial.set_user_attr(RECORD_ATTR, record)
                    if budget is not None and record.get("ttft_ms") is not None:
                        excess = float(record["ttft_ms"]) - float(budget)  # feasible when <= 0
                        trial.set_constraint("ttft_budget_ms", excess)
                        trial.set_user_attr("ttft_over_budget_ms", excess)
                    missing = [name for name in objectives if record.get(name) is None]
                    if missing:
                        state = TrialState.PRUNED
                        message = (
                            f"no value for {', '.join(missing)} "
                            f"(accuracy sources: {list(cfg.accuracy.sources)}, metric {metric})"
                        )
                        trial.set_user_attr("missing", message)
                        line = f"{point.key}: PRUNED, {message}"
                    else:
                        state, values = TrialState.COMPLETE, [float(record[name]) for name in objectives]
                        line = f"{point.key}: {_summary(record, objectives)}"
                except optuna.exceptions.UpdateFinishedTrialError:
                    # a worker whose heartbeat went stale finds its trial failed and its point queued
                    # again by another worker: the retry records the point, so this result is dropped
                    message = "failed by another worker (heartbeat missed); its point was queued again"
                    failed += 1
                    line = f"{trial.user_attrs.get('point', f'trial {trial.number}')}: dropped, {message}"
                except (Exception, MemoryError) as err:  # noqa: BLE001 - every failure becomes a FAIL record
                    message = f"{type(err).__name__}: {err}"
                    trial.set_user_attr("error", message)
                    failed += 1
                    line = f"{trial.user_attrs.get('point', f'trial {trial.number}')}: FAIL {message}"
                study.tell(trial, values, state=state, skip_if_finished=worker)
            ran += 1
            if not worker:  # workers leave the table to the launcher (a shared file is a race)
                write_tables(study, directory)
            bar.update(1)
            if not quiet:
                tqdm.write(f"[{ran}/{planned}] {line}  ({time.perf_counter() - start:.1f} s)")
            if ran >= cfg.min_trials_before_abort and failed / ran > cfg.max_failure_rate:
                bar.close()
                raise SweepAborted(
                    f"max_failure_rate: {failed} of {ran} trials failed ({failed / ran:.0%} > "
                    f"{cfg.max_failure_rate:.0%}); last error: {message}. Recorded trials are kept in {directory}"
                )
        bar.close()
        if not worker:
            write_tables(study, directory)
    return SweepOutcome(study, directory, ran, failed)


def _next_trial(cfg: DictConfig, study: optuna.Study, ran: int, planned: int, is_grid: bool) -> optuna.Trial | None:
    """The next trial to run, or None when this process is done.

    Alone: pop queued grid points until none is left, or ``study.ask()`` a search until the
    planned count. As a worker: fail trials whose heartbeat expired (their points are re-queued),
    then pop a queued point; with none queued, wait while other workers still run trials that
    could fail back into the queue.
    """
    if not cfg.worker:
        if is_grid:
            return _claim_queued(study)
        return study.ask() if ran < planned else None
    deadline = time.monotonic() + float(cfg.workers.max_wait_s)
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        if not is_grid:
            started = len(
                study.get_trials(
                    deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
                )
            )
            if started >= int(cfg.search.n_trials):
                return None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "heartbeat is meant for optimize()"
                return _claim_queued(study) or study.ask()
        trial = _claim_queued(study)
        if trial is not None:
            return trial
        if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            return None
        if time.monotonic() > deadline:
            print(f"worker {cfg.worker_id}: stopped waiting for other workers' trials after {cfg.workers.max_wait_s} s")
            return None
        time.sleep(float(cfg.workers.poll_s))


def front_table(outcome: SweepOutcome, objectives: dict[str, str]) -> str:
    """The Pareto front as text (run_sweep already wrote the tables; this only reads the study)."""
    table = trials_table(outcome.study)
    done = table[table["state"] == "COMPLETE"] if len(table) else table
    if done.empty:
        return "no completed trials: no Pareto front"
    front = pareto_front(done, objectives)
    columns = ["point", *objectives, *[f"{o}_source" for o in objectives if f"{o}_source" in front]]
    return front[[c for c in columns if c in front]].to_string(index=False)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        outcome = run_sweep(cfg)
    except (SpecError, RuntimeMismatch, SweepAborted) as err:
        sys.exit(f"error: {err}")
    objectives = objectives_of(cfg)
    if cfg.worker:  # the launcher writes the table, the front and the report once all workers end
        print(f"worker {cfg.worker_id}: ran {outcome.ran} trial(s), {outcome.failed} failed")
        return
    print(f"\nPareto front ({', '.join(f'{k}: {v}' for k, v in objectives.items())}):")
    print(front_table(outcome, objectives))
    print(
        f"\nresults: {outcome.directory}/results.csv (and .parquet); "
        f"ran {outcome.ran} trial(s), {outcome.failed} failed"
    )
    if cfg.storage is None:
        print(f"dashboard: optuna-dashboard {sqlite_url(outcome.directory)}")
    if cfg.report:
        from fastvitsearch.report.build import build_report

        report = build_report(outcome.directory, cfg.report_dir)
        print(f"report: {report.html} (+ {len(report.pngs)} PNG figures)")


if __name__ == "__main__":
    main()
