"""Core ML export (torch.export path) of all three families, reload and shape check on Linux;
the Mac timing file imported as a device profile and used by a smoke sweep."""

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from fastvitsearch import results
from fastvitsearch.config import CONF_DIR
from fastvitsearch.export.coreml import ExportOptions, export_coreml, inspect_package
from fastvitsearch.presets import get_spec
from fastvitsearch.spec import SpecError
from fastvitsearch.sweep import run_sweep

CONF = str(CONF_DIR)


@pytest.mark.parametrize(
    "name, resolution",
    [("tiny_fastvithd", 128), ("fastvithd", 64), ("fastvit", 64), ("vit_l14", 56)],
)
def test_export_reloads_with_the_documented_io(tmp_path, name, resolution):
    spec = get_spec(name)
    result = export_coreml(spec, resolution, tmp_path)
    assert result.package.name == f"{name}_{resolution}.mlpackage" and result.package.is_dir()
    info = inspect_package(result.package)
    assert info["inputs"] == {"images": [1, 3, resolution, resolution]}
    assert info["outputs"] == {"image_features": [1, spec.tokens(resolution), spec.feature_width]}
    assert info["mil_ops"] and "needs macOS" in info["prediction"]
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["spec_hash"] == spec.content_hash and sidecar["visual_tokens"] == spec.tokens(resolution)
    assert sidecar["export"]["capture"] == "torch.export" and sidecar["export"]["precision"] == "fp16"
    assert sidecar["versions"]["coremltools"]


def test_unsupported_options_name_the_field(tmp_path):
    with pytest.raises(SpecError, match=r"^precision: unsupported value 'int8'"):
        ExportOptions(precision="int8")
    with pytest.raises(SpecError, match=r"^compute_units: unsupported value 'NE_ONLY'"):
        ExportOptions(compute_units="NE_ONLY")
    with pytest.raises(SpecError, match=r"^resolution: 100 px"):
        export_coreml(get_spec("tiny_fastvithd"), 100, tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SpecError, match=r"^out_dir: cannot write to .*a-file/exports"):  # refused before converting
        export_coreml(get_spec("tiny_fastvithd"), 128, blocker / "exports")


def _fixture_results(path: Path) -> Path:
    """What time_coreml.py writes on a Mac (hand-made numbers: a fixture, not a measurement)."""
    rows = [
        {
            "package": "tiny_fastvithd_128.mlpackage",
            "encoder": "tiny_fastvithd",
            "resolution": 128,
            "spec_hash": get_spec("tiny_fastvithd").content_hash,
            "compute_unit": "ALL",
            "median_ms": 0.5,
            "trimmed_mean_ms": 0.51,
            "p90_ms": 0.6,
            "n": 100,
            "precision": "fp16",
        },
        {
            "package": "tiny_fastvit_64.mlpackage",
            "encoder": "tiny_fastvit",
            "resolution": 64,
            "spec_hash": get_spec("tiny_fastvit").content_hash,
            "compute_unit": "CPU_ONLY",
            "median_ms": 0.9,
            "n": 100,
        },
    ]
    path.write_text(json.dumps({"device_name": "Fixture Mac / Apple M-test", "results": rows}))
    return path


def test_coreml_results_drive_a_smoke_sweep(tmp_path):
    results_file = _fixture_results(tmp_path / "coreml_results.json")
    overrides = [  # the default grid (tiny encoders); smoke's device.timing belongs to the cpu schema
        "resolution=[64,128]",
        "objectives.maximize=[visual_tokens]",
        f"output_dir={tmp_path / 'study'}",
        "quiet=true",
        "device=coreml",
        f"device.results={results_file}",
        f"+device.fallback.cache_dir={tmp_path / 'cache'}",
        "device.fallback.name=cpu",
        "+device.fallback.prefill=measure",
        "+device.fallback.timing={warmup_runs:1,warmup_seconds:0,min_runs:3,max_runs:3,budget_seconds:0}",
    ]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    run_sweep(cfg)
    table = results.load(tmp_path / "study").set_index("point")
    covered = table.loc["tiny_fastvithd@128+tiny_llm"]
    assert covered["encoder_ms"] == 0.5
    assert covered["encoder_ms_source"] == "measured:coreml:Fixture Mac / Apple M-test/ALL"
    assert covered["device"] == "coreml:Fixture Mac / Apple M-test" and covered["runtime"] == "coreml/ALL"
    other = table.loc["tiny_fastvit@64+tiny_llm"]  # its row in the file is for CPU_ONLY, not ALL
    assert other["encoder_ms_source"].startswith("measured:") and "coreml" not in other["encoder_ms_source"]
    assert other["device"] == "cpu" and other["runtime"] == "eager"  # the fallback timed it
    assert covered["prefill_ms_source"].startswith("measured:")


def test_coreml_device_errors_name_the_field(tmp_path):
    from fastvitsearch.profile.devices import device_from_config

    with pytest.raises(SpecError, match=r"^device.results: no Core ML results file"):
        device_from_config({"name": "coreml", "results": str(tmp_path / "missing.json")})
    results_file = _fixture_results(tmp_path / "r.json")
    with pytest.raises(SpecError, match=r"^device.compute_unit: .* no results for compute unit CPU_AND_GPU"):
        device_from_config({"name": "coreml", "results": str(results_file), "compute_unit": "CPU_AND_GPU"})
