"""The proxy task, its validation statistics, the calibrated accuracy source, and arch_search on it:
anchors once, no repeated evaluation, cheap first (over-budget points are not trained)."""

import copy
import dataclasses
import json

import numpy as np
import optuna
import pytest
import torch
from hydra import compose, initialize_config_dir

import fastvitsearch.sweep as sweep_module
from fastvitsearch import results
from fastvitsearch.accuracy import proxy as proxy_module
from fastvitsearch.accuracy import stamping
from fastvitsearch.accuracy.calibration import MonotoneMap, ProxyRun, ProxyRuns, config_fingerprint, rank_agreement
from fastvitsearch.accuracy.channels_last import crashes_onednn, to_channels_last
from fastvitsearch.accuracy.proxy import (
    Page,
    ProxyConfig,
    ProxyModel,
    _training_batches,
    proxy_config,
    train_and_evaluate,
    windows,
)
from fastvitsearch.accuracy.proxy_calibrated import ProxyCalibratedAccuracy
from fastvitsearch.accuracy.stamping import blend_glyphs, blend_in_order
from fastvitsearch.config import CONF_DIR
from fastvitsearch.llm import LLM_PRESETS
from fastvitsearch.point import OVER_BUDGET, Point, evaluate
from fastvitsearch.presets import get_spec
from fastvitsearch.profile.paper_device import PaperM1Max
from fastvitsearch.record import Refusal, Sourced
from fastvitsearch.spec import SpecError
from fastvitsearch.sweep import run_sweep

EASY = ProxyConfig(
    canvas=256, cell=64, font_sizes=(40, 56), occupancy=1.0, window=128, cells_per_window=16, steps=120,
    batch=8, lr=3e-3, width_scale=1.0, depth_scale=1.0, hidden=32, eval_windows=16,
)  # fmt: skip


def _cfg(tmp_path, *overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(
            config_name="config",
            overrides=[f"output_dir={tmp_path / 'study'}", "quiet=true", f"device.cache_dir={tmp_path}", *overrides],
        )


# --- the task ----------------------------------------------------------------------------------
def test_windows_match_compute_across_resolutions_and_label_cells_inside():
    config = ProxyConfig()
    for resolution in (256, 512, 1024):
        images, centres, digits, sizes = windows(0, 2, resolution, 256, config)
        assert images.shape == (2, 3, 256, 256) and digits.shape == (2, config.cells_per_window)
        assert 0 < centres.min() and centres.max() < 1 and sizes.max() < len(config.font_sizes)
    a, b = windows(5, 2, 512, 256, config), windows(5, 2, 512, 256, config)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))  # pages come from the seed


@pytest.mark.parametrize("zoom", [0.5, 0.75, 1.0])
def test_pages_with_glyphs_blended_at_once_equal_pages_blended_in_order(zoom, monkeypatch):
    """The vectorized blend draws the validated task's pages bit for bit, at the zooms windows use,
    with glyphs cut by the region's far edges and the page's clutter underneath."""
    config = ProxyConfig()
    page = Page.from_seed(3, config)
    x0 = 5 * config.cell

    def refuse(*args):
        raise AssertionError("a page's glyphs do not overlap: the vectorized path must draw them")

    monkeypatch.setattr(stamping, "blend_in_order", refuse)
    at_once = page.render(x0, x0, 300, config, zoom)
    monkeypatch.undo()
    monkeypatch.setattr(proxy_module, "blend_glyphs", blend_in_order)
    assert np.array_equal(at_once, page.render(x0, x0, 300, config, zoom))


def test_overlapping_glyphs_are_blended_in_order():
    rng = np.random.default_rng(0)
    base = rng.random((64, 64), dtype=np.float32) * 255
    masks = [rng.random((h, w), dtype=np.float32) for h, w in rng.integers(3, 20, (40, 2))]
    xs, ys, inks = rng.integers(-10, 64, 40), rng.integers(-10, 64, 40), rng.integers(0, 70, 40)
    at_once, in_order = base.copy(), base.copy()
    blend_glyphs(at_once, masks, xs, ys, inks)
    blend_in_order(in_order, masks, xs, ys, inks)
    assert np.array_equal(at_once, in_order) and not np.array_equal(at_once, base)


