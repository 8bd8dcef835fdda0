"""Sweeps: Hydra config -> Optuna study, end to end on tiny specs; resume after SIGKILL;
failures recorded; overrides that change the trial set; arch search with anchors."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import fastvitsearch.sweep as sweep_module
from fastvitsearch import results
from fastvitsearch.config import CONF_DIR
from fastvitsearch.presets import get_spec
from fastvitsearch.space import grid_points, hybrid_from_knobs
from fastvitsearch.sweep import SweepAborted, run_sweep

CONF = str(CONF_DIR)
SMOKE_POINTS = 6


def _cfg(tmp_path, *overrides):
    cache = [] if "device=paper_m1max" in overrides else [f"device.cache_dir={tmp_path / 'cache'}"]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(
            config_name="config", overrides=[f"output_dir={tmp_path / 'study'}", "quiet=true", *cache, *overrides]
        )


def test_smoke_sweep_end_to_end(tmp_path):
    outcome = run_sweep(_cfg(tmp_path, "+experiment=smoke"))
    assert outcome.ran == SMOKE_POINTS and outcome.failed == 0
    table = results.load(tmp_path / "study")
    assert len(table) == SMOKE_POINTS and set(table["state"]) == {"COMPLETE"}
    assert (tmp_path / "study" / "results.csv").exists() and (tmp_path / "study" / "results.parquet").exists()
    row = table.iloc[0]
    assert ":sum of parts (measured" in row["ttft_ms_source"] and row["encoder_ms_source"].startswith("measured:")
    assert row["counts_source"].startswith("counted")
    study = optuna.load_study(study_name="smoke", storage=results.sqlite_url(tmp_path / "study"))
    assert study.metric_names == ["ttft_ms", "visual_tokens"]
    # a rerun resumes: nothing left to do
    assert run_sweep(_cfg(tmp_path, "+experiment=smoke")).ran == 0


def test_a_spent_time_budget_starts_no_trial_and_a_rerun_continues(tmp_path, capsys):
    slow = "device.timing.warmup_seconds=0.3"  # every trial outlasts the 0.2-s budget
    first = run_sweep(_cfg(tmp_path, "+experiment=smoke", slow, "time_budget_s=0.2", "quiet=false"))
    assert first.ran == 1  # the budget is checked before each trial: the first one ran, none after it
    said = capsys.readouterr().out
    assert "stopped: time_budget_s=0.2 reached after 1 trial(s)" in said
    assert f"{SMOKE_POINTS - 1} planned trial(s) left: rerun the same command to continue" in said
    table = results.load(tmp_path / "study")
    assert list(table["state"]).count("COMPLETE") == 1  # what ran is recorded; the grid's other points stay queued
    rest = run_sweep(_cfg(tmp_path, "+experiment=smoke", slow))
    assert rest.ran == SMOKE_POINTS - 1
    assert list(results.load(tmp_path / "study")["state"]) == ["COMPLETE"] * SMOKE_POINTS


def test_invalid_points_and_raising_trials_are_fail_records(tmp_path, monkeypatch):
    real_evaluate = sweep_module.evaluate

    def flaky(point, *args, **kwargs):
        if point.label == "tiny_vit":
            raise RuntimeError("simulated out of memory in tiny_vit")
        return real_evaluate(point, *args, **kwargs)

    monkeypatch.setattr(sweep_module, "evaluate", flaky)
    outcome = run_sweep(_cfg(tmp_path, "+experiment=smoke", "resolution=[64,100]", "max_failure_rate=0.9"))
    table = results.load(tmp_path / "study").set_index("point")
    assert outcome.ran == SMOKE_POINTS
    assert table.loc["tiny_fastvit@100+tiny_llm", "state"] == "FAIL"
    assert (
        "resolution: 100 px is not a multiple of the output stride 32; use 96 or 128"
        in table.loc["tiny_fastvit@100+tiny_llm", "error"]
    )
    assert table.loc["tiny_vit@64+tiny_llm", "error"] == "RuntimeError: simulated out of memory in tiny_vit"
    assert table.loc["tiny_fastvit@64+tiny_llm", "state"] == "COMPLETE"


def test_a_sweep_failing_everywhere_stops_with_a_clear_message_and_keeps_records(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_module, "evaluate", lambda *a, **k: (_ for _ in ()).throw(ValueError("broken")))
    with pytest.raises(SweepAborted, match=r"max_failure_rate: 4 of 4 trials failed"):
        run_sweep(_cfg(tmp_path, "+experiment=smoke"))
    states = results.load(tmp_path / "study")["state"].value_counts().to_dict()
    assert states == {"FAIL": 4, "WAITING": SMOKE_POINTS - 4}  # the points not reached stay queued for a rerun


def test_overrides_change_the_trial_set(tmp_path):
    base = _cfg(tmp_path, "+experiment=res_vs_llm")
    keys = [p.key for p in grid_points(OmegaConf.to_container(base.grid))]
    assert len(keys) == (2 + 4 + 4) * 3 + 7 and "vit_l14@336+vicuna_7b" in keys
    narrowed = _cfg(tmp_path, "+experiment=res_vs_llm", "llm=qwen2_7b", "resolution=[512,1024]")
    points = grid_points(
        OmegaConf.to_container(narrowed.grid), narrowed.resolution, OmegaConf.to_container(narrowed.llm), None
    )
    assert sorted(p.key for p in points) == sorted(
        f"{e}@{r}+qwen2_7b" for e in ("vit_l14", "fastvit", "fastvithd") for r in (512, 1024)
    )
    one = _cfg(tmp_path, "+experiment=res_vs_llm", "encoder=fastvithd")
    points = grid_points(OmegaConf.to_container(one.grid), None, None, OmegaConf.to_container(one.encoder))
    assert {p.label for p in points} == {"fastvithd"} and len(points) == 4 * 3 + 4


#: arch_search on the paper's M1 Max numbers with tokens as the second objective: seconds, no training
QUICK_SEARCH = [
    "+experiment=arch_search",
    "device=paper_m1max",
    "accuracy=none",
    "objectives.maximize=[visual_tokens]",
    "search.n_trials=8",
    "search.population_size=4",
]


def test_arch_search_runs_anchors_first_with_the_budget_as_constraint(tmp_path):
    outcome = run_sweep(_cfg(tmp_path, *QUICK_SEARCH, "ttft_budget_ms=400"))
    table = results.load(tmp_path / "study").sort_values("trial")
    assert outcome.ran == 8
    assert list(table["family"][:6]) == ["FastViTHD"] * 2 + ["FastViT"] * 2 + ["ViT-L/14"] * 2
    study = optuna.load_study(study_name="arch_search", storage=results.sqlite_url(tmp_path / "study"))
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert all("ttft_over_budget_ms" in t.user_attrs for t in complete)
    assert any(t.user_attrs["ttft_over_budget_ms"] > 0 for t in complete)  # ViT-L/14 + 1.5B is over 400 ms


def test_an_interrupted_search_trial_is_retried_and_does_not_use_up_the_budget(tmp_path, monkeypatch):
    real_evaluate = sweep_module.evaluate
    calls = []

    def dies_on_the_third(point, *args, **kwargs):
        calls.append(point.key)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the trial stays RUNNING, as after SIGKILL
        return real_evaluate(point, *args, **kwargs)

    # 8 trials: the 6 anchors (the third one is interrupted), its retry, and 1 sampled
    overrides = QUICK_SEARCH
    monkeypatch.setattr(sweep_module, "evaluate", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(_cfg(tmp_path, *overrides))
    monkeypatch.setattr(sweep_module, "evaluate", real_evaluate)
    outcome = run_sweep(_cfg(tmp_path, *overrides))
    trials = optuna.load_study(study_name="arch_search", storage=results.sqlite_url(tmp_path / "study")).trials
    (interrupted,) = [t for t in trials if t.user_attrs.get("error") == sweep_module.INTERRUPTED]
    (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == interrupted.number]
    assert retry.params == interrupted.params and retry.state.name == "COMPLETE"
    assert outcome.ran == 6 and sum(t.state.name == "COMPLETE" for t in trials) == 8  # n_trials real trials


def test_knobs_reproduce_fastvithd_exactly():
    assert hybrid_from_knobs(5, 96, 1.0, 3, 4.0).content_hash == get_spec("fastvithd").content_hash


def _finished_and_running(db: Path) -> tuple[int, int]:
    if not db.exists():
        return 0, 0
    with sqlite3.connect(db) as conn:
        try:
            rows = dict(conn.execute("select state, count(*) from trials group by state").fetchall())
        except sqlite3.OperationalError:
            return 0, 0
    return sum(rows.get(s, 0) for s in ("COMPLETE", "FAIL", "PRUNED")), rows.get("RUNNING", 0)


def test_killed_sweep_resumes_without_losing_or_rerunning_trials(tmp_path):
    study_dir = tmp_path / "study"
    slow = ["device.timing.warmup_seconds=0.3"]  # ~1 s a trial, so the kill lands mid-sweep
    command = [
        sys.executable,
        "-m",
        "fastvitsearch.sweep",
        "+experiment=smoke",
        f"output_dir={study_dir}",
        "quiet=true",
        f"device.cache_dir={tmp_path / 'cache'}",
        *slow,
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        finished, running = _finished_and_running(study_dir / "study.db")
        if finished >= 2 and running:  # kill it mid-trial
            break
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    storage = results.sqlite_url(study_dir)
    before = {
        t.number: (t.state.name, t.values, t.user_attrs.get("point"))
        for t in optuna.load_study(study_name="smoke", storage=storage).trials
    }
    finished_before = {n: v for n, v in before.items() if v[0] in ("COMPLETE", "FAIL", "PRUNED")}
    assert 2 <= len(finished_before) < SMOKE_POINTS

    outcome = run_sweep(_cfg(tmp_path, "+experiment=smoke", *slow))
    after = optuna.load_study(study_name="smoke", storage=storage).trials
    for number, kept in finished_before.items():  # nothing recorded before the kill is lost or changed
        trial = after[number]
        assert (trial.state.name, trial.values, trial.user_attrs.get("point")) == kept
    complete_points = [t.user_attrs["point"] for t in after if t.state.name == "COMPLETE"]
    assert sorted(complete_points) == sorted(set(complete_points)) and len(complete_points) == SMOKE_POINTS
    assert outcome.ran == SMOKE_POINTS - len(finished_before)
    interrupted = [t for t in after if t.user_attrs.get("error", "").startswith("interrupted")]
    assert len(interrupted) <= 1  # the kill lands mid-trial almost always; either way nothing is lost
    retries = {t.user_attrs.get("retry_of") for t in after}
    assert all(t.number in retries for t in interrupted)


def test_trials_interrupted_before_or_after_choosing_their_point_are_rerun_once(tmp_path, monkeypatch):
    """Every window a kill can land in: mid-evaluation (point chosen), popped from the queue but
    not yet suggested (point only in fixed params), and a bare RUNNING trial (no point at all)."""
    real_evaluate = sweep_module.evaluate
    calls = []

    def dies_on_the_third(point, *args, **kwargs):
        calls.append(point.key)
        if len(calls) == 3:
            raise KeyboardInterrupt  # not caught by the trial loop: the trial stays RUNNING, as after SIGKILL
        return real_evaluate(point, *args, **kwargs)

    monkeypatch.setattr(sweep_module, "evaluate", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(_cfg(tmp_path, "+experiment=smoke"))
    storage = results.sqlite_url(tmp_path / "study")
    study = optuna.load_study(study_name="smoke", storage=storage)
    study.ask()  # popped from the queue, killed before its suggest
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING))  # no point at all
    before = {t.number: (t.values, t.user_attrs["point"]) for t in study.trials if t.state.name == "COMPLETE"}
    assert len(before) == 2

    monkeypatch.setattr(sweep_module, "evaluate", real_evaluate)
    outcome = run_sweep(_cfg(tmp_path, "+experiment=smoke"))
    after = optuna.load_study(study_name="smoke", storage=storage).trials
    assert outcome.ran == SMOKE_POINTS - 2 and outcome.failed == 0
    for number, kept in before.items():
        assert (after[number].values, after[number].user_attrs["point"]) == kept
    complete = [t.user_attrs["point"] for t in after if t.state.name == "COMPLETE"]
    assert sorted(complete) == sorted(set(complete)) and len(complete) == SMOKE_POINTS
    interrupted = [t for t in after if t.user_attrs.get("error") == sweep_module.INTERRUPTED]
    assert len(interrupted) == 3
    retried = {t.user_attrs.get("retry_of") for t in after}
    assert sum(t.number in retried for t in interrupted) == 2  # the bare trial had no point to retry
    assert run_sweep(_cfg(tmp_path, "+experiment=smoke")).ran == 0


def test_cli_shows_the_composed_config_and_hydra_errors_for_typos(tmp_path):
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "fastvitsearch.sweep", *args],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )

    shown = run("+experiment=smoke", "--cfg", "job")
    assert shown.returncode == 0 and "name: smoke" in shown.stdout and "minimize:" in shown.stdout
    typo = run("+experiment=smok")
    assert typo.returncode != 0 and "Could not find 'experiment/smok'" in typo.stderr
    key = run("+experiment=smoke", "objectivs.minimize=[ttft_ms]")
    assert key.returncode != 0 and "objectivs" in key.stderr
