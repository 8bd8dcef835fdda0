"""``python -m fastvitsearch.profile encoder=<preset> resolution=<px or list> [format=json]``."""

from __future__ import annotations

import json
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from fastvitsearch.presets import default_resolution, resolve_encoder
from fastvitsearch.profile.count import EncoderCounts, count_encoder
from fastvitsearch.profile.table import counts_table
from fastvitsearch.spec import SpecError


def _resolutions(cfg: DictConfig, encoder_cfg: dict) -> list[int]:
    value = cfg.resolution
    if value is None:
        return [default_resolution(encoder_cfg)]
    return list(value) if OmegaConf.is_list(value) else [value]


def profile(cfg: DictConfig) -> list[EncoderCounts]:
    encoder_cfg = OmegaConf.to_container(cfg.encoder, resolve=True)
    spec = resolve_encoder(encoder_cfg)
    return [count_encoder(spec, int(r)) for r in _resolutions(cfg, encoder_cfg)]


@hydra.main(version_base="1.3", config_path="../../conf", config_name="profile")
def main(cfg: DictConfig) -> None:
    if cfg.format not in ("table", "json"):
        sys.exit(f"error: format: {cfg.format!r} is not one of 'table', 'json'")
    try:
        counts = profile(cfg)
    except SpecError as err:
        sys.exit(f"error: {err}")
    if cfg.format == "json":
        for c in counts:
            print(json.dumps(c.to_dict()))
    else:
        print(counts_table(counts))


if __name__ == "__main__":
    main()