def test_page_drawing_workers_draw_the_same_steps():
    config = dataclasses.replace(EASY, steps=3, loader_workers=2)
    for step, drawn in enumerate(_training_batches(7, 128, 128, config)):
        expected = windows((7 * 100_003 + step) * config.batch, config.batch, 128, 128, config)
        assert all(torch.equal(a, b) for a, b in zip(drawn, expected, strict=True))
    assert step == config.steps - 1


def test_read_out_slots_follow_tokens_per_cell():
    config = ProxyConfig()
    hd, fast = get_spec("tiny_fastvithd"), get_spec("tiny_fastvit")
    assert ProxyModel(hd, 256, 1024, config).slots == 2  # stride 64 at 1024 px: 2x2 cells of 32 px per token
    assert ProxyModel(fast, 256, 1024, config).slots == 1
    assert ProxyModel(hd, 256, 256, config).slots == 8


def test_proxy_learns_above_chance_and_is_deterministic():
    result = train_and_evaluate(get_spec("tiny_fastvit"), 128, EASY, seed=0)
    assert result["layout"] == "channels_last" and result["device"] == "cpu"  # a conv kind on a CPU
    assert result["chance"] == 10.0 and result["cells"] == EASY.eval_windows * EASY.cells_per_window
    assert result["ci95"][0] > 10.0, result  # the whole 95 % interval is above chance
    short = dataclasses.replace(EASY, steps=2, eval_windows=4)
    a = train_and_evaluate(get_spec("tiny_fastvithd"), 128, short, seed=1)
    b = train_and_evaluate(get_spec("tiny_fastvithd"), 128, short, seed=1)
    assert a["accuracy"] == b["accuracy"] and a["by_font_size"] == b["by_font_size"]


def test_channels_last_training_computes_what_nchw_does_without_the_onednn_crash():
    """FastViT's stem has a strided 1x1 conv on 3 channels, whose channels-last backward corrupts
    the heap in oneDNN (#6035): it is rerouted, and a training step matches NCHW's."""
    torch.manual_seed(0)
    nchw = ProxyModel(get_spec("tiny_fastvit"), 128, 128, EASY)
    last = to_channels_last(copy.deepcopy(nchw))
    assert sum(crashes_onednn(m) for m in last.modules()) >= 1
    images, centres, digits, _ = windows(0, 4, 128, 128, EASY)
    grads = []
    for model, x in ((nchw, images), (last, images.contiguous(memory_format=torch.channels_last))):
        loss = torch.nn.functional.cross_entropy(model(x, centres).flatten(0, 1), digits.flatten())
        loss.backward()
        grads.append([p.grad for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-5)
    twin = copy.deepcopy(last)  # a copy's rerouted conv runs the copy's weights, not the original's
    assert all(m.forward.__self__ is m for m in twin.modules() if crashes_onednn(m))


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"cell": 30}, "accuracy.proxy.cell"),
        ({"steps": 0}, "accuracy.proxy.steps"),
        ({"font_sizes": [2]}, "accuracy.proxy.font_sizes"),
        ({"occupancy": 0}, "accuracy.proxy.occupancy"),
        ({"lr": -1}, "accuracy.proxy.lr"),
        ({"stpes": 10}, "accuracy.proxy.stpes"),
        ({"loader_workers": -1}, "accuracy.proxy.loader_workers"),
        ({"device": "gpu"}, "accuracy.proxy.device"),
        *([({"device": "cuda"}, "accuracy.proxy.device")] if not torch.cuda.is_available() else []),
    ],
)
def test_bad_proxy_settings_name_their_key(settings, key):
    with pytest.raises(SpecError, match=rf"^{key}:"):
        proxy_config(settings)


