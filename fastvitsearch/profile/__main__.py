"""``python -m fastvitsearch.profile encoder=<preset> resolution=<px or list> [device=…] [llm=…]``.

Prints one :class:`~fastvitsearch.record.TrialRecord` per resolution: as a readable table, or
(``format=json``) one ``to_row()`` JSON object per line — the same columns as a sweep's table.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from fastvitsearch.accuracy import make_sources
from fastvitsearch.config import check_known_keys, register_configs
from fastvitsearch.llm import resolve_llm
from fastvitsearch.point import Point, evaluate
from fastvitsearch.presets import default_resolution, encoder_label, resolve_encoder
from fastvitsearch.profile.devices import device_from_config
from fastvitsearch.profile.runtimes import RuntimeMismatch
from fastvitsearch.profile.table import records_table
from fastvitsearch.spec import SpecError
from fastvitsearch.tiling import parse_tiling


def _resolutions(cfg: DictConfig, encoder_cfg: Any) -> list[int]:
    value = cfg.resolution
    if value is None:
        return [default_resolution(encoder_cfg)]
    values = list(value) if OmegaConf.is_list(value) else [value]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int):
            raise SpecError("resolution", f"must be a whole number of pixels, got {v!r}")
    return values


def profile(cfg: DictConfig) -> list[dict[str, Any]]:
    """One record row per resolution: counts, plus latency parts and TTFT when a device is given."""
    check_known_keys(cfg, "profile")
    encoder_cfg = OmegaConf.to_container(cfg.encoder, resolve=True)
    spec = resolve_encoder(encoder_cfg)
    device = device_from_config(OmegaConf.to_container(cfg.device, resolve=True)) if cfg.get("device") else None
    llm = resolve_llm(OmegaConf.to_container(cfg.llm, resolve=True)) if cfg.get("llm") is not None else None
    accuracy = OmegaConf.to_container(cfg.accuracy, resolve=True) if cfg.get("accuracy") else None
    sources = make_sources(accuracy["sources"], accuracy) if accuracy else []
    if sources and llm is None:
        raise SpecError("llm", "accuracy is a VLM's: name the LLM the encoder feeds (llm=qwen2_0_5b, …)")
    for source in sources:  # as the sweep says them: e.g. a results file's skipped rows, with file:line
        for line in source.diagnostics():
            print(f"accuracy source {source.name}: {line}", file=sys.stderr)
    label = encoder_label(encoder_cfg, spec)
    tiling = parse_tiling(cfg.get("tiling"))
    metric = accuracy["metric"] if accuracy else None
    return [
        evaluate(Point(label, spec, r, llm, tiling), device, sources, metric, int(cfg.text_tokens)).to_row()
        for r in _resolutions(cfg, encoder_cfg)
    ]


def _unpredicted_note(cfg: DictConfig, records: list[dict[str, Any]]) -> str | None:
    """Why a prediction asked for is missing: the latency model decomposes only some encoder kinds
    (work units), the others are measured; the source column says 'measured', this says why."""
    mode = (cfg.get("device") or {}).get("latency")
    if mode not in ("predicted", "both"):
        return None
    column = "encoder_ms" if mode == "predicted" else "encoder_ms_predicted"
    missing = [r for r in records if not str(r.get(f"{column}_source") or "").startswith("predicted")]
    if not missing or not any(r.get("encoder_ms") is not None for r in missing):
        return None
    from fastvitsearch.profile.work_units import UNIT_RULES

    kinds = " and ".join(UNIT_RULES)
    kind = (missing[0].get("spec") or {}).get("kind")
    return (
        f"note: device.latency={mode}: the latency model decomposes {kinds} encoders, not {kind!r} ones, "
        "so this encoder's latency was measured and not predicted"
    )


register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="profile")
def main(cfg: DictConfig) -> None:
    if cfg.format not in ("table", "json"):
        sys.exit(f"error: format: {cfg.format!r} is not one of 'table', 'json'")
    try:
        records = profile(cfg)
    except (SpecError, RuntimeMismatch) as err:
        sys.exit(f"error: {err}")
    if note := _unpredicted_note(cfg, records):
        print(note, file=sys.stderr)
    if cfg.format == "json":
        for record in records:
            print(json.dumps(record, default=str))
    else:
        print(records_table(records))


if __name__ == "__main__":
    main()
