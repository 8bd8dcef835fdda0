"""Results you can trust: bad input gets one clear error naming the key, and never loses results.

Each case from the issue's list of bad inputs and faults, in-process where it can be (fast); the
CLI cases check the one-line message and that the results table survives.
"""

import json
import sqlite3
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from fastvitsearch import results
from fastvitsearch.accuracy.results_file import ResultsFileAccuracy
from fastvitsearch.cache import MeasurementCache
from fastvitsearch.config import CONF_DIR
from fastvitsearch.llm import LLM_PRESETS
from fastvitsearch.presets import get_spec
from fastvitsearch.results import TableError, load_folder
from fastvitsearch.spec import SpecError
from fastvitsearch.sweep import SweepSetup, run_sweep


def _cfg(tmp_path, *overrides, name="config"):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(
            config_name=name,
            overrides=[
                f"output_dir={tmp_path / 'study'}",
                "quiet=true",
                f"device.cache_dir={tmp_path / 'cache'}",
                *overrides,
            ],
        )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["objectives.minimize=ttft_ms"], r"^objectives.minimize: must be a list of columns, e.g. \[ttft_ms\]"),
        (["objectives.maximize=[no_such_column]"], r"^objectives.maximize: 'no_such_column' is not a numeric"),
        (
            ["objectives.minimize=[ttft_ms]", "objectives.maximize=[ttft_ms]"],
            r"^objectives.maximize: 'ttft_ms' is also in objectives.minimize",
        ),
        (["device.threads=999"], r"^device.threads: must be 1\.\.\d+ \(this machine's cores\), got 999"),
        (["resolution=256.5"], r"^resolution: must be a whole positive number of pixels, got 256.5"),
        (["resolution=abc"], r"^resolution: must be a whole number of pixels, got 'abc'"),
        (["search=random", "+space=hybrid", "search.n_trials=-5"], r"^search.n_trials: must be >= 1, got -5"),
        (["search=random"], r"^space: search=random needs a search space"),
        (["time_budget_s=0"], r"^time_budget_s: must be a positive number of seconds or null, got 0"),
        (["time_budget_s=45min"], r"^time_budget_s: must be a positive number of seconds or null, got '45min'"),
        (["study_name=../../../x"], r"^study_name: '../../../x' must be a plain name"),
        (["storage=sqlite://"], r"^storage: 'sqlite://' keeps the study in memory"),
        (["storage=not-a-url"], r"^storage: 'not-a-url' is not a storage URL"),
        (["storage=sqlite:////no/such/folder/x.db"], r"^storage: the database folder /no/such/folder does not exist"),
        # Hydra's own hint for a key it does not know is to append it with `+`: still refused here
        (["+tilling=2x2"], r"^tilling: unknown key; did you mean 'tiling'\?"),
        (
            ["accuracy=proxy", "+accuracy.steps=0"],
            r"^accuracy.steps: unknown key; a source's settings go under its name \(accuracy.proxy.steps\)",
        ),
        (["+search.foo=1"], r"^search.foo: unknown key for search=grid"),
        (["+grid.resolution=[64]"], r"^grid.resolution: unknown key; did you mean 'resolutions'\?"),
        (["+workers.heartbeat=3"], r"^workers.heartbeat: unknown key; did you mean 'heartbeat_s'\?"),
        (["search=nsga2", "+space=hybrid", "+search.n_trial=3"], r"^search.n_trial: .*did you mean 'n_trials'\?"),
        # the search space, checked before any trial (or anchor training) runs
        (["search=random", "+space=hybrid", "+space.base_widht=[8]"], r"^space.base_widht: not a knob"),
        (["search=random", "+space=hybrid", "space.n_stages=[7]"], r"^space.n_stages: 7 has no depth template"),
        (
            ["search=random", "+space=hybrid", "space.base_width=[50]"],
            r"^space.base_width: n_stages=4, base_width=50, .* builds no valid encoder: stages\[2\].width: 200",
        ),
        (["search=random", "+space=hybrid", "space.resolution=[96]"], r"^space.resolution: with n_stages=5, .*: "),
        (["search=random", "+space=hybrid", "space.depth_scale.low=2"], r"^space.depth_scale: low \(2\) must not"),
        (["search=random", "+space=hybrid", "space.llm=[foo]"], r"^space.llm: unknown LLM 'foo'"),
        (["search=random", "+space=hybrid", "space.mlp_ratio=[]"], r"^space.mlp_ratio: needs at least one choice"),
        # grid shortcuts a sampler search would ignore
        (["search=random", "+space=hybrid", "resolution=[512]"], r"^resolution: narrows a grid, .* space.resolution"),
        (["search=random", "+space=hybrid", "llm=qwen2_7b"], r"^llm: narrows a grid, .* space.llm"),
        (["search=random", "+space=hybrid", "tiling=2x2"], r"^tiling: narrows a grid, .* one image"),
    ],
)
def test_bad_sweep_settings_name_their_key(tmp_path, overrides, message):
    with pytest.raises(SpecError, match=message):
        run_sweep(_cfg(tmp_path, "+experiment=smoke", *overrides))
    assert not (tmp_path / "study" / "study.db").exists()  # refused before anything was written


