"""The work-unit latency model: decomposition, calibration on tiny encoders, prediction with its
error, ``device.latency`` modes and a screened search's rule (no wall-clock assertions)."""

from __future__ import annotations

import json

import pytest
import torch

from fastvitsearch.build import build_encoder
from fastvitsearch.cache import MeasurementCache
from fastvitsearch.llm import resolve_llm
from fastvitsearch.point import OVER_BUDGET, Point, evaluate
from fastvitsearch.presets import resolve_encoder
from fastvitsearch.profile import latency_predictor, runtimes
from fastvitsearch.profile.latency_predictor import calibrate, fit_predictor, time_units
from fastvitsearch.profile.local_device import LocalDevice
from fastvitsearch.profile.runtimes import RUNTIME_TABLE, RuntimeMismatch
from fastvitsearch.profile.timing import TimingProtocol
from fastvitsearch.profile.work_units import WorkUnit, coordinates, unit_modules, work, work_units
from fastvitsearch.record import Sourced, TrialRecord
from fastvitsearch.spec import HybridEncoderSpec, SpecError, StageSpec, ViTSpec

QUICK = TimingProtocol(warmup_runs=1, warmup_seconds=0.0, min_runs=2, max_runs=3, budget_seconds=0.01)


def tiny_hybrid(width: int = 16, attention: bool = True) -> HybridEncoderSpec:
    stages = (
        StageSpec(depth=1, width=width, downsample=False),
        StageSpec(depth=2, width=2 * width, se_downsample=True),
        StageSpec(depth=1, width=4 * width, mixer="attention" if attention else "repmixer", pos_enc="rcpe"),
    )
    return HybridEncoderSpec(f"tiny_w{width}", stages, attention_norm="layernorm", lkc_use_act=True)


TINY_VIT = ViTSpec("tiny_vit", patch=16, depth=2, width=64, heads=2)
TINY_CALIBRATION = [
    (tiny_hybrid(16), 64),
    (tiny_hybrid(32), 128),
    (tiny_hybrid(16, attention=False), 128),
    (ViTSpec("cal_vit", patch=16, depth=1, width=64, heads=2), 64),
    (ViTSpec("cal_vit", patch=16, depth=1, width=96, heads=3), 128),
]


@pytest.mark.parametrize("spec,resolution", [(tiny_hybrid(), 128), (TINY_VIT, 96), (resolve_encoder("fastvit"), 256)])
def test_units_from_the_spec_match_the_built_modules(spec, resolution):
    """The spec-only decomposition (what a prediction uses) lists the built encoder's modules,
    in order, with each module's output width and pixels."""
    units = work_units(spec, resolution)
    encoder = build_encoder(spec, resolution, inference_mode=True, dynamic_size=False).eval()
    modules = unit_modules(encoder.backbone, spec.kind)
    assert len(units) == len(modules)
    shapes = []
    hooks = [m.register_forward_hook(lambda _m, _a, out: shapes.append(tuple(out.shape))) for m in modules]
    with torch.inference_mode():
        encoder.features(torch.rand(1, 3, resolution, resolution))
    for hook in hooks:
        hook.remove()
    for unit, shape in zip(units, shapes, strict=True):
        if len(shape) == 4:  # [B, C, H, W]
            assert (unit.width, unit.pixels) == (shape[1], shape[2] * shape[3]), unit
        else:  # ViT tokens [B, N, C] (the patch embedding has no class token yet)
            assert (unit.width, unit.pixels) == (shape[2], shape[1]), unit
        assert work(unit) > 0
    # a kind's coordinates have one length, so its calibration samples can be interpolated
    for kind in {u.kind for u in units}:
        assert len({len(coordinates(u)) for u in units if u.kind == kind}) == 1


