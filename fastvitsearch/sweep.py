"""``python -m fastvitsearch.sweep +experiment=<name> [overrides]``: the main job.

A Hydra config becomes a :class:`SweepSetup` (validated once, typed objects from there on) and
an Optuna study (Optuna 5, driven here: the hydra-optuna-sweeper plugin pins optuna 2.x) whose
trials are (encoder, resolution, LLM) points. Two strategies choose the points: a grid (every
point queued once, popped in order) or a sampler search over a space (NSGA-II, TPE, random).
Each trial's :class:`~fastvitsearch.record.TrialRecord` row is a user attr; failed points are
FAIL trials with their error and the sweep goes on; a point no accuracy source covers is PRUNED
with every source's reason. Re-running the same command resumes. The results table is
rewritten after every trial.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState
from tqdm import tqdm

from fastvitsearch import study as studies
from fastvitsearch.accuracy import AccuracySource, make_sources
from fastvitsearch.config import check_known_keys, register_configs
from fastvitsearch.pareto import dominates, pareto_front
from fastvitsearch.point import OVER_BUDGET, Point, Screen, evaluate
from fastvitsearch.profile.devices import Device, device_from_config
from fastvitsearch.profile.runtimes import RuntimeMismatch
from fastvitsearch.record import TrialRecord
from fastvitsearch.results import RECORD_ATTR, sqlite_url, trials_table, write_meta, write_tables
from fastvitsearch.space import anchor_trials, grid_points, suggest_point, validate_space
from fastvitsearch.spec import SpecError
from fastvitsearch.study import INTERRUPTED, StorageOptions

__all__ = ["INTERRUPTED", "SweepAborted", "SweepOutcome", "SweepSetup", "run_sweep"]


class SweepAborted(RuntimeError):
    """Too many trials failed; everything recorded so far is kept."""


@dataclass
class SweepOutcome:
    study: optuna.Study
    directory: Path
    ran: int
    failed: int


# --- strategies: which point each trial evaluates ----------------------------------------------
@dataclass
class GridStrategy:
    """Every grid point once: points not yet in the study are queued, then popped in order."""

    points: dict[str, Point]
    name: str = "grid"

    def sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.RandomSampler(seed=seed)  # never samples: every point is queued

    def prepare(self, study: optuna.Study) -> int:
        params = {key: {"resolution": p.resolution} for key, p in self.points.items()}
        return studies.enqueue_points(study, params)

    def planned(self, study: optuna.Study) -> int:
        waiting = len(studies.queued(study, self.points))
        return waiting + len(set(self.points) - studies.queued_or_done_points(study))

    def next_trial(self, study: optuna.Study, ran: int, planned: int, shared: bool) -> optuna.Trial | None:
        return studies.claim_queued(study, self.points)

    def exhausted(self, study: optuna.Study) -> bool:
        return False  # a grid is done when nothing is queued and nothing runs

    def point(self, trial: optuna.Trial) -> Point:
        """The queued point (by its key: a grid may have changed since it was queued). Resolution is
        an Optuna param (one int distribution for every grid), encoder and LLM user attrs, so
        dashboards can filter by them."""
        key = studies.queued_params(trial).get("point")
        if key not in self.points:
            raise SpecError("grid", f"queued point {key!r} is not in this run's grid (it was queued by another run)")
        point = self.points[key]
        trial.suggest_int("resolution", 1, 1 << 16)
        trial.set_user_attr("encoder", point.label)
        trial.set_user_attr("llm", point.llm.name if point.llm else None)
        return point


@dataclass
class SamplerStrategy:
    """An Optuna sampler over a search space; the paper's encoders are enqueued as anchors."""

    name: str
    space: dict[str, Any]
    n_trials: int
    options: dict[str, Any] = field(default_factory=dict)

    def sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        if self.name == "nsga2":
            return optuna.samplers.NSGAIISampler(population_size=int(self.options["population_size"]), seed=seed)
        if self.name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True)
        return optuna.samplers.RandomSampler(seed=seed)

    def prepare(self, study: optuna.Study) -> int:
        if studies.trials(study):
            return 0
        anchors = anchor_trials(self.space)
        for params, attrs in anchors:
            study.enqueue_trial(params, user_attrs=attrs)
        return len(anchors)

    def planned(self, study: optuna.Study) -> int:
        return max(0, self.n_trials - studies.finished_count(study))

    def next_trial(self, study: optuna.Study, ran: int, planned: int, shared: bool) -> optuna.Trial | None:
        if not shared:
            return studies.ask(study) if ran < planned else None
        if self.exhausted(study):
            return None
        return studies.claim_queued(study) or studies.ask(study)

    def exhausted(self, study: optuna.Study) -> bool:
        started = studies.trials(study, (*studies.FINISHED, TrialState.RUNNING))
        return sum(not studies.is_repeat(t) for t in started) >= self.n_trials

    def point(self, trial: optuna.Trial) -> Point:
        return suggest_point(trial, self.space)


