"""Reports: figure data from hand-made results (no drawing), rendering, and a headless browser."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fastvitsearch.record import Sourced, TrialRecord, weakest
from fastvitsearch.report import data
from fastvitsearch.report.build import build_report

OBJECTIVES = {"ttft_ms": "minimize", "accuracy": "maximize"}
EVIL = '<script>alert("x")</script>'


def _row(
    trial,
    encoder,
    family,
    resolution,
    llm,
    tokens,
    enc,
    prefill,
    acc,
    acc_source="published:Table 6 R3",
    state="COMPLETE",
    prefill_source="measured:cpu",
    prefill_error=None,
    spec_hash=None,
    encoder_ms_noisy=False,
    **trial_columns,
):
    """A results-table row as a sweep writes it: the trial's columns + a TrialRecord's row."""
    measured = {"iqr_ms": 1.0, "n": 5, "noisy": False}
    prefill_part = Sourced(prefill, *Sourced.split(prefill_source), prefill_error)
    parts = [
        Sourced(enc, "measured", "cpu", None, {**measured, "noisy": encoder_ms_noisy}),
        Sourced(1.0, "measured", "cpu"),
    ]
    parts.append(prefill_part)
    kinds = sorted({p.kind for p in parts})
    accuracy = None
    if acc is not None:
        accuracy = Sourced(acc, *Sourced.split(acc_source), None, {"recipe": "15+1.1"})
    record = TrialRecord(
        point=f"{encoder}@{resolution}+{llm}",
        encoder=encoder,
        family=family,
        spec={},
        spec_hash=spec_hash or f"hash-{encoder}",
        resolution=resolution,
        llm=llm,
        visual_tokens=tokens,
        output_stride=64,
        feature_width=3072,
        macs=tokens * 10**9,
        macs_attention=tokens * 10**7,
        device="cpu",
        device_fingerprint="cpu-test",
        threads=1,
        encoder_ms=parts[0],
        projector_ms=parts[1],
        prefill_ms=parts[2],
        ttft_ms=Sourced(enc + 1.0 + prefill, weakest(kinds), f"sum of parts ({' + '.join(kinds)})", prefill_error),
        accuracy=accuracy,
        accuracy_metric="TextVQA",
        versions={"torch": "2.x"},
    )
    row = record.to_row()
    row = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()}  # as the CSV holds them
    return {"trial": trial, "state": state, "error": None, "missing": None, **row, **trial_columns}


@pytest.fixture
def table():
    from fastvitsearch.presets import get_spec

    hd = get_spec("fastvithd").content_hash
    return pd.DataFrame(
        [
            _row(0, "fastvithd", "FastViTHD", 1024, "qwen2_0_5b", 256, 8000.0, 1000.0, 57.4, spec_hash=hd),
            _row(1, "fastvithd", "FastViTHD", 768, "qwen2_1_5b", 144, 4000.0, 2000.0, 64.4, spec_hash=hd),
            _row(
                2,
                "vit_l14",
                "ViT-L/14",
                336,
                "qwen2_7b",
                576,
                4500.0,
                30000.0,
                58.2,
                prefill_source="predicted:prefill-fit",
                prefill_error=0.1,
            ),
            _row(3, EVIL, "custom", 512, "qwen2_0_5b", 64, 900.0, 500.0, None, state="PRUNED", missing=f"no {EVIL}"),
            _row(
                4,
                "fastvit",
                "FastViT",
                768,
                "qwen2_0_5b",
                576,
                2200.0,
                3000.0,
                None,
                state="FAIL",
                error=f"RuntimeError: {EVIL}",
            ),
            _row(
                5,
                "fastvit",
                "FastViT",
                256,
                "qwen2_0_5b",
                64,
                300.0,
                400.0,
                40.0,
                acc_source="predicted:m",
                encoder_ms_noisy=True,
            ),
        ]
    )


def test_objective_scatter_marks_the_front_and_source_kinds(table):
    scatter = data.objective_scatter(table, OBJECTIVES)
    points = scatter.points.set_index("trial")
    assert set(points.index) == {0, 1, 2, 5}  # only trials with every objective
    assert scatter.front["trial"].tolist() == [5, 1]  # trial 1 is faster and better than 0
    assert points.loc[2, "y_kind"] == "published" and points.loc[5, "y_kind"] == "predicted"
    assert points.loc[2, "x_err"] == pytest.approx(0.1 * points.loc[2, "ttft_ms"])
    assert "prefill_ms 30000.0 ±10%" in points.loc[2, "hover"]


def test_ttft_breakdown_and_scaling_use_every_profiled_trial(table):
    parts = data.ttft_breakdown(table)
    assert set(parts["part"]) == {"encoder_ms", "projector_ms", "prefill_ms"}
    assert len(parts) == 3 * 5  # COMPLETE and PRUNED, not FAIL
    scale = data.scaling(table)
    assert len(scale) == 5 and scale["attention_share"].between(0, 1).all()


def test_measured_vs_paper_pairs_points_with_published_components(table):
    comparison = data.measured_vs_paper(table)
    row = comparison.set_index("point").loc["fastvithd@1024+qwen2_0_5b"]
    assert row["paper_ms"] == pytest.approx(166.8) and row["ratio"] == pytest.approx(9001.0 / 166.8)
    assert "published:Table 10 R3" in row["paper_source"]
    same = pd.DataFrame({"ours_ms": [1.0, 2.0, 3.0], "paper_ms": [10.0, 20.0, 30.0]})
    assert data.ranking_agreement(same) == 1.0
    assert data.ranking_agreement(same.assign(paper_ms=[30.0, 20.0, 10.0])) == -1.0


def test_search_progress_hypervolume_never_decreases(table):
    progress = data.search_progress(table, OBJECTIVES, budget=10000.0)
    curve = progress.hypervolume["hypervolume"].to_numpy()
    assert len(curve) == 3 and np.all(np.diff(curve) >= 0)  # trial 2 is over budget


def test_failed_noisy_pruned_and_method(table):
    problems = data.failed_and_noisy(table)
    assert problems["failed"]["trial"].tolist() == [4]
    assert problems["noisy"]["trial"].tolist() == [5]
    assert problems["pruned"]["trial"].tolist() == [3]
    assert problems["pruned"]["missing"].tolist() == [f"no {EVIL}"]  # the reason reaches the report
    method = data.method(table, {"experiment": "x", "command": "python -m fastvitsearch.sweep +experiment=x"})
    assert method["threads"] == ["1"] and method["accuracy_recipes"] == ["15+1.1"]
    assert method["sources"]["prefill_ms"]["predicted:prefill-fit"] == 1


def _fixture_folder(tmp_path, table) -> Path:
    folder = tmp_path / "sweeps" / "demo" / "study"
    folder.mkdir(parents=True)
    table.to_csv(folder / "results.csv", index=False)
    meta = {
        "experiment": "demo",
        "study": "study",
        "objectives": OBJECTIVES,
        "command": f"run {EVIL}",
        "config": {"search": {"name": "grid"}},
    }
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def test_report_renders_html_and_pngs_from_a_results_table(tmp_path, table):
    report = build_report(_fixture_folder(tmp_path, table), tmp_path / "report")
    assert report.html.exists() and report.html.stat().st_size < 10e6
    names = {p.name for p in report.pngs}
    assert names == {"front.png", "ttft_breakdown.png", "scaling.png", "vs_paper.png"}
    for png in report.pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = report.html.read_text()
    assert EVIL not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"https?:", page)  # works offline: nothing fetched
    for section in ("Pareto set", "Method", "Failed, noisy and pruned trials", "Ranking here vs the paper"):
        assert section in page
    # the front as CSV and LaTeX, and the device/runtime in the figure title
    assert [p.name for p in report.exports] == ["front.csv", "front.tex"]
    front = pd.read_csv(report.directory / "front.csv")
    assert (
        front["trial"].tolist()
        if "trial" in front
        else front["point"].tolist() == ["fastvit@256+qwen2_0_5b", "fastvithd@768+qwen2_1_5b"]
    )
    tex = (report.directory / "front.tex").read_text()
    assert "\\begin{tabular}" in tex and "\\toprule" in tex and "fastvithd@768+qwen2\\_1\\_5b" in tex
    assert "ms) \\u2014 cpu, 1 thread(s)" in page  # the device in the figure title (JSON-escaped dash)
    assert "no &lt;script&gt;" in page  # the pruned point's reason, escaped
    # notes are computed from the data: this table holds no FastViT sweep over resolution
    assert "FastViTHD: 144 -&gt; 256 tokens" in page and "FastViT:" not in page.replace("FastViT: 64", "")


def test_report_building_imports_neither_torch_nor_timm_nor_optuna():
    code = (
        "import sys; import fastvitsearch.report.build, fastvitsearch.report.__main__; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'timm', 'optuna'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_record_round_trips_through_its_row(table):
    row = table.iloc[2].to_dict()
    record = TrialRecord.from_row(row)
    assert record.prefill_ms.kind == "predicted" and record.prefill_ms.error == pytest.approx(0.1)
    assert record.ttft_ms.kind == "predicted" and record.accuracy.label == "Table 6 R3"
    again = TrialRecord.from_row(record.to_row())
    assert again == record


def test_report_lands_under_reports_by_default(tmp_path, table, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _fixture_folder(tmp_path, table)
    report = build_report(Path("sweeps/demo/study"), None)
    assert report.directory == Path("reports/demo/study")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_report_opens_in_headless_chromium_without_console_errors(tmp_path, table):
    report = build_report(_fixture_folder(tmp_path, table), tmp_path / "report")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        f"--user-data-dir={tmp_path / 'chrome'}",
        "--virtual-time-budget=20000",
        "--window-size=1400,2000",
        "--enable-logging=stderr",
        "--v=0",
    ]
    url = report.html.resolve().as_uri()
    dom = subprocess.run(["chromium", *flags, "--dump-dom", url], capture_output=True, text=True, timeout=180)
    assert dom.stdout.count('class="main-svg"') >= 2 * len(report.pngs)  # every plot drew its SVG layers
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert not [line for line in console if "Uncaught" in line or "Error" in line], console
    shot = tmp_path / "report.png"
    subprocess.run(["chromium", *flags, f"--screenshot={shot}", url], capture_output=True, timeout=180)
    assert shot.exists() and shot.stat().st_size > 10_000
    artifacts = Path(__file__).resolve().parents[1] / ".pytest_artifacts"
    artifacts.mkdir(exist_ok=True)
    shutil.copy(shot, artifacts / "report_screenshot.png")


def test_timings_from_several_devices_are_never_mixed_silently(tmp_path, table):
    table = table.assign(device_fingerprint=["cpu-aaa", "cpu-aaa", "cpu-bbb", "cpu-bbb", "cpu-aaa", "cpu-bbb"])
    hardware = data.devices(table)
    assert sorted(hardware["device_fingerprint"]) == ["cpu-aaa", "cpu-bbb"]
    assert all("[cpu-" in label for label in data.ttft_breakdown(table)["label"])
    report = build_report(_fixture_folder(tmp_path, table), tmp_path / "report")
    assert "Warning: timings from several devices" in report.html.read_text()


def _encoder_rows(runtime, ms):
    rows = []
    for trial, ((encoder, resolution, tokens), value) in enumerate(
        zip([("fastvithd", 1024, 256), ("vit_l14", 336, 576), ("fastvit", 768, 576)], ms, strict=True)
    ):
        record = TrialRecord(
            point=f"{encoder}@{resolution}",
            encoder=encoder,
            family=encoder,
            spec={},
            spec_hash="h",
            resolution=resolution,
            llm=None,
            visual_tokens=tokens,
            output_stride=1,
            feature_width=1,
            device="cpu",
            device_fingerprint="cpu-test",
            threads=1,
            runtime=runtime,
            precision="fp32",
            encoder_ms=Sourced(value, "measured", "cpu"),
        )
        rows.append({"trial": trial, "state": "COMPLETE", **record.to_row()})
    return pd.DataFrame(rows)


def test_sweeps_side_by_side_show_how_the_ranking_and_ratios_move(tmp_path):
    from fastvitsearch.report.compare import PAPER, build_comparison

    folders = []
    for runtime, ms in (("eager", [7000.0, 4300.0, 2000.0]), ("openvino", [2700.0, 1900.0, 860.0])):
        folder = tmp_path / "sweeps" / "runtime_compare" / runtime
        folder.mkdir(parents=True)
        _encoder_rows(runtime, ms).to_csv(folder / "results.csv", index=False)
        (folder / "meta.json").write_text(json.dumps({"experiment": "runtime_compare", "study": runtime}))
        folders.append(folder)
    page = build_comparison(folders, tmp_path / "out")
    text = page.read_text()
    assert (tmp_path / "out" / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    assert "eager [cpu eager fp32]" in text and "openvino [cpu openvino fp32]" in text and PAPER in text
    from fastvitsearch.report.compare import Sweep, comparison

    info = comparison([Sweep(f.name, *results_load(f)) for f in folders])
    assert info.metric == "encoder_ms" and info.reference_point == "fastvithd@1024"
    ratios = info.ratios.set_index("sweep")
    assert ratios.loc["eager", "vit_l14@336"] == pytest.approx(4300 / 7000, abs=1e-3)
    assert ratios.loc[PAPER, "vit_l14@336"] == pytest.approx(127.4 / 116.3, abs=1e-3)  # published: Table 10
    ranking = info.rankings.set_index("sweep")
    assert ranking.loc["eager", "fastest first"] == "fastvit@768 < vit_l14@336 < fastvithd@1024"
    assert ranking.loc[PAPER, f"tau vs {PAPER}"] == 1.0


def results_load(folder):
    from fastvitsearch.results import load_folder

    return load_folder(folder)


def test_two_res_vs_llm_sweeps_draw_their_fronts_on_shared_axes(tmp_path, table):
    from fastvitsearch.report.compare import Sweep, build_comparison, fronts

    folders = []
    for study, scale in (("eager", 1.0), ("openvino_bf16", 0.5)):
        folder = tmp_path / "sweeps" / "res_vs_llm" / study
        folder.mkdir(parents=True)
        table.assign(ttft_ms=table["ttft_ms"] * scale).to_csv(folder / "results.csv", index=False)
        (folder / "meta.json").write_text(json.dumps({"experiment": "res_vs_llm", "study": study}))
        folders.append(folder)
    page = build_comparison(folders, tmp_path / "out").read_text()
    assert "Fronts per sweep" in page and (tmp_path / "out" / "fronts.png").exists()
    assert EVIL not in page
    infos = fronts([Sweep(f.name, *results_load(f)) for f in folders])
    assert [i.front["trial"].tolist() for i in infos.values()] == [[5, 1], [5, 1]]


def test_an_unchanged_results_table_does_not_rebuild_its_report(tmp_path, table):
    folder = _fixture_folder(tmp_path, table)
    first = build_report(folder, tmp_path / "report", only_if_changed=True)
    again = build_report(folder, tmp_path / "report", only_if_changed=True)
    assert first.rebuilt and not again.rebuilt and again.pngs == sorted(first.pngs)
    table.assign(ttft_ms=table["ttft_ms"] + 1).to_csv(folder / "results.csv", index=False)
    assert build_report(folder, tmp_path / "report", only_if_changed=True).rebuilt  # new results: rebuilt


def test_dominance_says_which_wins_survive_the_error_bars():
    from fastvitsearch.report.data import dominance

    rows = pd.DataFrame(
        {
            "state": ["COMPLETE"] * 3,
            "point": ["fastvithd@1024+q", "near@1024+q", "far@512+q"],
            "family": ["FastViTHD", "custom", "custom"],
            "ttft_ms": [1000.0, 900.0, 500.0],
            "ttft_ms_error": [0.01, 0.01, 0.01],
            "accuracy": [60.0, 61.0, 70.0],
            "accuracy_error": [0.05, 0.05, 0.01],  # relative: +-3 points at 60
        }
    )
    table = dominance(rows, {"ttft_ms": "minimize", "accuracy": "maximize"})
    assert table.loc[0, "dominated_by"] == "near@1024+q, far@512+q" and table.loc[0, "beyond_errors"] == "far@512+q"


def test_a_comparison_refuses_what_it_cannot_compare_and_keeps_same_named_sweeps_apart(tmp_path):
    from fastvitsearch.report.compare import build_comparison
    from fastvitsearch.results import TableError

    folders = []
    for host, ms in (("a", [7000.0, 4300.0, 2000.0]), ("b", [3500.0, 2150.0, 1000.0])):
        folder = tmp_path / host / "runtime_compare" / "eager"  # the same study name on two hosts
        folder.mkdir(parents=True)
        _encoder_rows("eager", ms).to_csv(folder / "results.csv", index=False)
        folders.append(folder)  # no meta.json (e.g. a study only prepared by workers n=0)
    with pytest.raises(TableError, match=r"^sweep_dirs: .* is given twice"):
        build_comparison([folders[0], folders[0] / ".." / "eager"], tmp_path / "out")
    text = build_comparison(folders, tmp_path / "out").read_text()  # no experiment in meta: no crash
    assert f"eager [cpu eager fp32] ({folders[0]})" in text and f"eager [cpu eager fp32] ({folders[1]})" in text
    empty = tmp_path / "empty"
    empty.mkdir()
    _encoder_rows("eager", [7000.0, 4300.0, 2000.0]).iloc[0:0].to_csv(empty / "results.csv", index=False)
    with pytest.raises(TableError, match=r"^sweep_dirs: no point has encoder_ms in every sweep .*empty: 0"):
        build_comparison([folders[0], empty], tmp_path / "out2")


def test_the_device_section_says_when_timings_were_taken_and_how_many_were_reused(tmp_path, table):
    """A cached timing may come from another day on a VM whose speed drifts: the report says over
    which span the timings were taken and how many came from the cache (read back from the CSV)."""
    n = len(table)
    stamps = [f"2026-12-0{3 + i % 2}T10:00:0{i}Z" for i in range(n)]
    table = table.assign(
        device_fingerprint="cpu-aaa",
        encoder_ms_measured_at=stamps,
        encoder_ms_cached=[i % 2 == 0 for i in range(n)],
        prefill_ms_measured_at="2026-12-05T09:00:00Z",
        prefill_ms_cached=False,
    )
    report = build_report(_fixture_folder(tmp_path, table), tmp_path / "report")
    (row,) = data.devices(results_load(tmp_path / "sweeps" / "demo" / "study")[0]).to_dict("records")
    assert row["timed_from"] == "2026-12-03T10:00:00Z" and row["timed_to"] == "2026-12-05T09:00:00Z"
    done = data.profiled(table)  # timed trials only
    reused = int(done["encoder_ms_cached"].sum())
    assert reused > 0 and row["timings_cached"] == f"{reused} of {2 * len(done)}"
    page = report.html.read_text()
    assert "2026-12-05T09:00:00Z" in page and "reused from the measurement cache" in page
    older = table.drop(columns=[c for c in table if c.endswith(("_measured_at", "_cached"))])  # before the columns
    assert list(data.devices(older)["trials"]) == [len(done)] and "timed_from" not in data.devices(older)
    untimed = table.drop(columns=[c for c in table if c.endswith("_measured_at")])  # cache entries from before
    page = build_report(_fixture_folder(tmp_path / "u", untimed), tmp_path / "u_report").html.read_text()
    assert "reused from the measurement cache (taken in an earlier run)" in page