def test_auto_device_trains_on_the_gpu_only_where_torch_sees_one(tmp_path, monkeypatch):
    for name in ("arch_search", "arch_search_smoke"):  # the shipped default: auto
        assert _cfg(tmp_path, f"+experiment={name}").accuracy.proxy_calibrated.proxy.device == "auto"
    chosen = _cfg(tmp_path, "+experiment=arch_search", "accuracy.proxy_calibrated.proxy.device=cpu")  # as the README
    assert chosen.accuracy.proxy_calibrated.proxy.device == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert ProxyConfig(device="auto").device == "cpu"
    assert proxy_config({"device": "auto"}).device == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert ProxyConfig(device="auto").device == "cuda"  # resolved once: the run records the real device


def test_a_window_smaller_than_a_cell_is_refused_naming_the_key():
    with pytest.raises(SpecError, match=r"^accuracy.proxy.window:"):
        windows(0, 1, 1024, 64, ProxyConfig(canvas=256))


# --- validation statistics ---------------------------------------------------------------------
def test_rank_agreement_and_the_monotone_map():
    perfect = rank_agreement([[1.0, 1.2], [2.0, 2.1], [3.0, 2.9], [4.0, 4.2]], [10, 20, 30, 40], n_boot=200)
    assert perfect.kendall_tau == 1.0 and perfect.spearman_rho == 1.0 and perfect.tau_ci95_seeds[1] == 1.0
    reversed_ = rank_agreement([[4.0], [3.0], [2.0], [1.0]], [10, 20, 30, 40], n_boot=50)
    assert reversed_.kendall_tau == -1.0
    line = MonotoneMap.fit("TextVQA", [10, 20, 30, 40, 50], [51, 53, 55, 57, 59])
    assert line(35) == pytest.approx(56.0) and line.loo_rmse < 1e-9 and line.proxy_range == (10, 50)
    flat = MonotoneMap.fit("TextVQA", [10, 20, 30, 40], [60, 58, 56, 54])  # anti-ranked: no slope
    assert flat.slope == 0.0 and flat(25) == pytest.approx(57.0)
    with pytest.raises(SpecError, match="need >= 4"):
        MonotoneMap.fit("TextVQA", [1, 2, 3], [1, 2, 3])


def test_calibration_files_round_trip_and_ignore_threads_and_device():
    runs = ProxyRuns(2, {"steps": 5, "threads": 1}, "here", (ProxyRun("fastvit", 256, (0, 1), (10.0, 12.0), 3.0),))
    assert ProxyRuns.from_json(runs.to_json()) == runs and runs.runs[0].mean == 11.0
    assert config_fingerprint({"steps": 5, "threads": 4, "device": "cuda"}) == runs.fingerprint
    with pytest.raises(SpecError, match=r"^accuracy.proxy_calibrated.calibration: .* does not exist"):
        ProxyRuns.load("/no/such/calibration.json")


def test_the_shipped_calibrations_cover_the_validation_points():
    for name in (None, "tiny"):
        runs = ProxyRuns.load(name)
        paired, published, _ = runs.paired("TextVQA")
        assert len(paired) == 7 and all(len(r.accuracy) >= 3 for r in paired)


# --- the calibrated source -------------------------------------------------------------------------
def _calibrated(tmp_path, **kwargs):
    return ProxyCalibratedAccuracy(calibration="tiny", cache_dir=str(tmp_path), **kwargs)


def test_calibrated_accuracy_is_on_the_papers_axis_with_its_error(tmp_path):
    source = _calibrated(tmp_path, margin=100.0)
    value = source.lookup(get_spec("tiny_fastvit"), 128, LLM_PRESETS["vicuna_7b"], "TextVQA")
    assert isinstance(value, Sourced) and value.kind == "proxy" and value.label.startswith("proxy-calibrated[TextVQA")
    fitted = source.monotone_map("TextVQA")
    assert value.value == pytest.approx(fitted(value.detail["proxy_accuracy"]), abs=0.01)
    assert value.detail["error_points"] >= fitted.loo_rmse
    assert value.detail["trained_on"] == ["cpu"]  # where each seed trained
    # another LLM moves the value by the log-linear model's LLM-size term and widens the error
    small = source.lookup(get_spec("tiny_fastvit"), 128, LLM_PRESETS["qwen2_0_5b"], "TextVQA")
    assert small.value < value.value and small.detail["error_points"] > value.detail["error_points"]