Strategy = GridStrategy | SamplerStrategy
#: a sampler that keeps proposing evaluated points has nothing new left to try
MAX_REPEATS_IN_A_ROW = 50
SEARCH_NAMES = ("grid", "nsga2", "tpe", "random")


# --- the set-up, validated once -----------------------------------------------------------------
#: record columns that hold numbers a study can optimize
NUMERIC_COLUMNS = (
    "visual_tokens",
    "output_stride",
    "feature_width",
    "params",
    "params_reparameterized",
    "macs",
    "macs_conv",
    "macs_linear",
    "macs_attention",
    "encoder_ms",
    "projector_ms",
    "prefill_ms",
    "ttft_ms",
    "accuracy",
)


def objectives_of(cfg: DictConfig) -> dict[str, str]:
    """``{record column: direction}`` from ``objectives.minimize`` / ``objectives.maximize`` lists."""
    unknown = sorted(set(cfg.objectives) - {"minimize", "maximize"})
    if unknown:
        raise SpecError(f"objectives.{unknown[0]}", "objectives take two lists: minimize and maximize")
    objectives: dict[str, str] = {}
    for direction in ("minimize", "maximize"):
        names = cfg.objectives.get(direction) or []
        if not OmegaConf.is_list(names) and not isinstance(names, list):
            raise SpecError(f"objectives.{direction}", f"must be a list of columns, e.g. [{names}]; got {names!r}")
        for name in names:
            if name not in NUMERIC_COLUMNS:
                raise SpecError(
                    f"objectives.{direction}", f"{name!r} is not a numeric record column; one of {NUMERIC_COLUMNS}"
                )
            if name in objectives:
                raise SpecError(f"objectives.{direction}", f"{name!r} is also in objectives.{objectives[name]}")
            objectives[name] = direction
    if not objectives:
        raise SpecError("objectives", "name at least one field to minimize or maximize")
    return objectives


def _selected(cfg: DictConfig, group: str) -> dict[str, Any] | None:
    """The config of a group chosen on the command line (``llm=qwen2_7b``), or None."""
    value = cfg.get(group)
    return OmegaConf.to_container(value, resolve=True) if value is not None else None


#: grid shortcuts a sampler search does not read, and what its space does instead
GRID_SHORTCUTS = {
    "resolution": "it draws resolutions from space.resolution=[…]",
    "llm": "it draws LLMs from space.llm=[…]",
    "encoder": "the paper's encoders are its anchors (space.anchors) and it varies the hybrid builder's knobs",
    "tiling": "a searched point is one image (tiling applies to grid points)",
}


def _refuse_grid_shortcuts(cfg: DictConfig, search: str) -> None:
    """A sampler search draws its points from ``space``: ``resolution=[512]`` or ``llm=qwen2_7b``
    would otherwise be ignored silently (they narrow a grid)."""
    for key, instead in GRID_SHORTCUTS.items():
        if cfg.get(key) is not None:
            raise SpecError(key, f"narrows a grid, which search={search} does not use: {instead}")


