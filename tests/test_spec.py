"""Specs: derived quantities, validation errors that name the field, stable hashes."""

import pytest

from fastvitsearch.presets import get_preset, get_spec, preset_names, resolve_encoder
from fastvitsearch.spec import HybridEncoderSpec, SpecError, StageSpec, ViTSpec, spec_from_dict

STRIDE_32 = ["fastvit", "fastvit_t8", "fastvit_sa12", "fastvit_sa24", "fastvit_sa36", "fastvit_ma36"]


@pytest.mark.parametrize("resolution, tokens", [(256, 16), (512, 64), (768, 144), (1024, 256)])
def test_fastvithd_tokens_follow_stride_64(resolution, tokens):
    spec = get_spec("fastvithd")
    assert spec.output_stride == 64 and spec.downsampling_depth == 4
    assert spec.tokens(resolution) == tokens


@pytest.mark.parametrize("name", STRIDE_32)
@pytest.mark.parametrize("resolution, tokens", [(256, 64), (512, 256), (768, 576), (1024, 1024)])
def test_fastvit_family_tokens_follow_stride_32(name, resolution, tokens):
    assert get_spec(name).output_stride == 32
    assert get_spec(name).tokens(resolution) == tokens


@pytest.mark.parametrize("resolution, tokens", [(224, 256), (336, 576)])
def test_vit_l14_tokens_exclude_cls(resolution, tokens):
    assert get_spec("vit_l14").tokens(resolution) == tokens


def test_feature_widths_are_what_the_projector_sees():
    assert get_spec("fastvithd").feature_width == 3072
    assert get_spec("fastvit").feature_width == 1280
    assert get_spec("vit_l14").feature_width == 1024


def test_stride_32_and_64_differ_by_one_downsampling_stage():
    hd = get_spec("fastvithd")
    assert hd.downsampling_depth == get_spec("fastvit").downsampling_depth + 1


def test_every_preset_is_data_with_a_family():
    names = preset_names()
    assert {"vit_l14", "fastvit", "fastvithd", "tiny_vit", "tiny_fastvit", "tiny_fastvithd"} <= set(names)
    for name in names:
        preset = get_preset(name)
        assert preset.spec.name == name
        assert preset.family


def _stages(**override):
    stages = [StageSpec(1, 32, downsample=False), StageSpec(1, 64)]
    stages[1] = StageSpec(**{**stages[1].__dict__, **override})
    return tuple(stages)


@pytest.mark.parametrize(
    "override, field",
    [
        ({"depth": 0}, "stages[1].depth"),
        ({"depth": -2}, "stages[1].depth"),
        ({"width": 0}, "stages[1].width"),
        ({"width": -64}, "stages[1].width"),
        ({"mixer": "mamba"}, "stages[1].mixer"),
        ({"mixer": "attention", "width": 48}, "stages[1].width"),
        ({"pos_enc": "sincos"}, "stages[1].pos_enc"),
        ({"mlp_ratio": 0}, "stages[1].mlp_ratio"),
        ({"downsample": False}, "stages[1].downsample"),
    ],
)
def test_stage_validation_names_the_field(override, field):
    with pytest.raises(SpecError) as err:
        HybridEncoderSpec("bad", _stages(**override))
    assert err.value.field == field
    assert str(err.value).startswith(field)


@pytest.mark.parametrize("count", [0, 8])
def test_stage_count_must_be_1_to_7(count):
    with pytest.raises(SpecError, match=r"^stages: needs 1 to 7 stages"):
        HybridEncoderSpec("bad", tuple(StageSpec(1, 32, downsample=False) for _ in range(count)))


def test_seven_stages_are_allowed():
    spec = HybridEncoderSpec("deep", tuple(StageSpec(1, 32, downsample=i > 0) for i in range(7)))
    assert spec.output_stride == 4 * 2**6


def test_resolution_not_a_multiple_of_stride_proposes_valid_ones():
    with pytest.raises(
        SpecError, match=r"^resolution: 1000 px is not a multiple of the output stride 64; use 960 or 1024"
    ):
        get_spec("fastvithd").tokens(1000)
    with pytest.raises(SpecError, match=r"use 322 or 336"):
        get_spec("vit_l14").tokens(330)
    with pytest.raises(SpecError, match=r"^resolution: must be a positive integer"):
        get_spec("fastvit").tokens(0)


def test_vit_width_must_divide_by_heads():
    with pytest.raises(SpecError, match=r"^width: 100 is not divisible by heads=3"):
        ViTSpec("bad", patch=14, depth=1, width=100, heads=3)
    with pytest.raises(SpecError, match=r"^depth"):
        ViTSpec("bad", patch=14, depth=0, width=64, heads=2)


def test_unknown_preset_lists_known_ones():
    with pytest.raises(SpecError, match=r"^encoder: unknown preset 'fastvit_hd'.*fastvithd"):
        get_spec("fastvit_hd")


def test_spec_from_dict_round_trips_and_names_unknown_fields():
    spec = get_spec("fastvithd")
    again = spec_from_dict(spec.to_dict())
    assert again == spec and again.content_hash == spec.content_hash
    assert spec_from_dict(get_spec("vit_l14").to_dict()) == get_spec("vit_l14")
    with pytest.raises(SpecError, match=r"^stages\[0\]\.widht: unknown stage field"):
        spec_from_dict({"stages": [{"depth": 1, "widht": 32}]})
    with pytest.raises(SpecError, match=r"^stages\[0\]\.width: is required"):
        spec_from_dict({"stages": [{"depth": 1}]})
    with pytest.raises(SpecError, match=r"^kind: unknown encoder kind"):
        spec_from_dict({"kind": "rnn"})
    with pytest.raises(SpecError, match=r"^heads: unknown field"):
        spec_from_dict({"kind": "hybrid", "heads": 3, "stages": []})


def test_resolve_encoder_accepts_names_presets_and_inline_specs():
    hd = get_spec("fastvithd")
    assert resolve_encoder("fastvithd") is hd
    assert resolve_encoder({"preset": "fastvithd"}) is hd
    assert resolve_encoder({"spec": hd.to_dict()}) == hd


def test_content_hash_is_stable_and_ignores_the_name():
    hd = get_spec("fastvithd")
    # A literal: the hash keys on-disk caches, so it must not change between runs or versions.
    assert hd.content_hash == "ad6cf6bfe7686ad7"
    renamed = HybridEncoderSpec(
        "other", hd.stages, hd.expansion_ratio, hd.attention_norm, hd.stem_scale_branch, hd.lkc_use_act
    )
    assert renamed.content_hash == hd.content_hash
    deeper = HybridEncoderSpec(
        "hd",
        (*hd.stages[:-1], StageSpec(3, 1536, "attention", 4.0, "rcpe")),
        hd.expansion_ratio,
        hd.attention_norm,
        hd.stem_scale_branch,
        hd.lkc_use_act,
    )
    assert deeper.content_hash != hd.content_hash
