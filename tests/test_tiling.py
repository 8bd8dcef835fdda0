"""Tiled points: (tiles + base) passes and tokens by the paper's convention, published rows first."""

import pytest
from hydra import compose, initialize_config_dir

from fastvitsearch import results
from fastvitsearch.config import CONF_DIR
from fastvitsearch.llm import LLM_PRESETS
from fastvitsearch.point import Point, evaluate
from fastvitsearch.presets import get_spec
from fastvitsearch.profile.devices import device_from_config
from fastvitsearch.spec import SpecError
from fastvitsearch.sweep import run_sweep
from fastvitsearch.tiling import Tiling, parse_tiling


def test_tiling_values_parse_and_bad_ones_name_the_key():
    assert parse_tiling(None) is None and parse_tiling("none") is None
    assert (
        parse_tiling("2x2") == Tiling(2, 2)
        and parse_tiling("3x3").passes == 10
        and parse_tiling("1x2").label == "1x2+1"
    )
    for bad in ("4", "2x", "0x2", "2x2x2", "abc"):
        with pytest.raises(SpecError, match=r"^tiling: .* is not a tile grid"):
            parse_tiling(bad)


def test_the_papers_llava_onevision_row_recomputes_from_its_parts():
    paper = device_from_config({"name": "paper_m1max"})
    point = Point("siglip_so400m", get_spec("siglip_so400m"), 384, LLM_PRESETS["qwen2_0_5b"], Tiling(3, 3))
    record = evaluate(point, paper, [], None)
    assert record.visual_tokens == 7290 and record.tiling == "3x3+1"
    assert (record.encoder_ms.value, record.encoder_ms.source) == (2721.4, "published:Table 10 R2")
    assert (record.prefill_ms.value, record.prefill_ms.source) == (11402.4, "published:Table 10 R2")
    assert record.ttft_ms.value == pytest.approx(14123.8)
    ours = evaluate(Point("fastvithd", get_spec("fastvithd"), 1024, LLM_PRESETS["qwen2_0_5b"]), paper, [], None)
    assert ours.ttft_ms.value == pytest.approx(166.8)
    assert record.ttft_ms.value / ours.ttft_ms.value == pytest.approx(84.7, abs=0.05)  # the paper prints 85x


def test_a_tiled_point_without_a_published_row_is_passes_times_one_pass():
    paper = device_from_config({"name": "paper_m1max"})
    point = Point("fastvithd", get_spec("fastvithd"), 768, LLM_PRESETS["qwen2_1_5b"], Tiling(2, 2))
    record = evaluate(point, paper, [], None)
    assert record.visual_tokens == 5 * 144
    assert record.encoder_ms.value == pytest.approx(5 * 54.8)  # Table 10 R5's one pass, five times
    assert "x5 passes (2x2+1 tiles, sequential: paper convention)" in record.encoder_ms.label
    single = evaluate(Point("fastvithd", get_spec("fastvithd"), 768, None), paper, [], None)
    assert record.macs == 5 * single.macs and record.params == single.params


def test_static_vs_tiled_runs_on_the_papers_m1max(tmp_path):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["+experiment=static_vs_tiled", "device=paper_m1max", f"output_dir={tmp_path}", "quiet=true"],
        )
    outcome = run_sweep(cfg)
    table = results.load(tmp_path).set_index("point")
    assert outcome.ran == 6 and set(table["state"]) == {"COMPLETE"}
    assert table.loc["fastvithd@1024[2x2+1]+qwen2_1_5b", "encoder_ms"] == 581.5  # Table 10 R8*
    assert table.loc["fastvithd@1024[2x2+1]+qwen2_1_5b", "visual_tokens"] == 1280
    assert table.loc["fastvithd@2048+qwen2_1_5b", "visual_tokens"] == 1024