def study_fingerprint(cfg: DictConfig, objectives: dict[str, str]) -> dict[str, Any]:
    """What defines a study's results: where and how it is timed, how it is scored, what it optimizes.
    The grid (it may grow) and bookkeeping options (``force``, ``cache_dir``) are not part of it."""
    device = {
        k: v for k, v in OmegaConf.to_container(cfg.device, resolve=True).items() if k not in ("force", "cache_dir")
    }
    return {
        "device": device,
        "accuracy": OmegaConf.to_container(cfg.accuracy, resolve=True),
        "objectives": objectives,
        "text_tokens": int(cfg.text_tokens),
        "search": cfg.search.name,
    }


def _command(cfg: DictConfig) -> str:
    """The command line that reproduces this run (Hydra's overrides when run from the CLI)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:  # composed in-process (tests, notebooks): the config in meta.json is exact
        overrides = [f"+experiment={cfg.name}", "# composed in-process; full config in meta.json"]
    return " ".join(["python -m fastvitsearch.sweep", *overrides])


@dataclass
class SweepSetup:
    """Everything a sweep needs, built once from the config: typed objects, not config keys."""

    name: str
    study_name: str
    directory: Path
    storage: StorageOptions
    objectives: dict[str, str]
    device: Device
    sources: list[AccuracySource]
    metric: str
    strategy: Strategy
    seed: int
    ttft_budget_ms: float | None
    #: ``screen_latency``: predict every sampled design, measure those that can reach the front
    screened: bool
    text_tokens: int
    retry_failed: bool
    worker: bool
    worker_id: str
    heartbeat_s: float
    poll_s: float
    max_wait_s: float
    max_failure_rate: float
    min_trials_before_abort: int
    #: ``time_budget_s``: no trial starts after this many seconds of the run (None: no limit)
    time_budget_s: float | None
    quiet: bool
    fingerprint: dict[str, Any]
    meta: dict[str, Any]

    @classmethod
    def from_config(cls, cfg: DictConfig) -> SweepSetup:
        check_known_keys(cfg)
        objectives = objectives_of(cfg)
        if not cfg.study_name or any(c in str(cfg.study_name) for c in "/\\") or str(cfg.study_name).startswith("."):
            raise SpecError("study_name", f"{cfg.study_name!r} must be a plain name (no '/', '\\', leading '.')")
        search = cfg.search
        if search.name not in SEARCH_NAMES:
            raise SpecError("search.name", f"unknown search {search.name!r}; one of {', '.join(SEARCH_NAMES)}")
        if search.name == "grid":
            points = grid_points(
                OmegaConf.to_container(cfg.grid, resolve=True),
                resolution=cfg.resolution,
                llm=_selected(cfg, "llm"),
                encoder=_selected(cfg, "encoder"),
                tiling=cfg.get("tiling"),
            )
            strategy: Strategy = GridStrategy({p.key: p for p in points})
        else:
            if cfg.get("space") is None:
                raise SpecError("space", f"search={search.name} needs a search space (space=hybrid)")
            if int(search.n_trials) < 1:
                raise SpecError("search.n_trials", f"must be >= 1, got {search.n_trials}")
            _refuse_grid_shortcuts(cfg, search.name)
            options = OmegaConf.to_container(search, resolve=True)
            space = OmegaConf.to_container(cfg.space, resolve=True)
            validate_space(space)
            strategy = SamplerStrategy(search.name, space, int(search.n_trials), options)
        accuracy = OmegaConf.to_container(cfg.accuracy, resolve=True)
        sources = make_sources(list(accuracy["sources"]), accuracy)
        budget = cfg.get("ttft_budget_ms")
        time_budget = cfg.get("time_budget_s")
        if time_budget is not None and (
            isinstance(time_budget, bool) or not isinstance(time_budget, int | float) or time_budget <= 0
        ):
            raise SpecError("time_budget_s", f"must be a positive number of seconds or null, got {time_budget!r}")
        workers = cfg.workers
        return cls(
            name=cfg.name,
            study_name=cfg.study_name,
            directory=Path(cfg.output_dir),
            storage=StorageOptions(
                cfg.storage, bool(cfg.worker), int(workers.heartbeat_s), int(workers.grace_s), int(workers.max_retry)
            ),
            objectives=objectives,
            device=device_from_config(OmegaConf.to_container(cfg.device, resolve=True)),
            sources=sources,
            metric=accuracy["metric"],
            strategy=strategy,
            seed=int(search.get("seed", 0)),
            ttft_budget_ms=float(budget) if budget is not None else None,
            screened=bool(cfg.get("screen_latency", False)),
            text_tokens=int(cfg.text_tokens),
            retry_failed=bool(cfg.retry_failed),
            worker=bool(cfg.worker),
            worker_id=str(cfg.worker_id),
            heartbeat_s=float(workers.heartbeat_s),
            poll_s=float(workers.poll_s),
            max_wait_s=float(workers.max_wait_s),
            max_failure_rate=float(cfg.max_failure_rate),
            min_trials_before_abort=int(cfg.min_trials_before_abort),
            time_budget_s=float(time_budget) if time_budget is not None else None,
            quiet=bool(cfg.quiet),
            fingerprint=study_fingerprint(cfg, objectives),
            meta={
                "experiment": cfg.name,
                "study": cfg.study_name,
                "objectives": objectives,
                "ttft_budget_ms": budget,
                "command": _command(cfg),
                "config": OmegaConf.to_container(cfg, resolve=True),
            },
        )

    def open(self) -> optuna.Study:
        """Open (or create) the study, refusing one whose results were defined by another config."""
        storage = studies.make_storage(self.storage, self.directory)
        study = studies.open_study(self.study_name, storage, self.objectives, self.strategy.sampler(self.seed))
        studies.check_fingerprint(study, self.fingerprint)
        return study

    def say(self, line: str) -> None:
        if not self.quiet:
            print(line)


# --- running ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def _exclusive(setup: SweepSetup) -> Iterator[None]:
    """One local sweep per study (its folder's SQLite, or one study name in a shared storage URL on
    this machine); holding the lock proves RUNNING trials are stale. Sweeps on several machines
    share a study as workers (``worker=true``)."""
    setup.directory.mkdir(parents=True, exist_ok=True)
    if setup.storage.url:
        digest = hashlib.sha256(f"{setup.storage.url}#{setup.study_name}".encode()).hexdigest()[:16]
        path, what = Path(tempfile.gettempdir()) / f"fastvitsearch-study-{digest}.lock", f"study {setup.study_name!r}"
    else:
        path, what = setup.directory / ".sweep.lock", str(setup.directory)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SpecError("output_dir", f"another sweep is running on {what} (its lock is held)") from None
        yield


def _summary(record: TrialRecord, objectives: dict[str, str]) -> str:
    parts = []
    for name in objectives:
        value = getattr(record, name, None)
        number = value.value if hasattr(value, "value") else value
        source = value.kind if hasattr(value, "kind") else "counted"
        if "extrapolated" in getattr(value, "label", ""):
            source += ", extrapolated"
        parts.append(f"{name}={number:.4g} ({source})" if isinstance(number, float | int) else f"{name}=n/a")
    return "  ".join(parts)


def _objective_value(record: TrialRecord, name: str) -> float | None:
    row = record.to_row()
    if name not in row:
        raise SpecError("objectives", f"{name!r} is not a record column; columns: {', '.join(TrialRecord.columns())}")
    value = row[name]
    return None if value is None else float(value)


def _bounds(row: dict[str, Any], objectives: dict[str, str], optimistic: bool) -> dict[str, float] | None:
    """A record row's objective values, its latencies moved to the end of a predicted encoder
    latency's error that favours it (``optimistic``) or counts against it."""
    values = {n: row.get(n) for n in objectives}
    if any(v is None for v in values.values()):
        return None
    if str(row.get("encoder_ms_source", "")).startswith("predicted") and row.get("encoder_ms_error"):
        shift = row["encoder_ms"] * row["encoder_ms_error"] * (-1.0 if optimistic else 1.0)
        for name in ("encoder_ms", "ttft_ms"):
            if name in values:
                values[name] += shift
    return values


