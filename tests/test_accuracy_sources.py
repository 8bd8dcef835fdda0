"""Accuracy sources beyond the paper: predicted (with LOO error and refusal), proxy-trained
(learns, deterministic), the user's results file (line-numbered errors), and chaining."""

import json

import pytest
import torch

from fastvitsearch.accuracy import first_value, make_sources
from fastvitsearch.accuracy.predicted import PredictedAccuracy, fit, training_rows
from fastvitsearch.accuracy.proxy import wilson_interval
from fastvitsearch.accuracy.results_file import ResultsFileAccuracy
from fastvitsearch.llm import LLM_PRESETS
from fastvitsearch.presets import get_spec
from fastvitsearch.spec import SpecError


def test_predicted_reproduces_published_rows_within_its_loo_error():
    model = fit("TextVQA")
    rows = training_rows("TextVQA")
    residuals = [abs(model.predict(r.family, r.recipe, r.tokens, r.params, 1.5) - r.value) for r in rows.itertuples()]
    assert model.loo_rmse < 3.0
    assert sorted(residuals)[len(residuals) // 2] <= model.loo_rmse  # the typical row within the stated error
    hit = PredictedAccuracy().lookup(get_spec("fastvithd"), 1024, LLM_PRESETS["qwen2_0_5b"], "TextVQA")
    assert abs(hit.value - 57.4) <= 2 * model.loo_rmse  # Table 6 R3, recipe 15+1.1
    assert hit.source == "predicted:loglinear[TextVQA,15+1.1]" and hit.detail["loo_rmse_points"] > 0


def test_predicted_refuses_to_extrapolate_with_a_reason():
    source = PredictedAccuracy()
    custom = source.lookup(get_spec("tiny_fastvithd"), 256, LLM_PRESETS["qwen2_0_5b"], "TextVQA")
    far = source.lookup(get_spec("fastvit"), 1024, LLM_PRESETS["qwen2_7b"], "TextVQA")
    assert str(custom) == "predicted: no published TextVQA row for encoder family 'custom'"
    assert far.reason.startswith("visual tokens 1,024 outside the fitted range")
    with pytest.raises(SpecError, match=r"^accuracy.metric: only 0 published rows"):
        fit("NoSuchBench")


def test_chaining_keeps_the_first_source_that_answers():
    sources = make_sources(["published", "predicted"])
    published, _ = first_value(sources, get_spec("fastvithd"), 1024, LLM_PRESETS["qwen2_0_5b"], "TextVQA")
    predicted, why = first_value(sources, get_spec("fastvit"), 512, LLM_PRESETS["qwen2_0_5b"], "TextVQA")
    assert published.source.startswith("published:") and predicted.source.startswith("predicted:")
    assert [r.source for r in why] == ["published"]  # why the first source did not answer
    none, reasons = first_value(sources, get_spec("tiny_fastvit"), 256, LLM_PRESETS["qwen2_0_5b"], "TextVQA")
    assert none is None and [r.source for r in reasons] == ["published", "predicted"]


def test_results_file_keeps_good_rows_and_numbers_the_bad(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text(
        "encoder,resolution,llm,metric,value,source\n"
        "fastvithd,1024,qwen2_0_5b,TextVQA,61.5,my-eval\n"
        "fastvithd,1024,qwen2_0_5b,TextVQA,not-a-number,\n"
        "resnet50,224,qwen2_0_5b,TextVQA,40,\n"
        "fastvit,768,,TextVQA,50,\n"
        "vit_l14,336,vicuna_7b,MyBench,33.3,\n"
    )
    source = ResultsFileAccuracy(str(path))
    assert source.report.rows == 2
    assert any(e.startswith(f"{path}:3: could not convert string to float") for e in source.report.errors)
    assert f"{path}:5: missing llm" in source.report.errors
    assert f"{path}:4: unknown encoder 'resnet50'" in source.report.unknown
    assert any(u.startswith(f"{path}:6: metric 'MyBench'") for u in source.report.unknown)
    hit = source.lookup(get_spec("fastvithd"), 1024, LLM_PRESETS["qwen2_0_5b"], "TextVQA")
    assert (hit.value, hit.source) == (61.5, "user:my-eval")
    said = source.diagnostics()  # what the sweep prints at set-up
    assert said[0] == f"results file {path}: 2 row(s) read" and f"{path}:5: missing llm" in said


def test_results_file_reads_json_rows_and_lmms_eval(tmp_path):
    rows = tmp_path / "rows.json"
    rows.write_text(
        json.dumps([{"encoder": "fastvit", "resolution": 768, "llm": "qwen2_1_5b", "metric": "DocVQA", "value": 70.0}])
    )
    assert (
        ResultsFileAccuracy(str(rows)).lookup(get_spec("fastvit"), 768, LLM_PRESETS["qwen2_1_5b"], "DocVQA").value
        == 70.0
    )
    lmms = tmp_path / "lmms.json"
    lmms.write_text(
        json.dumps(
            {
                "results": {
                    "textvqa_val": {"alias": "textvqa_val", "exact_match,none": 0.612, "exact_match_stderr,none": 0.006}
                },
                "fastvitsearch": {"encoder": "fastvithd", "resolution": 768, "llm": "qwen2_7b"},
            }
        )
    )
    hit = ResultsFileAccuracy(str(lmms)).lookup(get_spec("fastvithd"), 768, LLM_PRESETS["qwen2_7b"], "textvqa_val")
    assert hit.value == pytest.approx(61.2) and hit.source == "user:lmms-eval:textvqa_val"


def test_proxy_scales_specs_keeping_stages_and_strides():
    hd = get_spec("fastvithd")
    small = hd.scaled(0.125, 0.25)
    assert small.output_stride == hd.output_stride and len(small.stages) == len(hd.stages)
    assert [s.mixer for s in small.stages] == [s.mixer for s in hd.stages]
    assert all(s.width % 32 == 0 for s in small.stages if s.mixer == "attention")
    assert wilson_interval(50, 100)[0] == pytest.approx(0.404, abs=1e-3)


@pytest.mark.parametrize("name", ["fastvit", "fastvithd", "fastvit_mci4"])
def test_the_default_proxy_scale_builds_the_papers_encoders(name):
    """width_scale 0.125 used to break timm's grouped patch embedding (out_channels % in_channels)."""
    from fastvitsearch.build import build_encoder

    small = get_spec(name).scaled(0.125, 0.25)
    widths = [s.width for s in small.stages]
    assert all(b % a == 0 for a, b in zip(widths, widths[1:], strict=False))
    encoder = build_encoder(small, 256).eval()
    assert encoder(torch.rand(1, 3, 256, 256)).shape[1] == get_spec(name).tokens(256)
