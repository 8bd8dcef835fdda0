"""Counting: params, exact attention MACs, fvcore cross-check, uncounted ops shown."""

import pytest
import torch

from fastvitsearch.build import build_encoder
from fastvitsearch.presets import get_spec
from fastvitsearch.profile.count import count_encoder, count_macs, count_macs_fvcore

CLASSES = ("attention", "conv", "linear")


def test_fastvithd_1024_counts_match_the_paper_and_timm():
    counts = count_encoder(get_spec("fastvithd"), 1024)
    assert counts.visual_tokens == 256 and counts.feature_width == 3072
    # Published 125.1M is the inference-form count with the 3072->768 CLIP projection,
    # which the VLM does not use (ARCHITECTURES.md).
    assert counts.params_reparameterized + 3072 * 768 == pytest.approx(125.1e6, abs=0.05e6)
    assert counts.params_reparameterized < counts.params
    assert counts.macs == 243_353_911_296  # torch FlopCounterMode on timm's fastvit_mci3
    assert counts.macs == sum(counts.macs_by_op.values())


def test_fastvithd_attention_macs_are_counted_not_zero():
    counts = count_encoder(get_spec("fastvithd"), 1024)
    # stage 4: 1024 tokens x 768 ch x 4 blocks; stage 5: 256 tokens x 1536 ch x 2 blocks
    expected = 2 * (1024**2 * 768 * 4 + 256**2 * 1536 * 2)
    assert counts.macs_by_op["attention"] == expected


def test_tiny_vit_attention_macs_equal_the_analytic_formula():
    spec = get_spec("tiny_vit")
    counts = count_encoder(spec, 64)
    n = spec.tokens(64) + 1  # the class token attends too
    assert counts.macs_by_op["attention"] == spec.depth * spec.heads * 2 * n * n * spec.head_dim
    qkv_proj_mlp = spec.depth * n * (3 * spec.width**2 + spec.width**2 + 2 * spec.width**2 * spec.mlp_ratio)
    assert counts.macs_by_op["linear"] == qkv_proj_mlp


@pytest.mark.parametrize("name, resolution", [("tiny_fastvit", 128), ("tiny_fastvithd", 256), ("tiny_vit", 64)])
def test_fast_path_agrees_with_fvcore_and_with_real_cpu_tensors(name, resolution):
    spec = get_spec(name)
    fast = count_encoder(spec, resolution)
    model = build_encoder(spec, resolution, inference_mode=True).eval()
    images = torch.randn(1, 3, resolution, resolution)
    fv = count_macs_fvcore(model, images)
    on_cpu = count_macs(model, images)  # runs the CPU SDPA kernel: needs our registered handler
    for cls in CLASSES:
        assert fast.macs_by_op.get(cls, 0) == fv.macs_by_op.get(cls, 0), cls
        assert fast.macs_by_op.get(cls, 0) == on_cpu.macs_by_op.get(cls, 0), cls
    assert fast.macs_by_op["attention"] > 0


def test_uncounted_ops_are_listed():
    counts = count_encoder(get_spec("tiny_fastvithd"), 128)
    assert "aten.gelu" in counts.uncounted_ops
    assert "aten._safe_softmax" in counts.uncounted_ops
    assert not any(op.startswith("aten.view") for op in counts.uncounted_ops)


def test_vit_params_depend_on_resolution_through_the_position_table():
    spec = get_spec("vit_l14")
    assert count_encoder(spec, 336).params - count_encoder(spec, 224).params == (577 - 257) * 1024


def test_counting_fastvithd_allocates_no_weights():
    encoder = build_encoder(get_spec("fastvithd"), 1024, device="meta")
    assert all(p.is_meta for p in encoder.parameters())


def test_a_hybrid_is_built_once_for_counting_at_every_resolution(monkeypatch):
    """The hybrid builder's module does not depend on the resolution: counting FastViT at four
    resolutions builds its two meta forms once; a ViT (position table) is built per resolution."""
    import fastvitsearch.profile.count as count

    built = []
    real = count.build_encoder
    monkeypatch.setattr(
        count, "build_encoder", lambda spec, res, **kw: built.append(spec.name) or real(spec, res, **kw)
    )
    count.count_encoder.cache_clear()
    count._meta_forms.cache_clear()
    for resolution in (128, 192, 256):
        count.count_encoder(get_spec("tiny_fastvit"), resolution)
    assert built == ["tiny_fastvit", "tiny_fastvit"]
    for resolution in (64, 128):
        count.count_encoder(get_spec("tiny_vit"), resolution)
    assert built.count("tiny_vit") == 4


def test_a_module_with_no_multiply_adds_counts_zero_instead_of_crashing():
    """FlopCounterMode reports no "Global" entry when nothing multiplies (a pooling-only module)."""
    macs = count_macs(torch.nn.AvgPool2d(2), torch.empty(1, 3, 64, 64, device="meta"))
    assert macs.macs == 0 and all(macs.macs_by_op[c] == 0 for c in CLASSES)
