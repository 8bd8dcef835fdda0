"""The profile CLI: Hydra composition, JSON output, clear errors."""

import json
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from fastvitsearch.config import CONF_DIR
from fastvitsearch.profile.__main__ import profile
from fastvitsearch.spec import SpecError

CONF = str(CONF_DIR)


def _cfg(*overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name="profile", overrides=list(overrides))


def test_resolution_defaults_to_the_papers_and_accepts_lists():
    assert [c["resolution"] for c in profile(_cfg("encoder=vit_l14"))] == [336]
    counts = profile(_cfg("encoder=tiny_fastvithd", "resolution=[128,256]"))
    assert [(c["resolution"], c["visual_tokens"]) for c in counts] == [(128, 4), (256, 16)]


def test_custom_spec_file_is_an_encoder_option():
    (counts,) = profile(_cfg("encoder=custom_example", "resolution=512"))
    assert counts["encoder"] == "custom_example" and counts["visual_tokens"] == 64


def test_a_cnn_counts_zero_linear_and_attention_macs_and_its_table_prints():
    """A class with no multiply-adds is counted as 0, not left unknown (the table used to crash)."""
    from fastvitsearch.profile.table import records_table

    (row,) = profile(_cfg("encoder=timm", "encoder.model=resnet18", "resolution=64"))
    assert row["macs_linear"] == 0 and row["macs_attention"] == 0 and row["macs_conv"] == row["macs"]
    table = records_table([row, {**row, "resolution": 0, "macs_linear": None}])  # one counted before the fix
    (line,) = [line for line in table.splitlines() if line.startswith("MACs linear")]
    assert line.split()[2:] == ["0.00", "M", "-"]  # resnet18 at 64 px: 0.15 GMACs, shown in M
    (total,) = [line for line in table.splitlines() if line.startswith("MACs total")]
    assert total.split()[2:4] == [f"{row['macs'] / 1e6:,.2f}", "M"]
    timed = {"encoder_ms": 5.0, "encoder_ms_source": "measured:cpu", "threads": 1, "device_fingerprint": "cpu-x"}
    timed |= {"runtime": "eager", "encoder_ms_measured_at": "2026-12-03T10:00:00Z", "encoder_ms_cached": True}
    fresh = {**row, **timed, "resolution": 128, "encoder_ms_measured_at": "2026-12-07T18:00:00Z"}
    fresh["encoder_ms_cached"] = False
    table = records_table([{**row, **timed}, fresh])
    assert "encoder timed at: 2026-12-03T10:00:00Z to 2026-12-07T18:00:00Z (1 of 2 from the measurement cache" in table


def test_accuracy_needs_an_llm_but_no_device():
    """A point's accuracy needs no timing: profile scores it without a device, and refuses an
    accuracy source without an LLM instead of printing no accuracy."""
    (row,) = profile(_cfg("encoder=fastvithd", "resolution=1024", "llm=qwen2_0_5b", "accuracy=published"))
    assert row["encoder_ms"] is None and row["accuracy"] is not None and row["accuracy_source"].startswith("published")
    with pytest.raises(SpecError, match=r"^llm: accuracy is a VLM's"):
        profile(_cfg("encoder=fastvithd", "accuracy=published"))


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "fastvitsearch.profile", *args], capture_output=True, text=True, timeout=300
    )


def test_cli_json_has_the_documented_fields_and_errors_name_the_field():
    out = _run("encoder=tiny_fastvithd", "resolution=256", "format=json")
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout.strip())
    for key in (
        "encoder",
        "resolution",
        "visual_tokens",
        "params",
        "params_reparameterized",
        "macs",
        "macs_conv",
        "macs_linear",
        "macs_attention",
        "uncounted_ops",
        "output_stride",
        "feature_width",
    ):
        assert key in record
    bad = _run("encoder=tiny_fastvithd", "resolution=100")
    assert bad.returncode != 0
    assert "resolution: 100 px is not a multiple of the output stride 64; use 64 or 128" in bad.stderr
    typo = _run("encoder=fastvithdd")
    assert typo.returncode != 0 and "Could not find 'encoder/fastvithdd'" in typo.stderr


def test_paper_profile_composes_table_6_ttft():
    (record,) = profile(_cfg("encoder=fastvithd", "device=paper_m1max", "llm=qwen2_0_5b"))
    assert record["encoder_ms"] == 116.3 and record["encoder_ms_source"] == "published:Table 10 R3"
    assert (record["prefill_ms"], record["prefill_ms_source"], record["prefill_ms_error"]) == (
        50.5,
        "published:Table 10 R3",
        None,
    )
    assert record["ttft_ms"] == 166.8  # Table 6 prints 166
    assert record["ttft_ms_source"] == "published:sum of parts (published)"


