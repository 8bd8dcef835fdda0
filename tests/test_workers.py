"""Scale-out: 4 workers on one grid study in a real PostgreSQL server, one SIGKILLed mid-trial;
every grid point ends COMPLETE exactly once and nothing recorded before the kill is lost.
The same with SQLite documents its limits (one machine, a whole-file lock per write)."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_dir

import fastvitsearch.sweep as sweep_module
from fastvitsearch.config import CONF_DIR
from fastvitsearch.workers import prepare, training_threads, worker_command

sys.path.insert(0, str(Path(__file__).parent))
from postgres import postgres_server, unavailable_reason  # noqa: E402

CONF = str(CONF_DIR)
GRID = 6  # the smoke grid


def _overrides(tmp_path, storage):
    return [
        "+experiment=smoke",
        f"output_dir={tmp_path / 'study'}",
        f"storage={storage}",
        "quiet=true",
        f"device.cache_dir={tmp_path / 'cache'}",
        "device.timing.warmup_seconds=1.0",
        "workers.heartbeat_s=1",
        "workers.grace_s=6",  # generous: a live worker on a busy 2-core runner must not look dead
        "workers.poll_s=0.3",
    ]


def _run_with_a_kill(tmp_path, storage, workers):
    overrides = _overrides(tmp_path, storage)
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    study = prepare(cfg)
    assert len(study.get_trials(states=(optuna.trial.TrialState.WAITING,))) == GRID
    # the victim measures into its own cache: a point another worker has already measured would
    # otherwise finish in milliseconds (a cache hit) and the kill could land between two trials
    own_cache = [
        f"device.cache_dir={tmp_path / 'cache_victim'}" if o.startswith("device.cache_dir=") else o for o in overrides
    ]
    procs = [
        subprocess.Popen(
            worker_command(own_cache if i == 0 else overrides, i),
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(workers)
    ]
    victim, deadline = procs[0], time.time() + 240
    while time.time() < deadline:
        running = [
            t
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            if t.user_attrs.get("worker") == "0" and "point" in t.user_attrs
        ]
        if running:
            break
        time.sleep(0.05)
    completed_before = {t.number: t.values for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))}
    os.kill(victim.pid, signal.SIGKILL)
    for p in procs[1:]:
        assert p.wait(timeout=300) == 0, p.stderr.read().decode()[-2000:]
    victim.wait()
    trials = optuna.load_study(study_name="smoke", storage=storage).get_trials()
    complete = Counter(t.user_attrs["point"] for t in trials if t.state.name == "COMPLETE")
    assert len(complete) == GRID and set(complete.values()) == {1}  # every point, exactly once
    for number, values in completed_before.items():  # nothing recorded before the kill is lost
        assert trials[number].state.name == "COMPLETE" and trials[number].values == values
    killed = [t for t in trials if t.state.name == "FAIL"]
    assert len(killed) == 1 and killed[0].user_attrs.get("worker") == "0"
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == killed[0].number]
    assert len(retried) == 1 and retried[0].state.name == "COMPLETE"
    return trials


@pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))
def test_four_workers_on_postgresql_survive_a_killed_worker(tmp_path):
    with postgres_server() as url:
        trials = _run_with_a_kill(tmp_path, url, workers=4)
    assert len({t.user_attrs.get("worker") for t in trials}) >= 2  # the work was really shared


def test_sqlite_works_for_a_few_local_workers(tmp_path):
    # SQLite's limits: one file lock for every write, so workers must share one machine (no NFS)
    # and contend on every heartbeat; fine for a few local processes, not for a cluster.
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    _run_with_a_kill(tmp_path, storage, workers=2)


def test_a_live_worker_whose_trial_was_failed_as_stale_goes_on(tmp_path, monkeypatch):
    """A heartbeat delayed past the grace period gets a live worker's trial failed and its point
    queued again by another worker; the slow worker must drop its result and keep working."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    overrides = [*_overrides(tmp_path, storage), "worker=true", "worker_id=0"]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    study = prepare(cfg)
    real_evaluate = sweep_module.evaluate
    failed_behind_its_back = []

    def evaluate_while_another_worker_fails_the_trial(point, *args, **kwargs):
        if not failed_behind_its_back:
            (trial,) = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
            # as Optuna's RetryHeartbeatStaleTrialCallback does: the retry keeps the trial's params and
            # system attrs (a grid point's key is in its enqueued fixed params)
            params = {**trial.system_attrs.get("fixed_params", {}), **trial.params}
            study.enqueue_trial(params, user_attrs={"point": point.key})
            failed_behind_its_back.append(point.key)
        return real_evaluate(point, *args, **kwargs)

    monkeypatch.setattr(sweep_module, "evaluate", evaluate_while_another_worker_fails_the_trial)
    outcome = sweep_module.run_sweep(cfg)
    trials = optuna.load_study(study_name="smoke", storage=storage).get_trials()
    complete = Counter(t.user_attrs["point"] for t in trials if t.state.name == "COMPLETE")
    assert len(complete) == GRID and set(complete.values()) == {1}
    assert outcome.ran == GRID + 1 and outcome.failed == 1


def test_proxy_training_threads_are_split_between_workers(monkeypatch):
    from omegaconf import OmegaConf

    monkeypatch.setattr("os.cpu_count", lambda: 16)
    cfg = OmegaConf.create({"accuracy": {"sources": ["proxy_calibrated"]}})
    assert training_threads(cfg, [], 4) == ["accuracy.proxy_calibrated.threads=4"]
    assert training_threads(cfg, ["accuracy.proxy_calibrated.threads=1"], 4) == []  # the user's choice stands
    assert training_threads(OmegaConf.create({"accuracy": {"sources": ["published"]}}), [], 4) == []
