"""Deployment runtimes: ONNX Runtime and OpenVINO export, check and time the same encoder."""

import importlib.util

import pytest
import torch

import fastvitsearch.profile.runtimes as runtimes
from fastvitsearch.build import build_encoder
from fastvitsearch.cache import MeasurementCache
from fastvitsearch.presets import get_spec
from fastvitsearch.profile.devices import device_from_config
from fastvitsearch.profile.measure import measure_encoder
from fastvitsearch.profile.runtimes import RUNTIME_TABLE, RuntimeMismatch, prepare_checked
from fastvitsearch.profile.timing import TimingProtocol
from fastvitsearch.spec import SpecError

QUICK = TimingProtocol(warmup_runs=1, warmup_seconds=0.0, min_runs=3, max_runs=3, budget_seconds=0.0)
CASES = [("onnxruntime", "fp32"), ("openvino", "fp32")]
if runtimes._has_bf16():
    CASES.append(("openvino", "bf16"))


def _needs(runtime):
    package = RUNTIME_TABLE[runtime].package
    return pytest.mark.skipif(importlib.util.find_spec(package) is None, reason=f"needs {package} (the runtimes extra)")


@pytest.mark.parametrize(("runtime", "precision"), [pytest.param(r, p, marks=_needs(r)) for r, p in CASES])
@pytest.mark.parametrize(("encoder", "resolution"), [("tiny_fastvithd", 128), ("tiny_vit", 64)])
def test_exported_encoders_match_eager_and_are_timed_and_cached(tmp_path, runtime, precision, encoder, resolution):
    cache = MeasurementCache(tmp_path)
    kwargs = dict(device=torch.device("cpu"), runtime=runtime, precision=precision, protocol=QUICK, cache=cache)
    first = measure_encoder(get_spec(encoder), resolution, **kwargs)
    environment = first.detail["environment"]
    assert first.kind == "measured" and first.value > 0 and first.detail["cached"] is False
    assert environment["runtime"] == runtime and environment["precision"] == precision
    assert environment["runtime_version"] == RUNTIME_TABLE[runtime].version()
    assert environment["numerics_vs_eager_fp32"] <= RUNTIME_TABLE[runtime].tolerance[precision]
    assert list((tmp_path / "exports").iterdir())  # the export is kept for the next measurement
    again = measure_encoder(get_spec(encoder), resolution, **kwargs)
    assert again.detail["cached"] is True and again.value == first.value


@pytest.mark.parametrize("runtime", [pytest.param(r, marks=_needs(r)) for r in ("onnxruntime", "openvino")])
def test_an_uncached_export_leaves_nothing_on_disk(monkeypatch, tmp_path, runtime):
    """Without a cache the export lives in a temporary folder only until the runtime has loaded it
    (a 30-architecture benchmark had left 890 models, 60 GB, behind)."""
    monkeypatch.setattr(runtimes.tempfile, "tempdir", str(tmp_path))
    encoder = build_encoder(get_spec("tiny_vit"), 64, dynamic_size=False).eval()
    run, error = prepare_checked(encoder, torch.rand(1, 3, 64, 64), runtime, "fp32")
    assert error <= RUNTIME_TABLE[runtime].tolerance["fp32"] and run() is not None
    assert list(tmp_path.iterdir()) == []


@_needs("onnxruntime")
def test_a_runtime_numerics_mismatch_names_the_runtime(monkeypatch, tmp_path):
    monkeypatch.setitem(RUNTIME_TABLE["onnxruntime"].tolerance, "fp32", 0.0)
    encoder = build_encoder(get_spec("tiny_fastvithd"), 128, dynamic_size=False).reparameterize().eval()
    with pytest.raises(RuntimeMismatch, match=r"^runtime: onnxruntime fp32 output differs from eager fp32"):
        prepare_checked(encoder, torch.rand(1, 3, 128, 128), "onnxruntime", "fp32", export=tmp_path / "m.onnx")


def test_a_missing_runtime_says_which_extra_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(
        SpecError, match=r"^device.runtime: openvino needs the openvino package: pip install -e '.\[runtimes\]'"
    ):
        device_from_config({"name": "cpu", "runtime": "openvino"})


def test_unsupported_precisions_are_refused_naming_the_key(monkeypatch):
    with pytest.raises(SpecError, match=r"^device.precision: unknown precision 'int4'"):
        device_from_config({"name": "cpu", "precision": "int4"})
    if importlib.util.find_spec("onnxruntime") is not None:
        with pytest.raises(SpecError, match=r"^device.precision: onnxruntime runs fp32 here, not bf16"):
            device_from_config({"name": "cpu", "runtime": "onnxruntime", "precision": "bf16"})
    monkeypatch.setattr(runtimes, "cpu_flags", lambda: frozenset({"avx2"}))  # a CPU without bf16/fp16
    with pytest.raises(SpecError, match=r"^device.precision: bf16 needs a CPU with avx512_bf16 or AMX"):
        device_from_config({"name": "cpu", "precision": "bf16"})
    with pytest.raises(SpecError, match=r"^device.precision: fp16 needs a CPU with avx512_fp16"):
        device_from_config({"name": "cpu", "precision": "fp16"})
    with pytest.raises(SpecError, match=r"^device.runtime: unknown runtime 'tensorrt'"):
        device_from_config({"name": "cpu", "runtime": "tensorrt"})


def test_runtime_compare_is_one_study_per_runtime():
    from hydra import compose, initialize_config_dir

    from fastvitsearch.config import CONF_DIR
    from fastvitsearch.space import grid_points
    from fastvitsearch.sweep import SweepSetup

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["+experiment=runtime_compare", "runtime=openvino_fp32"])
        default = compose(config_name="config", overrides=["+experiment=runtime_compare"])
    assert (cfg.device.runtime, cfg.device.precision, cfg.study_name) == ("openvino", "fp32", "openvino_fp32")
    assert default.study_name == "eager_fp32"
    assert sorted(p.key for p in grid_points(cfg.grid)) == ["fastvit@768", "fastvithd@1024", "vit_l14@336"]
    if importlib.util.find_spec("openvino") is not None:
        assert SweepSetup.from_config(cfg).device.runtime == "openvino"
