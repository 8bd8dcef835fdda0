"""The Optuna study behind a sweep: storage, the queue of points, resume, heartbeats.

The one adapter over Optuna: every use of its private API (``study._storage``, a frozen trial's
``_trial_id``) is in this module, so an Optuna upgrade touches one file. Sweeps and workers
share it.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from fastvitsearch.results import sqlite_url

INTERRUPTED = "interrupted: the process running this trial died before it finished"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass(frozen=True)
class StorageOptions:
    """Where the study lives and, for workers, how dead workers are detected."""

    url: str | None
    worker: bool = False
    heartbeat_s: int = 2
    grace_s: int = 10
    max_retry: int = 3


def make_storage(options: StorageOptions, directory: Path) -> optuna.storages.BaseStorage | str:
    """The study's storage. Workers get heartbeats, so a killed worker's trial is failed after
    ``grace_s`` and re-enqueued (Optuna's RetryHeartbeatStaleTrialCallback); ``journal:<file>``
    selects Optuna's JournalStorage for shared file systems."""
    url = options.url or sqlite_url(directory)
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    if not options.worker:
        return url
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=options.heartbeat_s,
            grace_period=options.grace_s,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=options.max_retry
            ),
        )


def open_study(
    name: str,
    storage: optuna.storages.BaseStorage | str,
    objectives: dict[str, str],
    sampler: optuna.samplers.BaseSampler | None = None,
) -> optuna.Study:
    """Create or load the study; objective names are set so dashboards and reports label them."""
    study = optuna.create_study(
        study_name=name, storage=storage, sampler=sampler, directions=list(objectives.values()), load_if_exists=True
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(objectives))
    return study


def trials(study: optuna.Study, states: Iterable[TrialState] | None = None) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=tuple(states) if states is not None else None)


def fixed_params(trial: FrozenTrial) -> dict[str, Any]:
    """The params a queued trial was enqueued with (before any suggest)."""
    return trial.params or trial.system_attrs.get("fixed_params", {})


def is_interrupted(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.FAIL and trial.user_attrs.get("error") == INTERRUPTED


def finished_count(study: optuna.Study) -> int:
    """Finished trials that count against a search's budget (a killed trial does not)."""
    return sum(not is_interrupted(t) for t in trials(study, FINISHED))


def recover_interrupted(study: optuna.Study, retry_failed: bool) -> int:
    """Fail trials left RUNNING by a killed process and enqueue their points again (and, with
    ``retry_failed``, the points of failed trials). A retry names its original in ``retry_of``."""
    storage = study._storage
    everything = trials(study)
    retried = {t.user_attrs.get("retry_of") for t in everything}
    recovered = 0
    for trial in everything:
        if trial.state == TrialState.RUNNING:
            storage.set_trial_user_attr(trial._trial_id, "error", INTERRUPTED)
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        elif not (retry_failed and trial.state == TrialState.FAIL):
            continue
        # a queued point killed before its first suggest has it only in its fixed params; a sampled
        # trial killed there has none, so there is nothing to retry (a fresh one is sampled)
        params = fixed_params(trial)
        if trial.number in retried or not params:
            continue
        study.enqueue_trial(params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
        recovered += 1
    return recovered


def queued_or_done_points(study: optuna.Study) -> set[str]:
    """Grid points finished, running or queued (an interrupted trial's point is not done)."""
    states = (*FINISHED, TrialState.RUNNING, TrialState.WAITING)
    return {fixed_params(t).get("point") for t in trials(study, states) if not is_interrupted(t)}


def enqueue_points(study: optuna.Study, keys: Iterable[str]) -> int:
    """Queue every point not yet in the study (any state): run once, before workers start, so
    that workers only pop queued points and no point is ever run twice."""
    present = queued_or_done_points(study)
    added = 0
    for key in keys:
        if key not in present:
            study.enqueue_trial({"point": key}, user_attrs={"point": key}, skip_if_exists=False)
            added += 1
    return added


def _beats(storage: optuna.storages.BaseStorage) -> bool:
    """Whether the storage keeps heartbeats (Optuna's own test, public methods only)."""
    return hasattr(storage, "record_heartbeat") and storage.get_heartbeat_interval() is not None


def claim_queued(study: optuna.Study) -> optuna.Trial | None:
    """Pop one queued (WAITING) trial atomically, as ``Study.ask`` does, but never sample a new
    one: with several workers a sampled grid point could duplicate a queued one."""
    storage = study._storage
    for frozen in trials(study, (TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(frozen._trial_id, state=TrialState.RUNNING):
                if _beats(storage):
                    storage.record_heartbeat(frozen._trial_id)  # stale-able from the first moment
                return optuna.Trial(study, frozen._trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


def ask(study: optuna.Study) -> optuna.Trial:
    """A new trial from the sampler (a queued one first, as ``Study.ask`` does)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "heartbeat is meant for optimize()"
        return study.ask()


def fail_stale(study: optuna.Study) -> None:
    """Fail trials whose worker stopped sending heartbeats (their points are queued again)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


@contextlib.contextmanager
def heartbeat(study: optuna.Study, trial: optuna.Trial, interval: float) -> Iterator[None]:
    """Record the trial's heartbeat every ``interval`` s while it runs (worker storages only)."""
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