def front_screen(study: optuna.Study, objectives: dict[str, str]) -> Screen:
    """The screening rule: measure a candidate unless a scored point dominates it even with the
    candidate's predicted latency at the low end of its error and the other's at its high end."""

    directions = list(objectives.values())

    def screen(record: TrialRecord) -> str | None:
        candidate = _bounds(record.to_row(), objectives, optimistic=True)
        if candidate is None:
            return None
        for trial in studies.trials(study, (TrialState.COMPLETE,)):
            other = _bounds(trial.user_attrs.get(RECORD_ATTR) or {}, objectives, optimistic=False)
            if other is not None and dominates(list(other.values()), list(candidate.values()), directions):
                point = trial.user_attrs.get("point", f"trial {trial.number}")
                return f"dominated by {point} (trial {trial.number}) within the prediction's error"
        return None

    return screen


def _evaluate_trial(setup: SweepSetup, trial: optuna.Trial) -> tuple[TrialState, list[float] | None, str]:
    """Run one trial: (state, objective values, the line to print). Raises what it cannot record."""
    point = setup.strategy.point(trial)
    trial.set_user_attr("point", point.key)
    identity = point.identity
    trial.set_user_attr("identity", identity)
    earlier = studies.evaluated(trial.study).get(identity)
    if earlier is not None and earlier != trial.number:
        # the sampler drew a point already evaluated: its record stands, this draw costs nothing
        trial.set_user_attr(studies.REPEAT_ATTR, earlier)
        return TrialState.PRUNED, None, f"{point.key}: repeat of trial {earlier} (same architecture, resolution, LLM)"
    # anchors are always scored: they are what the search's designs are compared with
    anchor = bool(trial.user_attrs.get("anchor"))
    budget = None if anchor else setup.ttft_budget_ms
    screen = front_screen(trial.study, setup.objectives) if setup.screened and not anchor else None
    record = evaluate(point, setup.device, setup.sources, setup.metric, setup.text_tokens, budget, screen)
    trial.set_user_attr(RECORD_ATTR, record.to_row())
    if setup.ttft_budget_ms is not None and record.ttft_ms is not None:
        excess = record.ttft_ms.value - setup.ttft_budget_ms  # feasible when <= 0
        trial.set_constraint("ttft_budget_ms", excess)
        trial.set_user_attr("ttft_over_budget_ms", excess)
    values = {name: _objective_value(record, name) for name in setup.objectives}
    missing = [name for name, value in values.items() if value is None]
    if missing and any(r.startswith(OVER_BUDGET) for r in record.refusals):
        message = next(r for r in record.refusals if r.startswith(OVER_BUDGET))
        trial.set_user_attr("missing", message)
        return TrialState.PRUNED, None, f"{point.key}: infeasible, {message}"
    if missing:
        reasons = "; ".join(record.refusals) or "no accuracy source configured"
        message = f"no value for {', '.join(missing)} ({reasons})"
        trial.set_user_attr("missing", message)
        return TrialState.PRUNED, None, f"{point.key}: PRUNED, {message}"
    return TrialState.COMPLETE, list(values.values()), f"{point.key}: {_summary(record, setup.objectives)}"


