"""Hydra-native configuration: preset groups generated from the registries, typed small groups.

Every CLI calls :func:`register_configs` before Hydra composes, so

- ``encoder=<preset>`` and ``llm=<preset>`` are generated from ``presets`` / ``llm.LLM_PRESETS``
  (a new preset needs no YAML file); ``conf/encoder/*.yaml`` adds user spec files beside them;
- ``device=<name>`` and ``search=<name>`` are dataclass schemas: a misspelt key or a value of the
  wrong type (``device.threads=abc``) is refused by Hydra, naming the key, before anything runs;
- the search space is its own group (``space=hybrid``), not an encoder option.

The YAML files in ``conf/`` (inside the package, so a wheel install finds them) hold the
experiments, the accuracy groups and the space.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from fastvitsearch.llm import LLM_PRESETS
from fastvitsearch.presets import preset_names
from fastvitsearch.profile.devices import DEVICE_TABLE, default_config

CONF_DIR = Path(__file__).resolve().parent / "conf"


@dataclass
class GridSearch:
    """Every grid point once: each point not yet done is queued in the study and popped in order;
    a rerun skips points already done and queues interrupted ones again."""

    name: str = "grid"
    seed: int = 0


@dataclass
class NSGA2Search:
    """Multi-objective evolutionary search (Optuna NSGAIISampler) over ``space``; the TTFT budget
    is a constraint; anchors (the paper's encoders) are enqueued first."""

    name: str = "nsga2"
    n_trials: int = 40
    population_size: int = 12
    seed: int = 0


@dataclass
class TPESearch:
    """Multivariate TPE (Optuna TPESampler) over ``space``, TTFT budget as a constraint."""

    name: str = "tpe"
    n_trials: int = 40
    seed: int = 0


@dataclass
class RandomSearch:
    """Random sampling over ``space``: the baseline for nsga2 / tpe."""

    name: str = "random"
    n_trials: int = 40
    seed: int = 0


SEARCHES = {s.name: s for s in (GridSearch(), NSGA2Search(), TPESearch(), RandomSearch())}


@dataclass
class PresetRef:
    """A named preset (encoder or LLM); the spec itself lives in the Python registry."""

    preset: str


@dataclass
class EncoderPresetRef:
    """An encoder preset; ``select_layer`` (ViTs) reads an earlier block as LLaVA does
    (``encoder=vit_l14 encoder.select_layer=-2``: the penultimate block, LLaVA-1.5's choice)."""

    preset: str
    select_layer: int | None = None


@dataclass
class TimmRef:
    """Any timm model by name (``encoder=timm encoder.model=convnext_large``), random weights or a
    local ``checkpoint`` (a state-dict file; nothing is downloaded)."""

    model: str = MISSING
    checkpoint: str | None = None


@dataclass
class ModuleRef:
    """Any ``nn.Module`` factory you have (``encoder=module encoder._target_=pkg.make_encoder
    +encoder.kwargs.width=64``): built with random weights, its token rule read from its output."""

    _target_: str = MISSING
    kwargs: dict[str, Any] = field(default_factory=dict)
    name: str | None = None


_registered = False


def register_configs() -> None:
    """Fill Hydra's ConfigStore (idempotent): presets, devices, searches."""
    global _registered
    if _registered:
        return
    store = ConfigStore.instance()
    for name in preset_names():
        store.store(group="encoder", name=name, node=EncoderPresetRef(name))
    store.store(group="encoder", name="timm", node=TimmRef)
    store.store(group="encoder", name="module", node=ModuleRef)
    for name in LLM_PRESETS:
        store.store(group="llm", name=name, node=PresetRef(name))
    for name in DEVICE_TABLE:
        store.store(group="device", name=name, node=default_config(name))
    for name, search in SEARCHES.items():
        store.store(group="search", name=name, node=type(search)(**asdict(search)))
    _registered = True
