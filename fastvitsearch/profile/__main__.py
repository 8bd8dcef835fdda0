"""``python -m fastvitsearch.profile encoder=<preset> resolution=<px or list> [device=…] [llm=…]``."""

from __future__ import annotations

import json
import sys
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from fastvitsearch.llm import resolve_llm
from fastvitsearch.presets import default_resolution, resolve_encoder
from fastvitsearch.profile.count import count_encoder
from fastvitsearch.profile.devices import device_from_config
from fastvitsearch.profile.runtimes import RuntimeMismatch
from fastvitsearch.profile.table import records_table
from fastvitsearch.profile.ttft import ttft
from fastvitsearch.spec import SpecError


def _resolutions(cfg: DictConfig, encoder_cfg: Any) -> list[int]:
    value = cfg.resolution
    if value is None:
        return [default_resolution(encoder_cfg)]
    return [int(r) for r in (value if OmegaConf.is_list(value) else [value])]


def _latency_fields(estimate) -> dict[str, Any]:
    detail = estimate.detail or {}
    return {
        "median": estimate.value,
        "iqr": detail.get("iqr_ms"),
        "p90": detail.get("p90_ms"),
        "n": detail.get("n"),
        "noisy": detail.get("noisy"),
        "source": estimate.source,
        "error": estimate.error,
        "environment": detail.get("environment"),
    }


def profile(cfg: DictConfig) -> list[dict[str, Any]]:
    """One record per resolution: counts, plus latency parts and TTFT when a device is given."""
    encoder_cfg = OmegaConf.to_container(cfg.encoder, resolve=True)
    spec = resolve_encoder(encoder_cfg)
    resolutions = _resolutions(cfg, encoder_cfg)
    if cfg.get("device") is None:
        return [count_encoder(spec, r).to_dict() for r in resolutions]
    device = device_from_config(OmegaConf.to_container(cfg.device, resolve=True))
    llm = resolve_llm(OmegaConf.to_container(cfg.llm, resolve=True)) if cfg.get("llm") is not None else None
    records = []
    for resolution in resolutions:
        if llm is None:
            record = count_encoder(spec, resolution).to_dict()
            record["latency_ms"] = _latency_fields(device.encoder_latency(spec, resolution))
        else:
            result = ttft(spec, resolution, llm, device, text_tokens=int(cfg.text_tokens))
            record = result.counts.to_dict()
            record.update(
                llm=result.llm,
                text_tokens=result.text_tokens,
                latency_ms=_latency_fields(result.encoder_ms),
                projector_ms=result.projector_ms.to_dict(),
                prefill_ms=result.prefill_ms.to_dict(),
                ttft_ms=result.ttft_ms.to_dict(),
            )
        record["device"] = device.name
        records.append(record)
    return records


@hydra.main(version_base="1.3", config_path="../../conf", config_name="profile")
def main(cfg: DictConfig) -> None:
    if cfg.format not in ("table", "json"):
        sys.exit(f"error: format: {cfg.format!r} is not one of 'table', 'json'")
    try:
        records = profile(cfg)
    except (SpecError, RuntimeMismatch, ValueError) as err:
        sys.exit(f"error: {err}")
    if cfg.format == "json":
        for record in records:
            print(json.dumps(record))
    else:
        print(records_table(records))


if __name__ == "__main__":
    main()
