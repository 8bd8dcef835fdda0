"""Any timm model as an encoder: its token rule read from the model, counted like a preset."""

import json
import subprocess
import sys

import pytest
import torch

from fastvitsearch.build import build_encoder, timm_spec
from fastvitsearch.presets import get_spec, resolve_encoder
from fastvitsearch.profile.count import count_encoder
from fastvitsearch.spec import SpecError


def test_token_rules_come_from_the_model():
    siglip = timm_spec("vit_so400m_patch14_siglip_384")
    assert (siglip.patch, siglip.width, siglip.layout, siglip.prefix_tokens) == (14, 1152, "tokens", 0)
    assert siglip.tokens(384) == 729  # 27 x 27 patches, the last 6 px unused (as timm and LLaVA-OneVision)
    convnext = timm_spec("convnext_large")
    assert (convnext.patch, convnext.width, convnext.layout) == (32, 1536, "map")
    assert convnext.tokens(768) == 576
    with pytest.raises(SpecError, match=r"^resolution: 750 px is not a multiple of the output stride 32"):
        convnext.tokens(750)  # feature maps stay strict


def test_a_timm_model_is_built_counted_and_drops_its_class_token():
    spec = resolve_encoder({"model": "vit_tiny_patch16_224"})
    assert spec.prefix_tokens == 1 and spec.name == "vit_tiny_patch16_224"
    encoder = build_encoder(spec, 64).reparameterize().eval()
    assert encoder(torch.rand(1, 3, 64, 64)).shape == (1, 16, 192)
    counts = count_encoder(spec, 64)
    assert counts.visual_tokens == 16 and counts.macs_by_op["attention"] > 0 and counts.params > 5e6
    conv = build_encoder(timm_spec("convnext_atto"), 128).eval()
    assert conv(torch.rand(1, 3, 128, 128)).shape == (1, 16, 320)


def _meta_features(spec, resolution):
    encoder = build_encoder(spec, resolution, device="meta").eval()
    return tuple(encoder.features(torch.empty(1, 3, resolution, resolution, device="meta")).shape)


def test_timm_models_off_the_common_conventions_give_their_true_tokens_or_a_clear_refusal():
    """An audit of all 1,371 timm models (2026-12-07) found these: NHWC feature maps, undeclared
    class tokens, no dynamic size, pooling that cannot be dropped, outputs that are no token grid."""
    assert _meta_features(timm_spec("swin_tiny_patch4_window7_224"), 224) == (1, 49, 768)  # NHWC map
    coat_lite = timm_spec("coat_lite_tiny")  # a class token its model does not declare
    assert coat_lite.prefix_tokens == 1 and _meta_features(coat_lite, 224) == (1, 49, 320)
    assert _meta_features(timm_spec("cait_xxs24_224"), 224) == (1, 196, 192)  # built at the resolution itself
    assert _meta_features(timm_spec("efficientvit_b1"), 256) == (1, 64, 256)  # its pooling cannot be dropped
    with pytest.raises(SpecError, match=r"^encoder.model: pit_ti_224's forward_features gives 1 tokens at 224 px"):
        timm_spec("pit_ti_224")  # only its class token
    with pytest.raises(SpecError, match=r"^encoder.model: coat_tiny's forward_features returns a list"):
        timm_spec("coat_tiny")


def test_a_fixed_size_feature_map_model_is_built_at_the_resolution_asked():
    """Swin's window grids and LeViT's attention biases are sized when timm builds them: at twice
    their own size Swin failed an assertion and LeViT failed at every size (audit, 2026-12-07)."""
    assert _meta_features(timm_spec("swin_tiny_patch4_window7_224"), 448) == (1, 196, 768)
    levit = timm_spec("levit_128")
    assert (levit.patch, levit.layout) == (64, "map")
    assert _meta_features(levit, 256) == (1, 16, 384) and _meta_features(levit, 448) == (1, 49, 384)
    assert _meta_features(timm_spec("resnet18"), 448) == (1, 196, 512)  # not fixed-size: built as it is
    # EfficientFormer's attention biases stay at 7x7 whatever img_size says: refused at another size
    with pytest.raises(SpecError, match=r"^resolution: timm builds efficientformer_l1 for one input size .* 224 px"):
        _meta_features(timm_spec("efficientformer_l1"), 448)
    assert _meta_features(timm_spec("efficientformer_l1"), 224)[1] == 49