def _out_of_time(setup: SweepSetup, started: float, ran: int, planned: int) -> bool:
    """Whether ``time_budget_s`` has run out: then no trial starts (the running one has finished
    and is recorded), and rerunning the same command continues the study where it stopped."""
    elapsed = time.monotonic() - started
    if setup.time_budget_s is None or elapsed < setup.time_budget_s:
        return False
    setup.say(
        f"stopped: time_budget_s={setup.time_budget_s:g} reached after {ran} trial(s) in {elapsed:.0f} s; "
        f"{max(0, planned - ran)} planned trial(s) left: rerun the same command to continue the study"
    )
    return True


def _next_trial(setup: SweepSetup, study: optuna.Study, ran: int, planned: int) -> optuna.Trial | None:
    """The next trial to run, or None when this process is done.

    Alone: the strategy's next point until the plan is done. As a worker: fail trials whose
    heartbeat expired (their points are re-queued), then take a point; with none left, wait while
    other workers still run trials that could fail back into the queue.
    """
    if not setup.worker:
        return setup.strategy.next_trial(study, ran, planned, shared=False)
    deadline = time.monotonic() + setup.max_wait_s
    while True:
        studies.fail_stale(study)
        trial = setup.strategy.next_trial(study, ran, planned, shared=True)
        if trial is not None or setup.strategy.exhausted(study):
            return trial
        if not studies.trials(study, (TrialState.RUNNING,)):
            return None
        if time.monotonic() > deadline:
            print(f"worker {setup.worker_id}: stopped waiting for other workers' trials after {setup.max_wait_s} s")
            return None
        time.sleep(setup.poll_s)