def test_work_follows_the_operation_count():
    block = WorkUnit("attention", 256, 1024, in_width=256, mlp_ratio=4.0)
    wider = WorkUnit("attention", 512, 1024, in_width=512, mlp_ratio=4.0)
    more_tokens = WorkUnit("attention", 256, 4096, in_width=256, mlp_ratio=4.0)
    assert 3 * work(block) < work(wider) < 4 * work(block)  # dense layers C^2, attention C
    assert work(more_tokens) > 4 * work(block)  # attention's P^2 on top of linear P
    conv = WorkUnit("repmixer", 96, 4096, in_width=96, mlp_ratio=3.0)
    assert work(WorkUnit("repmixer", 96, 4096, in_width=96, mlp_ratio=4.0)) > work(conv)
    assert coordinates(more_tokens)[:3] == [12.0, 8.0, 4.0]  # log2 pixels, log2 width, MLP ratio


def test_a_kind_the_model_cannot_decompose_is_refused_naming_the_field():
    with pytest.raises(SpecError, match="device.latency"):
        work_units(resolve_encoder("convllava"), 256)


@pytest.fixture(scope="module")
def tiny_predictor(tmp_path_factory):
    cache = MeasurementCache(tmp_path_factory.mktemp("units"))
    return calibrate(TINY_CALIBRATION, protocol=QUICK, cache=cache), cache


def test_calibration_on_tiny_encoders_predicts_with_a_held_out_error(tiny_predictor):
    predictor, _ = tiny_predictor
    assert {"stem", "patch_embed", "rcpe", "repmixer", "attention", "final_conv", "vit_block"} <= set(predictor.models)
    assert predictor.name == "latency-model@cpu/eager"
    assert isinstance(predictor.held_out_error, float) and predictor.held_out_error >= 0
    assert len(predictor.calibration) == len(TINY_CALIBRATION)
    estimate = predictor.estimate(tiny_hybrid(24), 96)  # never calibrated on
    assert estimate.kind == "predicted" and estimate.label == predictor.name
    assert estimate.value > 0 and estimate.error == predictor.held_out_error
    # deeper is slower: the sum over units grows with every block; the glue's scale is
    # non-negative (on tiny encoders' noisy timings it can fit 0, all fixed cost: then equal)
    deeper = HybridEncoderSpec(
        "deeper", tuple(StageSpec(**{**s.__dict__, "depth": s.depth + 2}) for s in tiny_hybrid(24).stages)
    )
    assert predictor.units_ms(deeper, 96) > predictor.units_ms(tiny_hybrid(24), 96)
    assert predictor.predict_ms(deeper, 96) >= predictor.predict_ms(tiny_hybrid(24), 96)


def test_unit_timings_are_cached(tiny_predictor, monkeypatch):
    _, cache = tiny_predictor

    def no_build(*args, **kwargs):
        raise AssertionError("a cached calibration builds nothing")

    monkeypatch.setattr(latency_predictor, "build_encoder", no_build)
    again = calibrate(TINY_CALIBRATION, protocol=QUICK, cache=cache)
    assert set(again.models) == set(tiny_predictor[0].models)


@pytest.mark.skipif(not runtimes._has_bf16(), reason="needs a CPU with bf16 (avx512_bf16/AMX)")
def test_a_runtime_off_eager_fp32_is_refused_before_any_unit_is_timed(tmp_path, monkeypatch):
    # chains are parts of the encoder and are not checked each: the whole encoder's check comes first
    monkeypatch.setitem(RUNTIME_TABLE["eager"].tolerance, "bf16", 1e-9)
    with pytest.raises(RuntimeMismatch, match=r"^runtime: eager bf16 output differs from eager fp32"):
        time_units(
            tiny_hybrid(16),
            64,
            device=torch.device("cpu"),
            precision="bf16",
            protocol=QUICK,
            cache=MeasurementCache(tmp_path),
        )
    assert not [path for path in tmp_path.rglob("*") if path.is_file()], "nothing was timed, nothing cached"