def test_a_local_checkpoint_is_loaded_and_errors_name_the_key(tmp_path):
    model = build_encoder(timm_spec("convnext_atto"), 64).backbone
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.01)
    path = tmp_path / "mine.pt"
    torch.save(model.state_dict(), path)
    loaded = build_encoder(timm_spec("convnext_atto", str(path)), 64).backbone
    assert all(torch.all(p == 0.01) for p in loaded.parameters())
    with pytest.raises(SpecError, match=r"^encoder.checkpoint: no file at"):
        timm_spec("convnext_atto", str(tmp_path / "missing.pt"))
    with pytest.raises(SpecError, match=r"^encoder.model: timm has no model 'convnext_gigantic'"):
        timm_spec("convnext_gigantic")


@pytest.mark.parametrize(
    ("preset", "resolution", "tokens"), [("convnext_large", 768, 576), ("convnext_xxlarge", 1024, 1024)]
)
def test_convnext_presets_are_stage_lists_with_timms_shapes_and_counts(preset, resolution, tokens):
    """ConvNeXt-L/XXL are ConvNeXt-kind stage lists (searchable like the hybrid): parameter shapes,
    tokens and MACs equal those of timm's own model, built and counted independently."""
    import timm

    from fastvitsearch.presets import get_preset
    from fastvitsearch.profile.count import count_macs

    spec = get_preset(preset).spec
    assert spec.kind == "convnext"
    ours = build_encoder(spec, resolution, device="meta").backbone
    theirs = timm.create_model(preset, pretrained=False, num_classes=0, global_pool="", device="meta")
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    counts = count_encoder(spec, resolution)
    images = torch.empty(1, 3, resolution, resolution, device="meta")
    assert counts.visual_tokens == tokens == theirs.forward_features(images).flatten(2).shape[-1]
    assert counts.macs == count_macs(theirs.eval(), images).macs


def test_profile_cli_takes_any_timm_model():
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "fastvitsearch.profile",
            "encoder=timm",
            "encoder.model=vit_so400m_patch14_siglip_384",
            "resolution=384",
            "format=json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["visual_tokens"] == 729 and record["encoder"] == "vit_so400m_patch14_siglip_384"
    assert record["spec"]["kind"] == "timm" and record["feature_width"] == 1152


@pytest.mark.parametrize(
    ("preset", "resolution", "tokens"),
    [
        ("siglip_so400m", 384, 729),
        ("vitamin_large", 384, 576),
    ],
)
def test_competitor_presets_match_timms_token_rule_and_count_independently(preset, resolution, tokens):
    from fastvitsearch.presets import get_preset

    spec = get_preset(preset).spec
    derived = timm_spec(spec.model)
    assert (spec.patch, spec.width, spec.layout, spec.prefix_tokens) == (
        derived.patch,
        derived.width,
        derived.layout,
        derived.prefix_tokens,
    )
    counts = count_encoder(spec, resolution)
    assert spec.tokens(resolution) == counts.visual_tokens == tokens
    if preset == "siglip_so400m":  # 27 blocks of width 1152, MLP 4304, at 729 tokens: MACs by hand
        d, n, mlp, blocks = 1152, 729, 4304, 27
        linear = blocks * n * (4 * d * d + 2 * d * mlp)
        attention = blocks * 2 * n * n * d
        assert counts.macs_by_op["attention"] == attention
        assert counts.macs_by_op["linear"] == linear
        assert counts.macs_by_op["conv"] == n * 3 * 14 * 14 * d  # the patch embedding


def test_mci4_is_timms_fastvit_mci4():
    import timm

    from fastvitsearch.presets import get_spec

    ours = build_encoder(get_spec("fastvit_mci4"), 256, device="meta").backbone
    theirs = timm.create_model("fastvit_mci4", pretrained=False, num_classes=0, device="meta")
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in theirs.state_dict().items()
    }
    assert get_spec("fastvit_mci4").tokens(1024) == 256


def test_the_papers_competitors_get_their_published_m1max_latency():
    from fastvitsearch.presets import get_spec
    from fastvitsearch.profile.paper_device import PaperM1Max

    siglip = PaperM1Max().encoder_latency(get_spec("siglip_so400m"), 384)
    assert (siglip.value, siglip.source) == (272.1, "published:Table 10 R1")  # nanoLLaVA's encoder
    vitamin = PaperM1Max().encoder_latency(get_spec("vitamin_large"), 384)
    assert (vitamin.value, vitamin.source) == (137.6, "published:Table 10 R29")