def test_released_schemes_parse_with_their_default_grids():
    assert parse_tiling("llava_next") == Tiling(2, 2, "llava_next")
    assert parse_tiling("anyres_max_9") == Tiling(3, 3, "anyres_max", 9)
    assert parse_tiling("anyres_max_9:6x6").label == "anyres_max_9:6x6+1"
    assert parse_tiling("llava_next:1x2").passes == 3
    for bad in ("llava_next:2x", "anyres_max", "anyres_max_x", "llava:2x2"):
        with pytest.raises(SpecError, match=r"^tiling: .* is not a tile grid"):
            parse_tiling(bad)


@pytest.mark.parametrize("rows, cols", [(1, 1), (1, 2), (2, 1), (2, 2), (1, 3), (3, 3), (4, 4), (2, 6), (6, 6)])
def test_released_token_counts_equal_transformers_processors(rows, cols):
    """LLaVA-NeXT (unpad + a newline per row) and LLaVA-OneVision anyres_max_9 (the same, shrunk to
    about 9 tiles' worth) for an image of the grid's shape: the counts transformers' processors give."""
    from types import SimpleNamespace

    from transformers.models.llava_next.processing_llava_next import LlavaNextProcessor
    from transformers.models.llava_onevision.processing_llava_onevision import LlavaOnevisionProcessor

    for scheme, processor, name, resolution in (
        ("llava_next", LlavaNextProcessor, "vit_l14", 336),
        ("anyres_max_9", LlavaOnevisionProcessor, "siglip_so400m", 384),
    ):
        spec = get_spec(name)
        side = int(spec.tokens(resolution) ** 0.5)
        owner = SimpleNamespace(vision_aspect_ratio="anyres_max_9")
        stitched, newlines = processor._get_unpadded_features(
            owner, rows * resolution, cols * resolution, side, side, rows, cols
        )
        tiling = parse_tiling(f"{scheme}:{rows}x{cols}")
        assert tiling.released_tokens(spec, resolution) == stitched + newlines + side * side


def test_a_tiled_record_keeps_the_papers_count_and_the_released_one():
    paper = device_from_config({"name": "paper_m1max"})
    next_point = Point("vit_l14", get_spec("vit_l14"), 336, LLM_PRESETS["qwen2_0_5b"], parse_tiling("llava_next"))
    record = evaluate(next_point, paper, [], None)
    assert (record.visual_tokens, record.visual_tokens_released) == (2880, 2928)  # paper_claims.md: 2928
    onevision = Point("siglip_so400m", get_spec("siglip_so400m"), 384, None, parse_tiling("anyres_max_9"))
    assert evaluate(onevision, paper, [], None).visual_tokens_released == 81 * 81 + 81 + 729
    plain = Point("fastvithd", get_spec("fastvithd"), 1024, None, Tiling(2, 2))
    assert evaluate(plain, paper, [], None).visual_tokens_released is None


def test_tiles_measured_as_one_batch_say_so(tmp_path):
    """device.tiles=batched: the tiles and the base image timed as one batch (the record says
    which); sequential: passes x one pass; a bad value names device.tiles."""
    from fastvitsearch.cache import MeasurementCache
    from fastvitsearch.profile.local_device import LocalDevice
    from fastvitsearch.profile.timing import TimingProtocol

    quick = TimingProtocol(warmup_runs=1, warmup_seconds=0.0, min_runs=2, max_runs=2, budget_seconds=0.0)
    kw = dict(protocol=quick, cache=MeasurementCache(tmp_path))
    point = Point("tiny_fastvithd", get_spec("tiny_fastvithd"), 128, None, Tiling(2, 2))
    batched = evaluate(point, LocalDevice(tiles="batched", **kw), [], None).encoder_ms
    assert "batch of 5 (2x2+1 tiles in one run)" in batched.label and batched.detail["environment"]["batch"] == 5
    sequential = evaluate(point, LocalDevice(**kw), [], None).encoder_ms
    assert "x5 passes (2x2+1 tiles, sequential: paper convention)" in sequential.label
    with pytest.raises(SpecError, match="^device.tiles:"):
        LocalDevice(tiles="parallel", **kw)