def test_profile_with_an_accuracy_source_says_why_there_is_none():
    (record,) = profile(
        _cfg("encoder=custom_example", "resolution=512", "device=paper_m1max", "llm=qwen2_0_5b", "accuracy=predicted")
    )
    assert record["accuracy"] is None and record["accuracy_metric"] == "TextVQA"
    assert record["refusals"] == [
        "published: the paper trained no encoder with this architecture",
        "predicted: no published TextVQA row for encoder family 'custom'",
    ]


def test_cpu_profile_has_latency_prefill_and_ttft_with_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTVITSEARCH_CACHE", str(tmp_path))
    overrides = [
        "encoder=tiny_fastvithd",
        "resolution=128",
        "device=cpu",
        "llm=tiny_llm",
        "device.prefill=measure",
        "device.timing.warmup_seconds=0",
        "device.timing.min_runs=3",
        "device.timing.budget_seconds=0.1",
    ]
    (record,) = profile(_cfg(*overrides))
    for key in ("iqr", "p90", "n", "noisy", "other_cpu"):
        assert record[f"encoder_ms_{key}"] is not None
    assert record["threads"] == 1 and record["runtime"] == "eager" and record["device_fingerprint"]
    assert record["encoder_ms_source"].startswith("measured:")
    assert record["prefill_ms_source"].startswith("measured:")
    parts = record["encoder_ms"] + record["projector_ms"] + record["prefill_ms"]
    assert record["ttft_ms"] == pytest.approx(parts, abs=1e-3)


def test_calibrated_prefill_is_predicted_with_its_error(tmp_path):
    overrides = [
        "encoder=tiny_fastvithd",
        "resolution=128",
        "device=cpu",
        "llm=tiny_llm",
        "device.prefill=calibrated",
        f"device.cache_dir={tmp_path}",
        "device.timing.warmup_seconds=0",
        "device.timing.budget_seconds=0.05",
    ]
    (record,) = profile(_cfg(*overrides))
    assert record["prefill_ms_source"].startswith("predicted:prefill-fit[tiny_llm]@cpu")
    assert record["prefill_ms_error"] is not None
    # 4 visual tokens are below the 16-token calibration: the sum says a part was extrapolated
    assert record["ttft_ms_source"] == "predicted:sum of parts (measured + predicted), extrapolated"


def test_a_prediction_asked_for_a_kind_the_model_cannot_decompose_says_why_it_was_measured():
    from fastvitsearch.profile.__main__ import _unpredicted_note

    measured = {"encoder_ms": 5.0, "encoder_ms_source": "measured:cpu", "spec": {"kind": "timm"}}
    predicted = {**measured, "encoder_ms_source": "predicted:latency-model@cpu/eager", "spec": {"kind": "hybrid"}}
    cfg = _cfg("encoder=timm", "encoder.model=resnet18", "device=cpu", "device.latency=predicted")
    note = _unpredicted_note(cfg, [measured])
    assert note.startswith("note: device.latency=predicted: the latency model decomposes hybrid and vit encoders")
    assert "not 'timm' ones" in note
    assert _unpredicted_note(cfg, [predicted]) is None
    assert _unpredicted_note(_cfg("encoder=timm", "encoder.model=resnet18", "device=cpu"), [measured]) is None
    both = _cfg("encoder=timm", "encoder.model=resnet18", "device=cpu", "device.latency=both")
    assert "device.latency=both" in _unpredicted_note(both, [measured])


def test_a_results_files_skipped_rows_are_said_in_profile_as_in_a_sweep(tmp_path, capsys):
    path = tmp_path / "mine.csv"
    path.write_text("encoder,resolution,llm,metric,value\ntiny_fastvithd,64,qwen2_0_5b,TextVQA,abc\n")
    overrides = ["encoder=tiny_fastvithd", "resolution=64", "llm=qwen2_0_5b", "accuracy=results_file"]
    (row,) = profile(_cfg(*overrides, f"accuracy.results_file.path={path}"))
    assert row["accuracy"] is None  # the bad row is skipped (and the paper has no tiny encoder)
    said = capsys.readouterr().err
    assert f"accuracy source results_file: {path}:2: could not convert string to float: 'abc'" in said
