"""The Optuna study behind a sweep: storage, the queue of points, resume, heartbeats.

The one adapter over Optuna: every use of its private API (``study._storage``, a frozen trial's
``_trial_id``) is in this module, so an Optuna upgrade touches one file. Sweeps and workers
share it.
"""

from __future__ import annotations

import contextlib
import json
import threading
import warnings
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from fastvitsearch.results import sqlite_url
from fastvitsearch.spec import SpecError

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


def _check_url(url: str, directory: Path) -> None:
    """Refuse storages that would lose results or fail later with a raw traceback."""
    if url.startswith("journal:"):
        folder = Path(url.removeprefix("journal:")).parent
        if not folder.is_dir():
            raise SpecError("storage", f"the journal file's folder {folder} does not exist")
        return
    if "://" not in url:
        raise SpecError("storage", f"{url!r} is not a storage URL (sqlite:///path.db, postgresql://…, journal:path)")
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if not path or path == ":memory:":
            raise SpecError("storage", f"{url!r} keeps the study in memory: nothing could be resumed; name a file")
        db = Path(path)
        if not db.parent.is_dir():
            raise SpecError("storage", f"the database folder {db.parent} does not exist")
        if db.exists() and db.stat().st_size == 0:
            raise SpecError(
                "storage",
                f"{db} is empty (0 bytes), not a study; nothing was changed (results.csv beside it is kept). "
                "Move it away to start a new study there, or restore it",
            )


def make_storage(options: StorageOptions, directory: Path) -> optuna.storages.BaseStorage | str:
    """The study's storage. Workers get heartbeats, so a killed worker's trial is failed after
    ``grace_s`` and re-enqueued (Optuna's RetryHeartbeatStaleTrialCallback); ``journal:<file>``
    selects Optuna's JournalStorage for shared file systems."""
    url = options.url or sqlite_url(directory)
    _check_url(url, directory)
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
    """Create or load the study; objective names are set so dashboards and reports label them.
    A storage that cannot be opened (a corrupt file, a missing driver, a bad URL) is a
    :class:`SpecError` naming ``storage``; nothing is written before it opens."""
    try:
        study = optuna.create_study(
            study_name=name, storage=storage, sampler=sampler, directions=list(objectives.values()), load_if_exists=True
        )
    except ImportError as err:  # Optuna's "Failed to import DB access module" for a missing driver
        raise SpecError(
            "storage", f"no database driver for this URL ({err}); pip install -e '.[postgres]' adds PostgreSQL's"
        ) from None
    except ValueError as err:  # directions differ from the stored study's
        raise SpecError("objectives", f"study {name!r}: {err}") from None
    except Exception as err:  # noqa: BLE001 - sqlalchemy's errors: corrupt file, bad URL, no server
        if not type(err).__module__.startswith("sqlalchemy"):
            raise
        first = str(err).splitlines()[0]
        raise SpecError("storage", f"cannot open the study's storage ({type(err).__name__}: {first})") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(objectives))
    return study


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def check_fingerprint(study: optuna.Study, fingerprint: dict[str, Any]) -> None:
    """Store what defines the study's results on its first run; refuse a rerun that differs,
    saying what differs and how to start a new study (a grid may grow: it is not part of it)."""
    stored = study.user_attrs.get("fingerprint")
    if stored is None:
        if studies_are_empty(study):
            study.set_user_attr("fingerprint", fingerprint)
        return
    old, new = _flatten(stored), _flatten(json.loads(json.dumps(fingerprint)))
    differs = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if differs:
        changes = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in differs[:4])
        raise SpecError(
            "study_name",
            f"study {study.study_name!r} holds results of another setting ({changes}"
            + (f"; +{len(differs) - 4} more" if len(differs) > 4 else "")
            + "). Start a new study with study_name=<new name>, or run with the study's own settings",
        )


def studies_are_empty(study: optuna.Study) -> bool:
    """No trial has finished yet (an older study without a fingerprint gets none written)."""
    return not trials(study, FINISHED)


