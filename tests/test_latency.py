"""Timing protocol, runtimes, LLM prefill FLOPs and builder, latency models, TTFT, cache."""

import re

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import fastvitsearch.profile.measure as measure_module
import fastvitsearch.profile.runtimes as runtimes_module
from fastvitsearch.build import build_encoder
from fastvitsearch.cache import MeasurementCache
from fastvitsearch.llm import LLM_PRESETS, build_llm, prefill, resolve_llm
from fastvitsearch.paper import paper_results
from fastvitsearch.presets import get_spec
from fastvitsearch.profile.devices import LocalDevice, PaperM1Max
from fastvitsearch.profile.latency_model import fit_latency
from fastvitsearch.profile.measure import measure_encoder
from fastvitsearch.profile.runtimes import RUNTIME_TABLE, RuntimeMismatch, prepare_checked
from fastvitsearch.profile.timing import TimingProtocol, measure
from fastvitsearch.profile.ttft import ttft
from fastvitsearch.spec import SpecError

QUICK = TimingProtocol(warmup_runs=1, warmup_seconds=0.0, min_runs=3, max_runs=5, budget_seconds=0.05)
CPU = torch.device("cpu")


def test_protocol_records_statistics_and_environment():
    threads_before = torch.get_num_threads()
    timing = measure(
        lambda: torch.ones(64, 64) @ torch.ones(64, 64),
        device=CPU,
        threads=1,
        protocol=QUICK,
        context={"runtime": "eager", "dtype": "float32", "batch": 1},
    )
    assert timing.n >= 3 and timing.median_ms > 0 and timing.p90_ms >= timing.median_ms - 1e-9
    assert timing.iqr_ms >= 0 and isinstance(timing.noisy, bool)
    for key in (
        "device",
        "device_name",
        "device_fingerprint",
        "threads",
        "torch",
        "timm",
        "runtime",
        "dtype",
        "batch",
        "other_processes_cpu_cores",
        "measured_at",
    ):
        assert key in timing.environment
    assert timing.environment["threads"] == 1
    assert re.fullmatch(r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ", timing.environment["measured_at"])  # UTC
    assert torch.get_num_threads() == threads_before  # restored after timing with 1 thread


BF16 = pytest.mark.skipif(not runtimes_module._has_bf16(), reason="needs a CPU with bf16 (avx512_bf16/AMX)")


@pytest.mark.parametrize(
    ("runtime", "precision"),
    [("eager", "fp32"), ("channels_last", "fp32"), pytest.param("eager", "bf16", marks=BF16)],
)
def test_runtimes_agree_with_eager_fp32_within_their_tolerance(runtime, precision):
    encoder = build_encoder(get_spec("tiny_fastvithd"), 128).reparameterize().eval()
    run, error = prepare_checked(encoder, torch.rand(1, 3, 128, 128), runtime, precision)
    assert error <= RUNTIME_TABLE[runtime].tolerance[precision]
    assert run().shape == (1, 4, 256)


@BF16
def test_a_runtime_outside_tolerance_is_refused(monkeypatch):
    monkeypatch.setitem(RUNTIME_TABLE["eager"].tolerance, "bf16", 1e-9)
    encoder = build_encoder(get_spec("tiny_fastvithd"), 128).reparameterize().eval()
    with pytest.raises(RuntimeMismatch, match=r"^runtime: eager bf16 output differs from eager fp32"):
        prepare_checked(encoder, torch.rand(1, 3, 128, 128), "eager", "bf16")


@pytest.mark.parametrize("name", ["qwen2_0_5b", "qwen2_1_5b", "qwen2_7b", "vicuna_7b"])
def test_prefill_flops_formula_equals_flop_counter_on_meta(name):
    from transformers import AutoModelForCausalLM

    llm = LLM_PRESETS[name]
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(llm.hf_config())
    assert sum(p.numel() for p in model.parameters()) == llm.params
    for tokens in (16, 144, 576):
        counter = FlopCounterMode(display=False)
        with counter, torch.inference_mode():
            # a 4-D mask and explicit positions keep transformers' mask code from reading meta data
            model(
                inputs_embeds=torch.empty(1, tokens, llm.hidden, device="meta"),
                attention_mask=torch.ones(1, 1, tokens, tokens, dtype=torch.bool, device="meta"),
                position_ids=torch.empty(1, tokens, dtype=torch.long, device="meta"),
                use_cache=False,
                logits_to_keep=1,
            )
        assert counter.get_total_flops() == llm.prefill_flops(tokens), tokens


def test_random_llm_has_real_rotary_frequencies_and_finite_logits():
    llm = LLM_PRESETS["tiny_llm"]
    model = build_llm(llm)
    fresh = type(model.model.rotary_emb)(config=llm.hf_config())
    torch.testing.assert_close(model.model.rotary_emb.inv_freq, fresh.inv_freq)
    with torch.inference_mode():
        logits = prefill(model, torch.randn(1, 12, llm.hidden))
    assert logits.shape == (1, 1, llm.vocab) and torch.isfinite(logits).all()


def test_custom_llm_config_and_errors_name_the_field():
    custom = resolve_llm({**LLM_PRESETS["tiny_llm"].to_dict(), "name": "mine", "layers": 3})
    assert custom.layers == 3
    with pytest.raises(SpecError, match=r"^llm: unknown LLM 'qwen3'"):
        resolve_llm("qwen3")
    with pytest.raises(SpecError, match=r"^llm.kv_heads"):
        resolve_llm({**LLM_PRESETS["tiny_llm"].to_dict(), "kv_heads": 3})


def test_linear_latency_model_is_exact_on_linear_data_and_reports_loo_error():
    model = fit_latency("toy", [1e9, 2e9, 4e9], [12.0, 22.0, 42.0])
    assert model.predict(3e9) == pytest.approx(32.0)
    assert model.loo_error == pytest.approx(0.0, abs=1e-9)
    noisy = fit_latency("toy", [1e9, 2e9, 4e9], [12.0, 25.0, 42.0])
    assert noisy.loo_error > 0
    estimate = noisy.estimate(8e9)
    assert estimate.source == "predicted:toy (extrapolated)" and estimate.detail["extrapolated"]
    assert noisy.estimate(3e9).source == "predicted:toy" and not noisy.estimate(3e9).detail["extrapolated"]


def test_latency_model_never_has_a_negative_fixed_cost():
    # a steep fit through three points has a negative intercept and would predict 0 ms for small
    # inputs (issue: 0.00 ms prefills on the paper's M1 Max); it falls back to t = x / R
    model = fit_latency("steep", [1e9, 2e9, 4e9], [5.0, 30.0, 80.0])
    assert model.intercept_ms == 0.0 and model.ms_per_unit > 0
    assert model.predict(1e8) > 0 and model.predict(2e9) > model.predict(1e9)


def test_paper_m1max_prefill_is_positive_everywhere_and_skips_tiled_rows():
    paper = PaperM1Max()
    for llm in ("qwen2_0_5b", "qwen2_1_5b", "qwen2_7b", "vicuna_7b"):
        for tokens in (4, 16, 64, 256, 1024):
            assert paper.prefill_latency(LLM_PRESETS[llm], tokens).value > 0
    # Table 10 R3* is FastViTHD@2048 AnyRes (1280 tokens): never a 1024-token prefill
    assert paper.prefill_latency(LLM_PRESETS["qwen2_0_5b"], 1024).kind == "predicted"


def _table6_points():
    frame = paper_results()
    names = {"FastViTHD": "fastvithd", "ViT-L/14 (CLIP)": "vit_l14"}
    llms = {"Qwen2-0.5B": "qwen2_0_5b", "Qwen2-1.5B": "qwen2_1_5b", "Qwen2-7B": "qwen2_7b", "Vicuna-7B": "vicuna_7b"}
    rows = frame[
        (frame.metric == "TTFT")
        & frame.source_table_or_figure.str.startswith("Table 6")
        & frame.encoder.isin(names)
        & frame.llm.isin(llms)
        & (frame.source_version != "CVPR only")
    ]
    return sorted({(names[r.encoder], int(r.resolution_px), llms[r.llm], float(r.value)) for r in rows.itertuples()})


def test_paper_m1max_reproduces_table_6_ttfts_from_published_components():
    device = PaperM1Max()
    checked = 0
    for encoder, resolution, llm, published in _table6_points():
        record = ttft(get_spec(encoder), resolution, LLM_PRESETS[llm], device)
        if not (record.encoder_ms.source.startswith("published") and record.prefill_ms.source.startswith("published")):
            continue
        # Table 6 prints whole milliseconds of encoder + prefill (166.8 -> 166, 232.4 -> 233)
        assert abs(record.ttft_ms.value - published) <= 1.0, (encoder, resolution, llm)
        checked += 1
    assert checked >= 8
    hd = ttft(get_spec("fastvithd"), 1024, LLM_PRESETS["qwen2_0_5b"], device)
    vit = ttft(get_spec("vit_l14"), 336, LLM_PRESETS["vicuna_7b"], device)
    assert hd.ttft_ms.value == pytest.approx(166, abs=1) and vit.ttft_ms.value == pytest.approx(1297, abs=1)


def test_paper_m1max_predicts_unpublished_points_with_their_error():
    record = ttft(get_spec("fastvithd"), 512, LLM_PRESETS["qwen2_0_5b"], PaperM1Max())
    assert record.encoder_ms.source.startswith("predicted:m1max-encoder-fit")
    assert record.encoder_ms.error is not None and record.encoder_ms.value > 0
    assert "predicted" in record.ttft_ms.source


def test_cache_hit_skips_measuring_and_force_remeasures(tmp_path, monkeypatch):
    cache = MeasurementCache(tmp_path)
    spec = get_spec("tiny_fastvit")
    first = measure_encoder(spec, 64, device=CPU, protocol=QUICK, cache=cache)
    assert first.detail["cached"] is False

    def must_not_run(*args, **kwargs):
        raise AssertionError("measured despite a cache hit")

    monkeypatch.setattr(measure_module, "measure", must_not_run)
    second = measure_encoder(spec, 64, device=CPU, protocol=QUICK, cache=cache)
    assert second.detail["cached"] is True and second.value == first.value
    with pytest.raises(AssertionError, match="measured despite"):
        measure_encoder(spec, 64, device=CPU, protocol=QUICK, cache=cache, force=True)


def test_a_hybrid_is_built_once_for_its_resolutions_and_a_vit_once_per_resolution(tmp_path, monkeypatch):
    builds = []

    def counting_build(spec, resolution, **kwargs):
        builds.append((spec.name, resolution))
        return build_encoder(spec, resolution, **kwargs)

    monkeypatch.setattr(measure_module, "build_encoder", counting_build)
    measure_module._shared_timed_encoder.cache_clear()
    cache = MeasurementCache(tmp_path)
    spec = get_spec("tiny_fastvithd")
    hybrid = [measure_encoder(spec, r, device=CPU, protocol=QUICK, cache=cache) for r in (64, 128)]
    assert len(builds) == 1 and all(m.detail["environment"]["reparameterized"] for m in hybrid)
    measure_encoder(spec, 64, device=CPU, runtime="channels_last", protocol=QUICK, cache=cache)
    assert len(builds) == 2  # a runtime that converts the module in place gets its own
    for resolution in (64, 96):
        measure_encoder(get_spec("tiny_vit"), resolution, device=CPU, protocol=QUICK, cache=cache)
    assert builds[2:] == [("tiny_vit", 64), ("tiny_vit", 96)]  # its position table is sized per resolution
    measure_module._shared_timed_encoder.cache_clear()


def test_too_large_llms_are_predicted_from_the_calibration(tmp_path):
    device = LocalDevice(
        protocol=QUICK,
        cache=MeasurementCache(tmp_path),
        max_measured_llm_params=2e5,
        calibration_llms=("tiny_llm",),
        calibration_tokens=(8, 16, 32),
    )
    big = resolve_llm(
        {**LLM_PRESETS["tiny_llm"].to_dict(), "name": "tiny_llm_x4", "layers": 8, "hidden": 128, "intermediate": 256}
    )
    assert big.params > 2e5
    estimate = device.prefill_latency(big, 16)
    assert estimate.source.startswith("predicted:prefill-fit[tiny_llm]@cpu") and estimate.error is not None
    assert device.prefill_latency(LLM_PRESETS["tiny_llm"], 16).source.startswith("measured:")


def test_long_published_prefills_are_looked_up_but_not_fitted():
    paper = PaperM1Max()
    qwen = LLM_PRESETS["qwen2_0_5b"]
    long = paper.prefill_latency(qwen, 7290)  # LLaVA-OneVision's 3x3+1 SigLIP tiles
    assert (long.value, long.source) == (11402.4, "published:Table 10 R2")
    fitted = paper.prefill_latency(qwen, 1024)
    assert fitted.kind == "predicted" and fitted.detail["fitted_range"][1] == qwen.prefill_flops(1280)
    assert 50.5 < fitted.value < 336.4  # between the published 256- and 1280-token prefills


def test_repeats_follow_the_variance_observed():
    """Once the budget is spent, two runs that agree stop the measurement before min_runs; runs
    that disagree (or agree_within=0) take min_runs. A fast op stops once its median is known
    (the rule checked on given samples: no assertion here depends on how long a run takes)."""
    import time as clock

    from fastvitsearch.profile.timing import measure

    def steady():
        clock.sleep(0.05)

    durations = iter([0.05, 0.12, 0.05, 0.05, 0.05])

    def unsteady():
        clock.sleep(next(durations))

    base = dict(warmup_runs=0, warmup_seconds=0.0, min_runs=3, max_runs=5, budget_seconds=0.01)
    cpu = torch.device("cpu")
    assert measure(steady, device=cpu, protocol=TimingProtocol(**base, agree_within=0.5)).n == 2
    assert measure(steady, device=cpu, protocol=TimingProtocol(**base, agree_within=0.0)).n == 3
    assert measure(unsteady, device=cpu, protocol=TimingProtocol(**base, agree_within=0.5)).n == 3
    # a fast op stops once its median's 95 % interval is within `precision` (from 6 runs on),
    # whatever the budget; runs that swing by 40 % do not settle; precision 0 disables the rule
    from fastvitsearch.profile.timing import _settled

    fast = TimingProtocol(min_runs=3, max_runs=12, precision=0.05)
    assert not _settled([10.0] * 5, fast, budget_spent=False)  # no distribution-free interval below 6
    assert _settled([10.0, 10.1, 9.9, 10.2, 9.8, 10.0], fast, budget_spent=False)
    assert not _settled([10.0, 14.0] * 3, fast, budget_spent=False)
    assert not _settled([10.0] * 6, TimingProtocol(precision=0.0), budget_spent=False)


def test_median_interval_is_the_binomial_order_statistic_interval():
    from fastvitsearch.profile.timing import median_interval

    assert median_interval([1.0] * 5) is None  # (min, max) covers the median with < 95 % below 6 runs
    assert median_interval([6.0, 1.0, 5.0, 2.0, 4.0, 3.0]) == (1.0, 6.0)  # 1 - 2/64 = 96.9 %
    assert median_interval([float(x) for x in range(1, 10)]) == (2.0, 8.0)  # n=9: x(2)..x(8), 96.1 %