def test_a_point_the_calibration_measured_reuses_its_runs_instead_of_training(tmp_path):
    source = _calibrated(tmp_path, margin=100.0, seeds=[0])
    run = source.runs.runs[0]  # a validation point: the paper's preset at its resolution
    source.proxy.score = lambda spec, res: pytest.fail("trained a point the calibration already measured")
    value = source.lookup(get_spec(run.preset), run.resolution, LLM_PRESETS["vicuna_7b"], "TextVQA")
    assert isinstance(value, Sourced) and value.detail["proxy_accuracy"] == round(run.accuracy[run.seeds.index(0)], 2)
    assert "the calibration's run" in value.detail["proxy_label"]
    assert source.calibration_score(get_spec("tiny_fastvit"), 128) is None  # never measured there: trains
    unseeded = _calibrated(tmp_path, margin=100.0, seeds=[0, 99])  # a seed the calibration lacks: trains
    assert unseeded.calibration_score(get_spec(run.preset), run.resolution) is None


def test_calibrated_accuracy_refuses_outside_the_calibrated_range(tmp_path):
    source = _calibrated(tmp_path, margin=0.0)
    high = source.monotone_map("TextVQA").proxy_range[1]
    source.proxy.score = lambda spec, res: Sourced(high + 50.0, "proxy", "x", 0.0, {})
    answer = source.lookup(get_spec("tiny_fastvit"), 128, LLM_PRESETS["vicuna_7b"], "TextVQA")
    assert isinstance(answer, Refusal) and "outside the calibrated range" in answer.reason
    source.proxy.score = lambda spec, res: Sourced(high, "proxy", "x", 0.0, {})  # the edge itself is inside
    assert isinstance(source.lookup(get_spec("tiny_fastvit"), 128, LLM_PRESETS["vicuna_7b"], "TextVQA"), Sourced)
    too_few = source.lookup(get_spec("tiny_fastvit"), 128, LLM_PRESETS["vicuna_7b"], "ChartQA")  # 2 points
    assert isinstance(too_few, Refusal) and "need >= 4" in too_few.reason


def test_calibrated_accuracy_refuses_llm_sizes_the_paper_never_published(tmp_path):
    tiny_llm = LLM_PRESETS["tiny_llm"]
    answer = _calibrated(tmp_path, margin=100.0).lookup(get_spec("tiny_fastvit"), 128, tiny_llm, "TextVQA")
    assert isinstance(answer, Refusal) and "outside the published LLM sizes" in answer.reason
    kept = _calibrated(tmp_path, margin=100.0, llm_shift=False).lookup(
        get_spec("tiny_fastvit"), 128, tiny_llm, "TextVQA"
    )
    assert isinstance(kept, Sourced) and kept.detail["llm_recipe_shift"].startswith("none: llm_shift=false")


def test_calibrated_accuracy_refuses_other_proxy_settings_naming_the_key(tmp_path):
    with pytest.raises(SpecError, match=r"^accuracy.proxy_calibrated.proxy.steps:"):
        _calibrated(tmp_path, proxy={"steps": 999})
    # the proxy's own checks, named by the key set under proxy_calibrated (not accuracy.proxy.*)
    with pytest.raises(SpecError, match=r"^accuracy.proxy_calibrated.seeds: must be a non-empty list"):
        _calibrated(tmp_path, seeds=[])
    with pytest.raises(SpecError, match=r"^accuracy.proxy_calibrated.proxy.device: 'gpu' is not a torch device"):
        _calibrated(tmp_path, proxy={"device": "gpu"})


