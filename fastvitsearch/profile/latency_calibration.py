"""The encoders a device's latency model is calibrated on (``device.latency_calibration``).

Torch-free, so a device can check the name it is given without loading torch. The default set
spans the arch_search space's widths (48-96 x 2**stage), token counts (256-1024 px), MLP ratios
and mixers, the paper's unit variants and ViT-S to ViT-L blocks; ``tiny`` calibrates in seconds.
"""

from __future__ import annotations

from typing import Any

from fastvitsearch.spec import EncoderSpec, HybridEncoderSpec, StageSpec, ViTSpec


def _hybrid(
    name: str, base: int, n_stages: int, first_attention: int, mlp_ratio: float, **kwargs: Any
) -> HybridEncoderSpec:
    stages = tuple(
        StageSpec(
            depth=1,
            width=base * 2**i,
            mixer="attention" if i >= first_attention else "repmixer",
            mlp_ratio=mlp_ratio,
            pos_enc="rcpe" if i >= first_attention else "none",
            downsample=i > 0,
            se_downsample=kwargs.pop(f"se{i}", False),
        )
        for i in range(n_stages)
    )
    options = {"attention_norm": "layernorm", "stem_scale_branch": False, "lkc_use_act": True, **kwargs}
    return HybridEncoderSpec(name, stages, **options)


def default_calibration() -> list[tuple[EncoderSpec, int]]:
    """Small encoders (one block per stage) whose units span the search space's widths, token
    counts, MLP ratios and mixers, plus the paper's unit variants (batch-norm attention, patch
    embeddings without GELU or with squeeze-excite) and ViT blocks from ViT-B to ViT-L sizes."""
    bn = {"attention_norm": "batchnorm", "lkc_use_act": False, "se2": True, "se3": True}
    return [
        (_hybrid("cal_w48_a2_m3", 48, 6, 2, 3.0), 1024),
        (_hybrid("cal_w96_a4_m4", 96, 6, 4, 4.0), 1024),
        (_hybrid("cal_w64_a3_m4", 64, 6, 3, 4.0), 512),
        (_hybrid("cal_w80_a2_m3", 80, 6, 2, 3.0), 256),
        (_hybrid("cal_w96_a3_m3", 96, 6, 3, 3.0), 512),
        (_hybrid("cal_w48_a5_m4", 48, 6, 5, 4.0), 768),
        (_hybrid("cal_bn_w80_a3_m3", 80, 4, 3, 3.0, **bn), 768),
        (_hybrid("cal_bn_w64_a2_m4", 64, 5, 2, 4.0, **bn), 512),
        (_hybrid("cal_w48_a4_m4", 48, 6, 4, 4.0), 256),
        (_hybrid("cal_w96_a2_m4", 96, 5, 2, 4.0), 256),
        (_hybrid("cal_w64_a3_m3", 64, 5, 3, 3.0), 1024),
        (ViTSpec("cal_vit_b16", patch=16, depth=1, width=768, heads=12), 224),
        (ViTSpec("cal_vit_b16", patch=16, depth=1, width=768, heads=12), 448),
        (ViTSpec("cal_vit_l14", patch=14, depth=1, width=1024, heads=16), 224),
        (ViTSpec("cal_vit_l14", patch=14, depth=1, width=1024, heads=16), 336),
        (ViTSpec("cal_vit_s16", patch=16, depth=1, width=384, heads=6), 384),
        (ViTSpec("cal_vit_s16", patch=16, depth=1, width=384, heads=6), 224),
        (ViTSpec("cal_vit_b16", patch=16, depth=1, width=768, heads=12), 320),
        (ViTSpec("cal_vit_l14", patch=14, depth=1, width=1024, heads=16), 448),
        (ViTSpec("cal_vit_m16_m3", patch=16, depth=1, width=512, heads=8, mlp_ratio=3.0), 384),
    ]


def tiny_calibration() -> list[tuple[EncoderSpec, int]]:
    """Tiny encoders (widths 8-256, 64-128 px) that calibrate in seconds: for tests and smoke runs
    over the tiny presets; their predictions are rough."""
    return [
        (_hybrid("cal_tiny_w8_a2", 8, 5, 2, 2.0), 128),
        (_hybrid("cal_tiny_w16_a3", 16, 5, 3, 2.0), 128),
        (_hybrid("cal_tiny_w16_a2_m3", 16, 4, 2, 3.0), 64),
        (_hybrid("cal_tiny_w8_a3_m4", 8, 4, 3, 4.0), 64),
        (ViTSpec("cal_tiny_vit", patch=16, depth=1, width=64, heads=2), 64),
        (ViTSpec("cal_tiny_vit", patch=16, depth=1, width=96, heads=3), 128),
    ]


#: ``device.latency_calibration``: the encoders a device's latency model is calibrated on
CALIBRATIONS = {"default": default_calibration, "tiny": tiny_calibration}