def test_held_out_error_comes_from_leaving_each_encoder_out():
    encoders = [time_units(spec, res, device=torch.device("cpu"), protocol=QUICK) for spec, res in TINY_CALIBRATION[:3]]
    predictor = fit_predictor("test", encoders)
    assert [row["encoder"] for row in predictor.calibration] == [e.label for e in encoders]
    assert [row["measured_ms"] for row in predictor.calibration] == [round(e.whole_ms, 3) for e in encoders]
    # the first encoder's held-out value is what a predictor fitted on the other two says about it
    others = fit_predictor("others", encoders[1:])
    units = sum(others.models[s.unit.kind].predict(s.unit) * s.count for s in encoders[0].units)
    expected = others.glue["hybrid"](units)
    assert predictor.calibration[0]["held_out_ms"] == pytest.approx(expected, rel=1e-3)
    assert predictor.calibration[0]["held_out_ms"] != pytest.approx(
        predictor.glue["hybrid"](
            sum(predictor.models[s.unit.kind].predict(s.unit) * s.count for s in encoders[0].units)
        ),
        rel=1e-6,
    )
    # non-negative (NNLS); which term carries three tiny timings on a noisy host is not fixed: a run
    # on 2026-12-07's unsteady host fitted scale 0 and fixed 6.4 ms
    glue = predictor.glue["hybrid"]
    assert glue.scale >= 0 and glue.fixed_ms >= 0 and glue.scale + glue.fixed_ms > 0


def test_device_latency_modes(tmp_path):
    cache = MeasurementCache(tmp_path)
    spec, llm = tiny_hybrid(24), resolve_llm("tiny_llm")
    kw = dict(protocol=QUICK, cache=cache, prefill="measure", latency_calibration="tiny")
    predicted = evaluate(Point("t", spec, 96, llm), LocalDevice(latency="predicted", **kw), [], None)
    assert predicted.encoder_ms.source == "predicted:latency-model@cpu/eager"
    assert predicted.encoder_ms.error is not None and predicted.encoder_ms_predicted is None
    assert predicted.ttft_ms.kind == "predicted"
    both = evaluate(Point("t", spec, 96, llm), LocalDevice(latency="both", **kw), [], None)
    assert both.encoder_ms.kind == "measured" and both.encoder_ms_predicted.value == predicted.encoder_ms.value
    row = both.to_row()
    assert row["encoder_ms_predicted_source"] == "predicted:latency-model@cpu/eager"
    assert TrialRecord.from_row(row).to_row() == row
    # a kind the model cannot decompose is measured, even when predictions are asked for
    other = resolve_encoder({"model": "resnet10t"})
    assert evaluate(Point("r", other, 64, None), LocalDevice(latency="predicted", **kw), [], None).encoder_ms.kind == (
        "measured"
    )
    with pytest.raises(SpecError, match="device.latency"):
        LocalDevice(latency="guessed", **kw)
    with pytest.raises(SpecError, match="device.latency_calibration"):
        LocalDevice(**{**kw, "latency_calibration": "huge"})
    # measured mode keeps no prediction, but a screened search gets one when it asks
    measured = LocalDevice(**kw)
    assert measured.predicted_encoder_latency(spec, 96) is None
    assert measured.predicted_encoder_latency(spec, 96, required=True).kind == "predicted"


class ScreeningDevice:
    """A device whose latency model predicts 100 ms +-10 % and whose measurement says 95 ms."""

    name = "stub"

    def __init__(self) -> None:
        self.measured = 0

    def record_fields(self, spec, resolution):
        return {"device": self.name}

    def predicted_encoder_latency(self, spec, resolution, required=False):
        return Sourced(100.0, "predicted", "latency-model@stub/eager", 0.10)

    def encoder_latency(self, spec, resolution):
        self.measured += 1
        return Sourced(95.0, "measured", "stub")

    def tiled_encoder_latency(self, spec, resolution, tiling):
        return None

    def projector_latency(self, feature_width, tokens, llm):
        return Sourced(1.0, "measured", "stub")

    def prefill_latency(self, llm, tokens):
        return Sourced(9.0, "measured", "stub")


class FixedAccuracy:
    name = "fixed"

    def __init__(self) -> None:
        self.calls = 0

    def lookup(self, spec, resolution, llm, metric):
        self.calls += 1
        return Sourced(50.0, "proxy", "fixed")

    def diagnostics(self):
        return []