# --- arch_search on it ------------------------------------------------------------------------------
def test_cheap_first_an_over_budget_point_is_not_scored():
    calls = []

    class Counting:
        name = "counting"

        def lookup(self, *args):
            calls.append(args)
            return Sourced(50.0, "proxy", "x", 0.0, {})

        def diagnostics(self):
            return []

    point = Point("fastvithd", get_spec("fastvithd"), 1024, LLM_PRESETS["qwen2_0_5b"])
    record = evaluate(point, PaperM1Max(), [Counting()], "TextVQA", ttft_budget_ms=10.0)
    assert record.accuracy is None and record.ttft_ms.value > 10 and not calls
    assert record.refusals[0].startswith(OVER_BUDGET)
    assert evaluate(point, PaperM1Max(), [Counting()], "TextVQA", ttft_budget_ms=1e9).accuracy.value == 50.0


def test_a_sampler_that_repeats_points_evaluates_each_once(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_module, "MAX_REPEATS_IN_A_ROW", 5)
    one_point = [
        "space.n_stages=[4]", "space.base_width=[8]", "space.depth_scale.low=0.1", "space.depth_scale.high=0.1",
        "space.first_attention_stage=[3]", "space.mlp_ratio=[2.0]", "space.resolution=[64]", "space.anchors=[]",
    ]  # fmt: skip
    cfg = _cfg(
        tmp_path, "+experiment=arch_search_smoke", "accuracy=none", "objectives.maximize=[visual_tokens]", *one_point
    )
    outcome = run_sweep(cfg)
    study = optuna.load_study(study_name="arch_search_smoke", storage=results.sqlite_url(tmp_path / "study"))
    repeats = [t for t in study.trials if "repeat_of" in t.user_attrs]
    assert outcome.ran == 1 and len(repeats) == 5 and {t.user_attrs["repeat_of"] for t in repeats} == {0}
    table = results.load(tmp_path / "study")
    assert (table["state"] == "COMPLETE").sum() == 1


def test_arch_search_smoke_scores_every_point_once_with_anchors(tmp_path):
    outcome = run_sweep(_cfg(tmp_path, "+experiment=arch_search_smoke"))
    table = results.load(tmp_path / "study")
    study = optuna.load_study(study_name="arch_search_smoke", storage=results.sqlite_url(tmp_path / "study"))
    real = [t for t in study.trials if "repeat_of" not in t.user_attrs]
    identities = [t.user_attrs["identity"] for t in real]
    assert len(identities) == len(set(identities)) == outcome.ran == 6
    assert [t.user_attrs.get("anchor") for t in real[:2]] == ["tiny_fastvithd@128", "tiny_fastvit@128"]
    assert "family" not in {k for t in study.trials for k in t.params}
    done = table[table["state"] == "COMPLETE"]
    assert len(done) >= 3 and done["accuracy"].notna().all()
    assert set(done["accuracy_source"].str.split(":").str[0]) == {"proxy"}
    assert done["accuracy_source"].str.contains("proxy-calibrated").all()
    assert json.loads(done.iloc[0]["spec"])["kind"] == "hybrid"
    # screened (device.latency=screened): anchors measured; every other scored design predicted
    # first, and measured only when it could reach the front (its prediction then kept beside)
    anchors = table["point"].str.startswith(("tiny_fastvithd@", "tiny_fastvit@"))
    assert (table[anchors]["encoder_ms_source"].str.split(":").str[0] == "measured").all()
    designs = done[~done["point"].str.startswith(("tiny_fastvithd@", "tiny_fastvit@"))]
    assert len(designs) >= 1
    for _, row in designs.iterrows():
        if row["encoder_ms_source"].startswith("measured"):
            assert row["encoder_ms_predicted_source"].startswith("predicted:latency-model@cpu/eager")
        else:
            assert "not measured: dominated by" in row["encoder_ms_source"]