def test_convllava_is_a_five_stage_convnext_with_stride_64():
    """ConvLLaVA's encoder: ConvNeXt-L + a 5th stage (3072 wide, 6 deep): 144 tokens at 768, 256 at 1024."""
    from fastvitsearch.spec import ConvNeXtSpec, spec_from_dict

    spec = get_spec("convllava")
    assert spec.output_stride == 64 and spec.tokens(768) == 144 and spec.tokens(1024) == 256
    assert spec_from_dict(spec.to_dict()) == spec and spec.feature_width == 3072
    small = spec.scaled(0.125, 0.25)
    encoder = build_encoder(small, 128).eval()
    assert encoder(torch.rand(1, 3, 128, 128)).shape == (1, 4, small.feature_width)
    with pytest.raises(SpecError, match="^depths:"):
        ConvNeXtSpec("bad", (3, 3, 3), (8, 16, 32))


def test_fastvit_naive_is_the_papers_four_stage_ablation():
    spec = get_spec("fastvit_naive")
    assert [s.width for s in spec.stages] == [128, 256, 512, 1024] and [s.depth for s in spec.stages] == [2, 12, 16, 6]
    assert {s.mlp_ratio for s in spec.stages} == {3.0} and spec.output_stride == 32 and spec.tokens(1024) == 1024
    assert [s.mixer for s in spec.stages] == ["repmixer"] * 3 + ["attention"]


def test_select_layer_reads_an_earlier_vit_block_as_llava_does():
    import dataclasses

    full = get_spec("vit_l14")
    penultimate = resolve_encoder({"preset": "vit_l14", "select_layer": -2})
    assert penultimate.select_layer == -2 and penultimate.content_hash != full.content_hash
    a, b = count_encoder(full, 336), count_encoder(penultimate, 336)
    block = 12 * 1024 * 1024 + 13 * 1024  # qkv, proj, mlp weights and biases, two norms
    assert a.params - b.params == pytest.approx(block, rel=0.01) and b.visual_tokens == 576
    tiny = dataclasses.replace(get_spec("tiny_vit"), select_layer=-2)
    assert isinstance(build_encoder(tiny, 64).backbone.norm, torch.nn.Identity)
    with pytest.raises(SpecError, match="^select_layer:"):
        dataclasses.replace(full, select_layer=0)
    with pytest.raises(SpecError, match="^encoder.select_layer:"):
        resolve_encoder({"preset": "fastvithd", "select_layer": -2})


def test_convnext_l_rows_go_to_the_right_encoder():
    """'ConvNeXt-L' names ConvLLaVA's 5-stage encoder (model ConvLLaVA) and the 4-stage CLIP one."""
    from fastvitsearch import paper

    latencies = paper.encoder_latencies()
    assert latencies[("convllava", 1024)] == (696.1, "Table 10 R20")
    assert ("convnext_large", 1024) not in latencies and latencies[("convnext_large", 320)][1] == "Table 3"
    rows = paper.accuracy_rows("TextVQA")
    assert set(rows[rows["preset"] == "convllava"]["resolution_px"]) == {768, 1024, 1536}
    assert paper.preset_of("ConvNeXt-L", "ConvLLaVA") == "convllava"
    assert paper.preset_of("ConvNeXt-L", "LLaVA-1.5-style VLM") == "convnext_large"


def test_any_module_factory_is_an_encoder_through_a_hydra_target():
    cnn = resolve_encoder({"_target_": "my_encoders.small_cnn", "kwargs": {"width": 16}})
    assert (cnn.kind, cnn.patch, cnn.width, cnn.layout) == ("module", 16, 16, "map")
    encoder = build_encoder(cnn, 64).eval()
    assert encoder(torch.rand(1, 3, 64, 64)).shape == (1, 16, 16) and count_encoder(cnn, 64).visual_tokens == 16
    vit = resolve_encoder({"_target_": "my_encoders.TinyViT"})
    assert (vit.layout, vit.prefix_tokens, vit.patch) == ("tokens", 1, 16)
    assert build_encoder(vit, 64).eval()(torch.rand(1, 3, 64, 64)).shape == (1, 16, 48)  # class token dropped
    with pytest.raises(SpecError, match="^encoder._target_:"):
        resolve_encoder({"_target_": "my_encoders.no_such_factory"})