def prepare(setup: SweepSetup) -> tuple[optuna.Study, int]:
    """Open the study, re-queue interrupted points (local sweeps) and queue the strategy's points."""
    study = setup.open()
    recovered = 0
    if not setup.worker:
        study.set_user_attr("experiment", setup.name)
        write_meta(setup.directory, setup.meta)
        recovered = studies.recover_interrupted(study, setup.retry_failed)
        setup.strategy.prepare(study)
    return study, recovered


def run_sweep(cfg: DictConfig) -> SweepOutcome:
    return run(SweepSetup.from_config(cfg))


def run(setup: SweepSetup) -> SweepOutcome:
    for source in setup.sources:
        for line in source.diagnostics():
            setup.say(f"accuracy source {source.name}: {line}")
    # a local sweep owns its folder (so RUNNING trials there are stale); workers share a study
    with contextlib.nullcontext() if setup.worker else _exclusive(setup):
        study, recovered = prepare(setup)
        planned = setup.strategy.planned(study)
        setup.say(
            f"study {setup.study_name!r} in {setup.directory}: {planned} trial(s) to run"
            + (f", {recovered} interrupted point(s) re-enqueued" if recovered else "")
            + (f" (worker {setup.worker_id}, shared with others)" if setup.worker else "")
        )
        ran = failed = repeats = 0
        started = time.monotonic()
        bar = tqdm(total=planned, disable=setup.quiet or not sys.stderr.isatty(), unit="trial", dynamic_ncols=True)
        while (
            not _out_of_time(setup, started, ran, planned)
            and (trial := _next_trial(setup, study, ran, planned)) is not None
        ):
            start = time.perf_counter()
            state, values, message = TrialState.FAIL, None, ""
            with studies.heartbeat(study, trial, setup.heartbeat_s):
                try:
                    if setup.worker:
                        trial.set_user_attr("worker", setup.worker_id)
                    state, values, line = _evaluate_trial(setup, trial)
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
                study.tell(trial, values, state=state, skip_if_finished=True)
            if studies.is_repeat(trial):
                repeats += 1
                if repeats >= MAX_REPEATS_IN_A_ROW:
                    setup.say(
                        f"stopped: the sampler drew {repeats} already-evaluated points in a row (space exhausted?)"
                    )
                    break
                if not setup.quiet:
                    tqdm.write(f"[repeat] {line}")
                continue
            repeats = 0
            ran += 1
            if not setup.worker:  # workers leave the table to the launcher (a shared file is a race)
                write_tables(study, setup.directory)
            bar.update(1)
            if not setup.quiet:
                tqdm.write(f"[{ran}/{planned}] {line}  ({time.perf_counter() - start:.1f} s)")
            if ran >= setup.min_trials_before_abort and failed / ran > setup.max_failure_rate:
                bar.close()
                raise SweepAborted(
                    f"max_failure_rate: {failed} of {ran} trials failed ({failed / ran:.0%} > "
                    f"{setup.max_failure_rate:.0%}); last error: {message}. "
                    f"Recorded trials are kept in {setup.directory}"
                )
        bar.close()
        if not setup.worker:
            write_tables(study, setup.directory)
    return SweepOutcome(study, setup.directory, ran, failed)