def test_screening_measures_only_what_can_reach_the_front():
    point = Point("t", tiny_hybrid(), 64, resolve_llm("tiny_llm"))
    device, source = ScreeningDevice(), FixedAccuracy()
    args = (point, device, [source], "textvqa")

    def never(record):
        return None

    measured = evaluate(*args, screen=never)
    assert device.measured == 1 and measured.encoder_ms.kind == "measured"
    assert measured.encoder_ms_predicted.value == 100.0 and measured.ttft_ms.value == 105.0

    seen = []

    def dominated(record):
        seen.append(record)
        return "dominated by a@1 (trial 0) within the prediction's error"

    kept = evaluate(*args, screen=dominated)
    assert device.measured == 1, "a candidate that cannot reach the front is not measured"
    assert kept.encoder_ms.kind == "predicted" and "not measured: dominated" in kept.encoder_ms.label
    assert kept.accuracy.value == 50.0 and seen[0].encoder_ms.error == 0.10  # the screen sees the error

    over = evaluate(*args, ttft_budget_ms=99.0, screen=never)  # even 100 ms (the low end) > 99 ms
    assert device.measured == 1 and source.calls == 2, "neither measured nor trained"
    assert over.accuracy is None and over.refusals[0].startswith(OVER_BUDGET)
    assert "predicted" in over.refusals[0]
    within = evaluate(*args, ttft_budget_ms=101.0, screen=never)  # 110 ms predicted, 100 ms possible
    assert within.accuracy is not None and device.measured == 2


def test_front_screen_rule(tmp_path):
    import optuna

    from fastvitsearch.results import RECORD_ATTR
    from fastvitsearch.sweep import front_screen

    objectives = {"ttft_ms": "minimize", "accuracy": "maximize"}
    study = optuna.create_study(directions=["minimize", "maximize"])
    study.add_trial(
        optuna.trial.create_trial(
            values=[200.0, 60.0],
            user_attrs={
                RECORD_ATTR: {
                    "point": "a@1",
                    "ttft_ms": 200.0,
                    "accuracy": 60.0,
                    "encoder_ms": 150.0,
                    "encoder_ms_source": "measured:cpu",
                    "encoder_ms_error": None,
                },
                "point": "a@1",
            },
        )
    )
    screen = front_screen(study, objectives)

    def candidate(ttft, accuracy, error=0.1):
        row = {
            "ttft_ms": ttft,
            "accuracy": accuracy,
            "encoder_ms": ttft - 10,
            "encoder_ms_error": error,
            "encoder_ms_source": "predicted:latency-model@cpu/eager",
        }
        return type("R", (), {"to_row": lambda self: row})()

    assert "dominated by a@1" in screen(candidate(260.0, 55.0))  # slower and worse even at -10 %
    assert screen(candidate(215.0, 55.0)) is None  # could be faster than a@1 within its error
    assert screen(candidate(260.0, 65.0)) is None  # more accurate: on the front whatever its TTFT


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_calibration_in_an_exporting_runtime(tmp_path, runtime):
    """Units are exported and timed in the device's runtime (their captured inputs must be
    traceable: not inference-mode tensors; the composed chains' weights are read from each unit's
    file), and the model is named for it."""
    pytest.importorskip(runtime)
    specs = [TINY_CALIBRATION[0], TINY_CALIBRATION[3]]  # a hybrid and a ViT
    predictor = calibrate(specs, runtime=runtime, protocol=QUICK, cache=MeasurementCache(tmp_path))
    assert predictor.name == f"latency-model@cpu/{runtime}"
    assert predictor.estimate(tiny_hybrid(24), 96).value > 0 and predictor.estimate(TINY_VIT, 96).value > 0
    # a compiled graph converts its input and output once per graph: a unit's cost is its marginal
    # cost in a chain, recorded beside the chain and the chain it subtracts
    units = [json.loads(p.read_text()) for p in tmp_path.rglob("*.json")]
    units = [u["value"] for u in units if u["key"].get("kind") == "unit" and "unit" in u["key"]]
    assert units and all({"chain_ms", "base_ms"} <= set(u) for u in units)
    assert all(0 < u["median_ms"] < u["chain_ms"] for u in units)
    # the hybrid's whole graph was composed from its units, the ViT's exported
    wholes = [json.loads(p.read_text())["key"] for p in tmp_path.rglob("*.json")]
    wholes = {w["whole"]: w.get("graph") for w in wholes if "whole" in w}
    assert wholes == {specs[0][0].content_hash: "units-composed", specs[1][0].content_hash: None}


