"""Accuracy source `published`: the paper's numbers with their table, or no value."""

import pytest

from fastvitsearch.accuracy import first_value, make_sources
from fastvitsearch.accuracy.published import PublishedAccuracy
from fastvitsearch.llm import LLM_PRESETS
from fastvitsearch.paper import training_tag
from fastvitsearch.presets import get_spec
from fastvitsearch.record import Refusal
from fastvitsearch.spec import SpecError


def _lookup(encoder, resolution, llm, metric="TextVQA", **options):
    return PublishedAccuracy(**options).lookup(get_spec(encoder), resolution, LLM_PRESETS[llm], metric)


def test_published_values_carry_their_table_and_recipe():
    hit = _lookup("fastvithd", 1024, "qwen2_0_5b")
    assert (hit.value, hit.source, hit.detail["recipe"]) == (57.4, "published:Table 6 R3", "15+1.1")
    vit = _lookup("vit_l14", 336, "vicuna_7b")
    assert (vit.value, vit.source, vit.detail["recipe"]) == (58.2, "published:Table 6 R31", "llava15")


def test_recipe_preference_changes_the_answer():
    assert _lookup("fastvithd", 1024, "qwen2_0_5b", training=["15+12.5"]).value == 62.9
    assert _lookup("fastvithd", 1024, "qwen2_0_5b", training=["15+23.1"]).value == 65.8


def test_no_value_where_the_paper_has_none_and_the_refusal_says_why():
    assert _lookup("fastvit", 256, "qwen2_0_5b").reason.startswith(
        "no TextVQA for fastvit@256+qwen2_0_5b under recipes"
    )
    assert _lookup("tiny_fastvithd", 256, "qwen2_0_5b") == Refusal(
        "published", "the paper trained no encoder with this architecture"
    )
    assert _lookup("fastvithd", 1024, "tiny_llm").reason == "the paper trained no VLM with tiny_llm"
    assert isinstance(_lookup("fastvithd", 1024, "qwen2_0_5b", metric="NoSuchBench"), Refusal)


def test_other_metrics_and_chaining():
    sources = make_sources(["published"])
    docvqa, refusals = first_value(sources, get_spec("fastvithd"), 1024, LLM_PRESETS["qwen2_7b"], "DocVQA")
    assert docvqa is not None and docvqa.kind == "published" and refusals == []


def test_unknown_recipe_and_source_are_named():
    with pytest.raises(SpecError, match=r"^accuracy.published.training: unknown recipe 'llava"):
        PublishedAccuracy(training=["llava"])
    with pytest.raises(SpecError, match=r"^accuracy.sources: unknown accuracy source 'oracle'"):
        make_sources(["oracle"])


def test_training_tags():
    assert training_tag("data(M) PT+IT = 15+1.1") == "15+1.1"
    assert training_tag("LLaVA-1.5 2-stage (558K PT + 665K IT)") == "llava15"
    assert training_tag("data(M) PT+IT = 15+12.5 (AnyRes 2x2)") is None