def front_table(outcome: SweepOutcome, objectives: dict[str, str]) -> str:
    """The Pareto front as text (run_sweep already wrote the tables; this only reads the study)."""
    table = trials_table(outcome.study)
    done = table[table["state"] == "COMPLETE"] if len(table) else table
    if done.empty:
        return "no completed trials: no Pareto front"
    front = pareto_front(done, objectives)
    columns = ["point", *objectives, *[f"{o}_source" for o in objectives if f"{o}_source" in front]]
    return front[[c for c in columns if c in front]].to_string(index=False)


def finish(outcome: SweepOutcome, cfg: DictConfig) -> None:
    """What a local run prints at the end: the front, where the results are, the report."""
    objectives = objectives_of(cfg)
    print(f"\nPareto front ({', '.join(f'{k}: {v}' for k, v in objectives.items())}):")
    print(front_table(outcome, objectives))
    failed = [t for t in studies.trials(outcome.study, (TrialState.FAIL,)) if not studies.is_interrupted(t)]
    retried = {t.user_attrs.get("retry_of") for t in studies.trials(outcome.study)}
    left = [t for t in failed if t.number not in retried]
    if left:
        print(
            f"\n{len(left)} point(s) failed and were not retried (e.g. {left[0].user_attrs.get('point')}: "
            f"{left[0].user_attrs.get('error')}); fix the cause and rerun with retry_failed=true"
        )
    pruned = studies.trials(outcome.study, (TrialState.PRUNED,))
    if pruned:
        print(
            f"\n{len(pruned)} point(s) pruned (no value for an objective); first: {pruned[0].user_attrs.get('missing')}"
        )
    print(
        f"\nresults: {outcome.directory}/results.csv (and .parquet); "
        f"ran {outcome.ran} trial(s), {outcome.failed} failed"
    )
    if cfg.storage is None:
        print(f"dashboard: optuna-dashboard {sqlite_url(outcome.directory)}")
    if cfg.report:
        from fastvitsearch.report.stamp import is_current

        if is_current(outcome.directory, Path(cfg.report_dir)):  # nothing to redraw: no plotting imports
            index = Path(cfg.report_dir) / "index.html"
            print(f"report: {index} (unchanged: the results are the same as when it was built)")
            return
        from fastvitsearch.report.build import build_report

        report = build_report(outcome.directory, cfg.report_dir, only_if_changed=True)
        state = "" if report.rebuilt else " (unchanged: the results are the same as when it was built)"
        print(f"report: {report.html} (+ {len(report.pngs)} PNG figures){state}")


register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        outcome = run_sweep(cfg)
    except (SpecError, RuntimeMismatch, SweepAborted) as err:
        sys.exit(f"error: {err}")
    except OSError as err:  # a folder that cannot be written, a full disk: nothing recorded is lost
        sys.exit(f"error: output_dir: {err}")
    if outcome.ran and outcome.failed == outcome.ran:
        sys.exit(f"error: all {outcome.ran} trial(s) failed; their errors are in {outcome.directory}/results.csv")
    if cfg.worker:  # the launcher writes the table, the front and the report once all workers end
        print(f"worker {cfg.worker_id}: ran {outcome.ran} trial(s), {outcome.failed} failed")
        return
    finish(outcome, cfg)


if __name__ == "__main__":
    main()