def test_an_exporting_runtime_prepares_every_graph_before_timing_any(tmp_path, monkeypatch):
    """Graphs compile side by side while none is timed: every load (the whole encoder's and each
    chain's) comes before the first timing, and each chain is loaded once."""
    pytest.importorskip("onnxruntime")
    import dataclasses

    events = []
    entry = RUNTIME_TABLE["onnxruntime"]

    def load(path, images, precision, threads):
        events.append(("load", path.name))
        return entry.load(path, images, precision, threads)

    def measure(*args, **kwargs):
        events.append(("measure", None))
        return real_measure(*args, **kwargs)

    real_measure = latency_predictor.measure
    monkeypatch.setitem(RUNTIME_TABLE, "onnxruntime", dataclasses.replace(entry, load=load))
    monkeypatch.setattr(latency_predictor, "measure", measure)
    spec, resolution = TINY_CALIBRATION[0]
    encoder = time_units(spec, resolution, device=torch.device("cpu"), runtime="onnxruntime", protocol=QUICK)
    kinds = [kind for kind, _ in events]
    assert "measure" in kinds and "load" not in kinds[kinds.index("measure") :]
    loads = [name for kind, name in events if kind == "load"]
    assert len(loads) == len(set(loads)) == kinds.count("measure")  # one load per timed graph
    assert len(encoder.units) == len({json.dumps(u.key, sort_keys=True) for u in work_units(spec, resolution)})


def test_graphs_prepared_at_once_hold_a_bounded_weight(monkeypatch):
    """Units are prepared in batches whose graphs hold at most PREPARE_BYTES of weights (a chain two
    units share counts once, in the first batch); a chain over the bound is prepared alone."""
    monkeypatch.setattr(latency_predictor, "PREPARE_BYTES", 10)
    needs = {"a": [(0,) * 4, (0,) * 2], "b": [(1, 2), (2,)], "c": [(2,), (3,) * 4], "d": [(4,) * 4, (4,) * 2]}
    size = {0: 1, 1: 1, 2: 2, 3: 1, 4: 3}
    batches = latency_predictor._batches(list(needs), needs, lambda chain: sum(size[j] for j in chain))
    # a: 6; b: 3 + 2 = 5 (11 > 10: new batch); c: only (3,)*4 is new, 4 (9); d: 12 + 6 (alone)
    assert batches == [["a"], ["b", "c"], ["d"]]


def test_unit_chains_compose_one_export_per_unit(monkeypatch):
    """An exporting runtime's chains are composed from one export per unit (and input shape): the
    composed graph computes what the chained modules compute, copies share their weights, and a
    ViT block handed the patch embedding's tokens (no class token yet) gets its own export."""
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from fastvitsearch.profile import unit_chains

    exports = []
    write = unit_chains.write_onnx
    monkeypatch.setattr(
        unit_chains, "write_onnx", lambda m, x, path: exports.append(tuple(x.shape)) or write(m, x, path)
    )
    for spec, resolution in [(tiny_hybrid(16), 64), (TINY_VIT, 64)]:
        encoder = build_encoder(spec, resolution, inference_mode=True, dynamic_size=False).eval()
        modules = unit_modules(encoder.backbone, spec.kind)
        inputs, _, _ = latency_predictor.forward_pass(encoder, modules, torch.rand(1, 3, resolution, resolution))
        chains = unit_chains.UnitChains(modules, inputs)  # every unit's output computed by the chains
        exports.clear()
        try:
            for chain in ([1] * 4, [1] * 2, [0, 1], [1]):  # unit 1 keeps its input's shape
                x = inputs[chain[0]]
                with torch.no_grad():
                    expected = x
                    for i in chain:
                        expected = modules[i](expected)
                path = chains.chain(chain)
                session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
                assert out.shape == tuple(expected.shape)
                assert runtimes.relative_error(out, expected) < 1e-4, (spec.name, chain)
                if chain == [1] * 4:
                    single = onnx.load(str(chains.chain([1])))
                    assert len(onnx.load(str(path)).graph.initializer) == len(single.graph.initializer)
                    # and they stay in the unit's weights file, written once
                    stubs = onnx.load(str(path), load_external_data=False).graph.initializer
                    assert all(t.data_location == onnx.TensorProto.EXTERNAL for t in stubs)
        finally:
            chains.close()
        # unit 1 once, unit 0 once, and a ViT block again on the patch embedding's 16 tokens (not 17)
        assert len(exports) == (2 if spec.kind == "hybrid" else 3), exports