def test_hydra_refuses_wrong_types_naming_the_key(tmp_path):
    for override, key in (("device.threads=abc", "device.threads"), ("search.n_trials=abc", "search.n_trials")):
        with pytest.raises(ConfigCompositionException) as err:
            _cfg(tmp_path, "+experiment=arch_search", override)
        assert key in str(err.value.__cause__ or err.value)


def test_a_missing_postgres_driver_says_which_extra_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg2", None)  # as if psycopg2 were not installed
    with pytest.raises(SpecError, match=r"^storage: .*pip install -e '.\[postgres\]'"):
        run_sweep(_cfg(tmp_path, "+experiment=smoke", "storage=postgresql://u:p@127.0.0.1:1/x"))


def test_a_zero_byte_or_corrupt_study_is_refused_and_the_table_kept(tmp_path):
    run_sweep(_cfg(tmp_path, "+experiment=smoke"))
    folder = tmp_path / "study"
    table = (folder / "results.csv").read_text()
    (folder / "study.db").write_bytes(b"")
    with pytest.raises(SpecError, match=r"^storage: .*study.db is empty \(0 bytes\), not a study"):
        run_sweep(_cfg(tmp_path, "+experiment=smoke"))
    (folder / "study.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(SpecError, match=r"^storage: cannot open the study's storage \(DatabaseError"):
        run_sweep(_cfg(tmp_path, "+experiment=smoke"))
    assert (folder / "results.csv").read_text() == table


def test_a_changed_setting_is_refused_but_a_grown_grid_and_retries_work(tmp_path):
    first = run_sweep(_cfg(tmp_path, "+experiment=smoke", "resolution=[64]"))
    assert first.ran == 3
    with pytest.raises(
        SpecError, match=r"^study_name: study 'smoke' holds results of another setting \(text_tokens: 0 -> 8"
    ):
        run_sweep(_cfg(tmp_path, "+experiment=smoke", "text_tokens=8"))
    meta = json.loads((tmp_path / "study" / "meta.json").read_text())
    assert meta["config"]["text_tokens"] == 0  # the refused run rewrote nothing
    grown = run_sweep(_cfg(tmp_path, "+experiment=smoke", "resolution=[64,128]"))  # the grid may grow
    assert grown.ran == 3
    narrowed = run_sweep(_cfg(tmp_path, "+experiment=smoke", "resolution=[128]"))
    assert narrowed.ran == 0
    table = results.load(tmp_path / "study")
    assert sorted(table["resolution"]) == [64, 64, 64, 128, 128, 128] and set(table["state"]) == {"COMPLETE"}


def test_failed_points_are_retried_after_a_grid_change(tmp_path):
    bad = run_sweep(_cfg(tmp_path, "+experiment=smoke", "resolution=[100]", "max_failure_rate=1.0"))
    assert bad.failed == 3
    again = run_sweep(
        _cfg(tmp_path, "+experiment=smoke", "resolution=[100,128]", "retry_failed=true", "max_failure_rate=1.0")
    )
    table = results.load(tmp_path / "study")
    retries = table[table["retry_of"].notna()]
    assert len(retries) == 3 and again.ran == 6  # 3 retried (fail again), 3 new points
    assert set(table[table["resolution"] == 128]["state"]) == {"COMPLETE"}


def test_an_unreadable_cache_entry_is_measured_again(tmp_path):
    cache = MeasurementCache(tmp_path)
    key = {"kind": "encoder", "x": 1}
    cache.put(key, {"median_ms": 1.0})
    next(tmp_path.glob("encoder-*.json")).write_text("{ truncated")
    with pytest.warns(
        UserWarning, match=r"cache entry .*encoder-.*\.json is unreadable \(JSONDecodeError\); recomputing"
    ):
        assert cache.get(key) is None


def test_report_tables_that_cannot_be_read_are_named(tmp_path):
    folder = tmp_path / "sweep"
    folder.mkdir()
    with pytest.raises(FileNotFoundError, match="no results.parquet or results.csv"):
        load_folder(folder)
    (folder / "results.csv").write_text("")
    with pytest.raises(TableError, match=r"results.csv: EmptyDataError"):
        load_folder(folder)
    (folder / "results.csv").write_text("a,b\n1,2\n")
    with pytest.raises(TableError, match=r"the results table has no trial, state, point column"):
        load_folder(folder)
    (folder / "results.csv").write_text("trial,state,point\n0,COMPLETE,x\n")
    (folder / "results.parquet").write_bytes(b"PAR1 broken")
    (folder / "meta.json").write_text("{not json")
    with pytest.raises(TableError, match=r"meta.json: unreadable"):
        load_folder(folder)  # the broken parquet falls back to the CSV; the meta is refused
    out = subprocess.run(
        [sys.executable, "-m", "fastvitsearch.report", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode != 0 and out.stderr.strip().startswith("error: ") and "Traceback" not in out.stderr


def test_results_file_refuses_impossible_values_and_explains_empty_files(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text(
        "encoder,resolution,llm,metric,value\n"
        "fastvithd,1024,qwen2_0_5b,TextVQA,61.5\n"
        "fastvithd,1024,qwen2_0_5b,TextVQA,62.0\n"
        "fastvit,768,qwen2_0_5b,TextVQA,120\n"
    )
    source = ResultsFileAccuracy(str(path))
    assert source.report.rows == 1
    assert f"{path}:4: value 120.0 is not an accuracy in percent (0-100)" in source.report.errors
    assert any(e.startswith(f"{path}:3: duplicate of an earlier row") for e in source.report.errors)
    assert source.lookup(get_spec("fastvithd"), 1024, LLM_PRESETS["qwen2_0_5b"], "TextVQA").value == 61.5
    cases = {
        "empty.csv": ("", r"is empty: 0 rows"),
        "noheader.csv": ("fastvithd,1024,qwen2_0_5b,TextVQA,61.5\n", r"the header .* lacks encoder"),
        "semi.csv": ("encoder;resolution;llm;metric;value\n", r"it looks ';'-separated"),
        "rows.json": ("[1, 2]", None),
        "bad.json": ("{oops", r"is not valid JSON"),
    }
    for name, (text, message) in cases.items():
        target = tmp_path / name
        target.write_text(text)
        if message is None:
            report = ResultsFileAccuracy(str(target)).report
            assert report.errors[0] == f"{target}:1: expected an object with encoder, resolution, llm, metric, value"
        else:
            with pytest.raises(SpecError, match=r"^accuracy.results_file.path: .*" + message):
                ResultsFileAccuracy(str(target))
    binary = tmp_path / "data.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(SpecError, match=r"is not a text file"):
        ResultsFileAccuracy(str(binary))


def _sweep_cli(tmp_path, *overrides):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "fastvitsearch.sweep",
            "+experiment=smoke",
            f"output_dir={tmp_path / 'study'}",
            f"device.cache_dir={tmp_path / 'cache'}",
            "quiet=true",
            "report=false",
            *overrides,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_errors_are_one_line_and_a_sweep_where_everything_failed_exits_non_zero(tmp_path):
    out = _sweep_cli(tmp_path, "device.threads=999")
    assert out.returncode != 0 and out.stderr.strip().startswith("error: device.threads:")
    assert len(out.stderr.strip().splitlines()) == 1
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    unwritable = _sweep_cli(tmp_path, f"output_dir={blocked / 'study'}")  # a folder that cannot be made
    assert unwritable.returncode != 0 and unwritable.stderr.strip().startswith("error: output_dir:")
    assert "Traceback" not in unwritable.stderr
    failed = _sweep_cli(tmp_path, "resolution=[100]", "max_failure_rate=1.0")
    assert failed.returncode != 0 and "error: all 3 trial(s) failed" in failed.stderr
    assert (tmp_path / "study" / "results.csv").exists()
    with sqlite3.connect(tmp_path / "study" / "study.db") as db:
        assert db.execute("select count(*) from trials").fetchone()[0] == 3


def test_workers_refuse_a_negative_or_non_numeric_count(tmp_path):
    from fastvitsearch.workers import launch

    for n in (-1, "abc"):
        cfg = _cfg(tmp_path, "+experiment=smoke", f"n={n}", name="workers")
        with pytest.raises(SpecError, match=r"^n: the number of workers must be a whole number >= 0"):
            launch(cfg, [])


def test_workers_refuse_more_timing_workers_than_cores(tmp_path, monkeypatch):
    """Local workers timing on a CPU each need their own cores: more is refused naming ``n``
    (their timings would wait on each other), unless workers.shared_cores=true or nothing is timed."""
    import os

    from fastvitsearch.workers import check_cores

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    with pytest.raises(SpecError, match=r"^n: 3 workers x device.threads=1 need 3 cores .* has 2: use n<=2"):
        check_cores(_cfg(tmp_path, "+experiment=smoke", "n=3", name="workers"))
    with pytest.raises(SpecError, match=r"^n: 2 workers x device.threads=2 need 4 cores"):
        check_cores(_cfg(tmp_path, "+experiment=smoke", "n=2", "device.threads=2", name="workers"))
    check_cores(_cfg(tmp_path, "+experiment=smoke", "n=2", name="workers"))
    from fastvitsearch.workers import worker_env

    assert worker_env(_cfg(tmp_path, "+experiment=smoke", "n=2", name="workers"), 1) is None  # a CPU: as launched
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    cuda = OmegaConf.create({"n": 2, "device": {"name": "cuda"}})
    assert [worker_env(cuda, i)["CUDA_VISIBLE_DEVICES"] for i in (0, 1)] == ["2", "5"]  # one GPU each
    check_cores(_cfg(tmp_path, "+experiment=smoke", "n=3", "workers.shared_cores=true", name="workers"))
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        check_cores(compose(config_name="workers", overrides=["+experiment=res_vs_llm", "n=3", "device=paper_m1max"]))


def test_two_sweeps_on_one_storage_url_do_not_both_run(tmp_path):
    """Different output folders, one shared storage URL and study: the second is refused while the
    first runs (it would fail the first one's running trials as interrupted)."""
    from fastvitsearch.sweep import _exclusive

    storage = f"storage=sqlite:///{tmp_path / 'shared.db'}"
    first = SweepSetup.from_config(_cfg(tmp_path, "+experiment=smoke", storage))
    second = _cfg(tmp_path, "+experiment=smoke", storage, f"output_dir={tmp_path / 'elsewhere'}")
    with _exclusive(first), pytest.raises(SpecError, match=r"^output_dir: another sweep is running on study 'smoke'"):
        run_sweep(second)


def test_the_end_of_a_run_says_which_points_failed_and_how_to_retry(tmp_path, capsys):
    from fastvitsearch.sweep import finish

    cfg = _cfg(tmp_path, "+experiment=smoke", "resolution=[100]", "max_failure_rate=1.0", "report=false")
    finish(run_sweep(cfg), cfg)
    said = capsys.readouterr().out
    assert "3 point(s) failed and were not retried" in said and "rerun with retry_failed=true" in said
    assert "resolution: 100 px is not a multiple of the output stride" in said


def test_a_report_folder_that_cannot_be_written_is_one_line(tmp_path):
    run_sweep(_cfg(tmp_path, "+experiment=smoke", "resolution=[64]"))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = subprocess.run(
        [sys.executable, "-m", "fastvitsearch.report", str(tmp_path / "study"), "--out", str(blocker / "report")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0 and out.stderr.strip().startswith("error: --out:") and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("config_name", "overrides", "message"),
    [
        ("profile", ["+resolutoin=64"], r"^resolutoin: unknown key; did you mean 'resolution'\?"),
        ("profile", ["accuracy=proxy", "+accuracy.steps=3"], r"^accuracy.steps: unknown key"),
        ("export", ["+precison=fp32"], r"^precison: unknown key; did you mean 'precision'\?"),
        ("workers", ["+n_workers=2"], r"^n_workers: unknown key; did you mean 'workers'\?"),
    ],
)
def test_each_cli_refuses_a_root_key_it_does_not_read(config_name, overrides, message):
    """The profile and export CLIs and the workers launcher check their own config's keys."""
    from fastvitsearch.config import check_known_keys
    from fastvitsearch.profile.__main__ import profile

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=["encoder=tiny_fastvit", *overrides])
    with pytest.raises(SpecError, match=message):
        profile(cfg) if config_name == "profile" else check_known_keys(cfg, config_name)


@pytest.mark.parametrize(
    ("encoder", "message"),
    [
        ({"preset": "vit_l14", "select_layr": -2}, r"^encoder.select_layr: not read for an encoder given by 'preset'"),
        ({"model": "resnet18", "pretrained": True}, r"^encoder.pretrained: not read for an encoder given by 'model'"),
        ({"spec": {"kind": "vit"}, "name": "x"}, r"^encoder.name: not read for an encoder given by 'spec'"),
    ],
)
def test_an_encoder_key_its_form_does_not_read_is_refused(encoder, message):
    from fastvitsearch.presets import resolve_encoder

    with pytest.raises(SpecError, match=message):
        resolve_encoder(encoder)


def test_results_load_names_what_is_wrong_and_creates_nothing(tmp_path):
    import optuna

    folder = tmp_path / "sweep"
    folder.mkdir()
    url = f"sqlite:///{folder / 'study.db'}"
    optuna.create_study(study_name="mine", storage=url).add_trial(
        optuna.trial.create_trial(params={}, distributions={}, value=1.0)
    )
    assert len(results.load(folder)) == len(results.load(url)) == len(results.load(folder / "study.db")) == 1
    with pytest.raises(FileNotFoundError, match=r"^study_name: no study 'other' in .* \(studies there: mine\)"):
        results.load(folder, study_name="other")
    (folder / "results.csv").write_text("trial,state,point\n")
    with pytest.raises(ValueError, match=r"results\.csv is not an SQLite study database; .*pass its folder"):
        results.load(folder / "results.csv")
    with pytest.raises(FileNotFoundError, match=r"^path: no study database at .*none\.db"):
        results.load(f"sqlite:///{tmp_path / 'none.db'}")
    assert not (tmp_path / "none.db").exists()  # Optuna would have created an empty database
    optuna.create_study(study_name="second", storage=url)
    with pytest.raises(ValueError, match=r"^study_name: 2 studies in .* \(mine, second\); name one"):
        results.load(folder)
    from optuna.storages.journal import JournalFileBackend

    journal = tmp_path / "journal.log"  # the sweep's storage=journal:<file>
    optuna.create_study(
        study_name="shared", storage=optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    ).add_trial(optuna.trial.create_trial(params={}, distributions={}, value=2.0))
    assert len(results.load(f"journal:{journal}")) == 1
    with pytest.raises(FileNotFoundError, match=r"^path: no journal file at .*none\.log"):
        results.load(f"journal:{tmp_path / 'none.log'}")
