"""``python -m fastvitsearch.export encoder=<preset or spec file> resolution=<px> [precision=fp32]``."""

from __future__ import annotations

import json
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from fastvitsearch.config import check_known_keys, register_configs
from fastvitsearch.export.coreml import ExportOptions, export_coreml
from fastvitsearch.presets import default_resolution, resolve_encoder
from fastvitsearch.spec import SpecError

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> None:
    encoder_cfg = OmegaConf.to_container(cfg.encoder, resolve=True)
    try:
        check_known_keys(cfg, "export")
        spec = resolve_encoder(encoder_cfg)
        resolution = int(cfg.resolution) if cfg.resolution is not None else default_resolution(encoder_cfg)
        options = ExportOptions(cfg.precision, cfg.compute_units, cfg.minimum_deployment_target)
        result = export_coreml(spec, resolution, cfg.out_dir, options)
    except SpecError as err:
        sys.exit(f"error: {err}")
    info = result.info
    print(f"wrote {result.package} and {result.sidecar}")
    print(
        f"input {json.dumps(info['inputs'])} -> output {json.dumps(info['outputs'])}; "
        f"{sum(info['mil_ops'].values())} MIL ops of {len(info['mil_ops'])} types"
    )
    for warning in info["ane_warnings"]:
        print(f"warning: {warning}")
    print(
        "prediction needs macOS: copy the package and run "
        "`python -m fastvitsearch.export.time_coreml <package> --out coreml_results.json` there"
    )


if __name__ == "__main__":
    main()