def test_whole_encoder_composed_from_units(tmp_path):
    """A hybrid's forward pass is its units in order and then the tokens read-out, so an exporting
    runtime's calibration composes the whole graph from the unit exports: same operators as the
    encoder's own export (Identity nodes aside), same output. A ViT's is not (its class token and
    position table sit between units), and it keeps its own export."""
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from collections import Counter

    from fastvitsearch.profile.unit_chains import UnitChains
    from fastvitsearch.profile.work_units import UNITS_ARE_FORWARD

    assert "hybrid" in UNITS_ARE_FORWARD and "vit" not in UNITS_ARE_FORWARD
    for spec, resolution in [(tiny_hybrid(16), 64), (resolve_encoder("tiny_fastvithd"), 128)]:
        encoder = build_encoder(spec, resolution, inference_mode=True, dynamic_size=False).eval()
        modules = unit_modules(encoder.backbone, spec.kind)
        images = torch.rand(1, 3, resolution, resolution)
        inputs, outputs, reference = latency_predictor.forward_pass(encoder, modules, images)
        n = len(modules)  # the forward pass's outputs are reused, the read-out's too (as the calibration does)
        chains = UnitChains(
            [*modules, latency_predictor.Readout(encoder)], {**inputs, n: outputs[n - 1]}, {**outputs, n: reference}
        )
        try:
            composed = chains.chain(list(range(len(modules) + 1)))
            exported = runtimes.write_onnx(encoder, images, tmp_path / f"{spec.name}.onnx")

            def ops(path):
                return Counter(n.op_type for n in onnx.load(str(path)).graph.node if n.op_type != "Identity")

            assert ops(composed) == ops(exported), spec.name
            for path in (composed, exported):
                session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                out = session.run(None, {session.get_inputs()[0].name: images.numpy()})[0]
                assert out.shape == tuple(reference.shape)
                assert runtimes.relative_error(out, reference) < 1e-4, (spec.name, path)
        finally:
            chains.close()


def test_a_unit_graph_with_control_flow_is_refused():
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from fastvitsearch.profile.unit_chains import compose_chain

    branch = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["y"])],
        "b",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    node = helper.make_node("If", ["cond"], ["features"], then_branch=branch, else_branch=branch)
    graph = helper.make_graph(
        [node],
        "unit",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1])],
        [helper.make_tensor("cond", TensorProto.BOOL, [], [True])],
    )
    with pytest.raises(ValueError, match="control flow"):
        compose_chain([("unit0", helper.make_model(graph))])


def test_validation_benchmark_refuses_a_precision_before_reading_the_host(tmp_path, monkeypatch, capsys) -> None:
    """``benchmarks/latency_predictor.py`` with a precision the runtime or the CPU cannot run stops at
    once naming the key, before it makes its folder or spends a matrix-rate reading on the host."""
    import runpy
    import sys
    from pathlib import Path

    script = Path(__file__).parents[1] / "benchmarks" / "latency_predictor.py"
    out = tmp_path / "never"
    monkeypatch.setattr(sys, "argv", [str(script), "--precision", "fp64", "--out", str(out)])
    monkeypatch.setattr(sys, "path", [str(script.parent), *sys.path])
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(str(script), run_name="__main__")
    assert stopped.value.code == 2
    assert "device.precision" in capsys.readouterr().err
    assert not out.exists()
