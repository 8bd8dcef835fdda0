"""Builder: exact timm shapes, visual-token outputs, reparameterization that keeps outputs."""

import pytest
import timm
import torch
from torch import nn

from fastvitsearch.build import build_encoder
from fastvitsearch.presets import get_preset, get_spec


def _shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize(
    "name", ["fastvithd", "fastvit", "fastvit_t8", "fastvit_sa12", "fastvit_sa24", "fastvit_sa36", "fastvit_ma36"]
)
def test_hybrid_presets_have_exactly_timms_parameter_shapes(name):
    preset = get_preset(name)
    ours = build_encoder(preset.spec, 256, device="meta").backbone
    theirs = timm.create_model(preset.timm_model, pretrained=False, num_classes=0, device="meta")
    assert _shapes(ours) == _shapes(theirs)


def test_vit_l14_has_exactly_timms_parameter_shapes():
    ours = build_encoder(get_spec("vit_l14"), 336, device="meta").backbone
    theirs = timm.create_model("vit_large_patch14_clip_336", pretrained=False, num_classes=0, device="meta")
    assert _shapes(ours) == _shapes(theirs)


@pytest.mark.parametrize(
    "name, resolution, shape",
    [("fastvithd", 1024, (1, 256, 3072)), ("fastvit", 768, (1, 576, 1280)), ("vit_l14", 336, (1, 576, 1024))],
)
def test_features_are_the_visual_tokens(name, resolution, shape):
    encoder = build_encoder(get_spec(name), resolution, inference_mode=True, device="meta")
    assert tuple(encoder.features(torch.empty(1, 3, resolution, resolution, device="meta")).shape) == shape


@pytest.mark.parametrize("resolution", [128, 256, 320])
def test_tiny_encoders_run_at_several_resolutions(resolution):
    for name in ("tiny_fastvit", "tiny_fastvithd"):
        spec = get_spec(name)
        if resolution % spec.output_stride:
            continue
        out = build_encoder(spec, resolution).eval().features(torch.randn(2, 3, resolution, resolution))
        assert out.shape == (2, spec.tokens(resolution), spec.feature_width)
    vit = build_encoder(get_spec("tiny_vit"), 64).eval()  # one module, any multiple of the patch
    assert vit.features(torch.randn(1, 3, resolution, resolution)).shape == (1, (resolution // 16) ** 2, 64)


def _randomize(module: nn.Module, seed: int = 0) -> None:
    """Give every BN statistic and layer scale non-trivial values so fusion is really tested."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*module.named_parameters(), *module.named_buffers()]:
            if t.dtype != torch.float32:
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith("gamma"):
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.25)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.2)


@pytest.mark.parametrize("name", ["tiny_fastvit", "tiny_fastvithd"])
def test_reparameterized_output_equals_train_form(name):
    spec = get_spec(name)
    encoder = build_encoder(spec, 128).eval()
    _randomize(encoder)
    images = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        before = encoder.features(images)
        encoder.reparameterize()
        after = encoder.features(images)
    assert encoder.reparameterized
    # Tolerance: fp32 branch fusion reorders sums; 1e-4 relative to the output's scale.
    scale = before.abs().max().item()
    assert scale > 1e-3
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("name", ["tiny_fastvit", "tiny_fastvithd", "fastvithd"])
def test_inference_mode_build_matches_reparameterized_train_build(name):
    spec = get_spec(name)
    device = "cpu" if name.startswith("tiny") else "meta"
    direct = build_encoder(spec, 256, inference_mode=True, device="meta")
    if device == "meta":
        # timm's reparameterize() cannot run on meta; compare against timm's own inference build
        folded = timm.create_model(get_preset(name).timm_model, num_classes=0, inference_mode=True, device="meta")
        assert _shapes(direct.backbone) == _shapes(folded)
        return
    folded = build_encoder(spec, 256).reparameterize()
    assert _shapes(direct) == _shapes(folded)


@pytest.mark.parametrize("name, resolution", [("tiny_fastvithd", 128), ("tiny_vit", 64), ("tiny_fastvit", 128)])
def test_tiled_weights_build_the_same_module_with_usable_values(name, resolution):
    """weights=tiled (timing builds): the same parameters as timm's init, finite outputs of a
    similar scale, reproducible, and the same reparameterized form."""
    spec = get_spec(name)
    init = build_encoder(spec, resolution, dynamic_size=False)
    tiled = build_encoder(spec, resolution, dynamic_size=False, weights="tiled")
    assert _shapes(init) == _shapes(tiled)
    images = torch.rand(1, 3, resolution, resolution)
    with torch.inference_mode():
        out = tiled.reparameterize().eval()(images)
        again = build_encoder(spec, resolution, dynamic_size=False, weights="tiled").reparameterize().eval()(images)
    assert torch.isfinite(out).all() and 1e-3 < float(out.abs().max()) < 1e3
    assert torch.equal(out, again)


def test_tiled_weights_fall_back_to_init_for_tensors_they_cannot_fill():
    """A buffer other than norm statistics (an index table) would be garbage: that module gets its
    own init instead; an unknown `weights` value names the field."""
    from fastvitsearch.random_weights import materialize_random, unfillable
    from fastvitsearch.spec import SpecError

    class Indexed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(4, 4)
            self.register_buffer("index", torch.arange(4))

    with torch.device("meta"):
        module = Indexed()
    assert unfillable(module) == ["index"]
    with pytest.raises(ValueError, match="index"):
        materialize_random(module)
    with pytest.raises(SpecError, match="^weights:"):
        build_encoder(get_spec("tiny_vit"), 64, weights="zeros")