def trials(study: optuna.Study, states: Iterable[TrialState] | None = None) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=tuple(states) if states is not None else None)


def fixed_params(trial: FrozenTrial) -> dict[str, Any]:
    """The params a trial was enqueued with, and those it suggested."""
    return {**trial.system_attrs.get("fixed_params", {}), **trial.params}


def queued_params(trial: optuna.Trial) -> dict[str, Any]:
    """The params a running trial was enqueued with (a grid point's key among them)."""
    return study_storage(trial.study).get_trial_system_attrs(trial._trial_id).get("fixed_params", {})


def study_storage(study: optuna.Study) -> optuna.storages.BaseStorage:
    return study._storage


def is_interrupted(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.FAIL and trial.user_attrs.get("error") == INTERRUPTED


def finished_count(study: optuna.Study) -> int:
    """Finished trials that count against a search's budget (a killed trial and a repeat do not)."""
    return sum(not is_interrupted(t) and not is_repeat(t) for t in trials(study, FINISHED))


#: user attr of a trial whose point was already evaluated (the trial number that evaluated it)
REPEAT_ATTR = "repeat_of"


def is_repeat(trial: FrozenTrial | optuna.Trial) -> bool:
    return REPEAT_ATTR in trial.user_attrs


def evaluated(study: optuna.Study) -> dict[str, int]:
    """``{point identity: trial number}`` of points evaluated (complete, pruned or running, not
    failed: a failed point may be tried again)."""
    done = trials(study, (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
    out: dict[str, int] = {}
    for t in sorted(done, key=lambda t: t.number):
        identity = t.user_attrs.get("identity")
        if identity and not is_repeat(t):
            out.setdefault(identity, t.number)
    return out


#: user attrs that define what a queued trial evaluates (an anchor's preset), kept by its retry
KEPT_ON_RETRY = ("anchor",)


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
        kept = {k: trial.user_attrs[k] for k in KEPT_ON_RETRY if k in trial.user_attrs}
        study.enqueue_trial(params, user_attrs={"retry_of": trial.number, **kept}, skip_if_exists=False)
        recovered += 1
    return recovered


def queued_or_done_points(study: optuna.Study) -> set[str]:
    """Grid points finished, running or queued (an interrupted trial's point is not done)."""
    states = (*FINISHED, TrialState.RUNNING, TrialState.WAITING)
    return {fixed_params(t).get("point") for t in trials(study, states) if not is_interrupted(t)}


def enqueue_points(study: optuna.Study, points: dict[str, dict[str, Any]]) -> int:
    """Queue every point not yet in the study (any state): run once, before workers start, so
    that workers only pop queued points and no point is ever run twice. ``points`` maps a point's
    key to its params (encoder, resolution, LLM): separate params, so a grid can grow or shrink
    between runs of one study."""
    present = queued_or_done_points(study)
    added = 0
    for key, params in points.items():
        if key not in present:
            study.enqueue_trial({"point": key, **params}, user_attrs={"point": key}, skip_if_exists=False)
            added += 1
    return added


def _beats(storage: optuna.storages.BaseStorage) -> bool:
    """Whether the storage keeps heartbeats (Optuna's own test, public methods only)."""
    return hasattr(storage, "record_heartbeat") and storage.get_heartbeat_interval() is not None


def queued(study: optuna.Study, points: Container[str] | None = None) -> list[FrozenTrial]:
    """Queued (WAITING) trials, only those of ``points`` when given (a narrowed grid leaves the
    others queued for the run that asks for them)."""
    waiting = trials(study, (TrialState.WAITING,))
    return waiting if points is None else [t for t in waiting if fixed_params(t).get("point") in points]


def claim_queued(study: optuna.Study, points: Container[str] | None = None) -> optuna.Trial | None:
    """Pop one queued (WAITING) trial atomically, as ``Study.ask`` does, but never sample a new
    one: with several workers a sampled grid point could duplicate a queued one."""
    storage = study._storage
    for frozen in queued(study, points):
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
