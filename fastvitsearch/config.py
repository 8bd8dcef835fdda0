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

import difflib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from fastvitsearch.accuracy import SOURCE_TABLE
from fastvitsearch.llm import LLM_PRESETS
from fastvitsearch.presets import preset_names
from fastvitsearch.profile.devices import DEVICE_TABLE, default_config
from fastvitsearch.spec import SpecError

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


def _primary_keys(config_name: str) -> dict[str, set[str] | None]:
    """The root keys of a primary config (``conf/<name>.yaml``): its own keys, the groups its
    defaults list composes (``device: cpu``) and those of the primary configs it includes; each
    with its sub-keys where the config gives it a mapping of settings (``grid``, ``workers``), else
    None (a value, or a group whose options are checked where they are read)."""
    conf = OmegaConf.to_container(OmegaConf.load(CONF_DIR / f"{config_name}.yaml"))
    keys: dict[str, set[str] | None] = {}
    for entry in conf.get("defaults", []):
        if isinstance(entry, str):
            keys.update(_primary_keys(entry) if entry != "_self_" else {})
        else:
            keys.update({group.removeprefix("override "): None for group in entry if group != "hydra"})
    for key, value in conf.items():
        if key != "defaults":
            keys[key] = set(value) if isinstance(value, dict) else None
    return keys


def _unknown(field_name: str, known: set[str], where: str = "", hint: str = "") -> SpecError:
    """``field_name``'s last part is not among ``known``: say so, with the closest known key."""
    close = difflib.get_close_matches(field_name.rsplit(".", 1)[-1], sorted(known), n=1)
    guess = f"; did you mean {close[0]!r}?" if close else ""
    return SpecError(field_name, f"unknown key{where}{guess}{hint} (known: {', '.join(sorted(known))})")


def check_known_keys(cfg: DictConfig, config_name: str = "workers") -> None:
    """Refuse config keys that nothing reads, naming them, before anything runs.

    Why: Hydra refuses ``tiling=2x2`` misspelt as ``tilling=2x2`` but tells the user to append it
    with ``+tilling=2x2``, which it then accepts, and the sweep would run without tiling. The root
    (and the settings under ``grid`` and ``workers``), the accuracy group and the search group are
    checked here; device, encoder and LLM options are checked where they are read, and the search
    space by :func:`fastvitsearch.space.validate_space`.
    ``config_name``: the primary config whose root keys are known (``workers``, the sweep's
    ``config`` plus the launcher's ``n``, as both build a :class:`~fastvitsearch.sweep.SweepSetup`;
    ``profile``; ``export``).
    """
    known = _primary_keys(config_name)
    for key in cfg:
        if key not in known:
            raise _unknown(str(key), set(known))
        settings, value = known[key], cfg[key]
        if settings is not None and isinstance(value, DictConfig):
            for sub in value:
                if sub not in settings:
                    raise _unknown(f"{key}.{sub}", settings)
    accuracy = cfg.get("accuracy")
    if accuracy is not None:
        allowed = {"sources", "metric", *SOURCE_TABLE}
        for key in accuracy:
            if key not in allowed:
                sources = ", ".join(f"accuracy.{s}.{key}" for s in accuracy.get("sources") or [])
                hint = f"; a source's settings go under its name ({sources})" if sources else ""
                raise _unknown(f"accuracy.{key}", allowed, hint=hint)
    search = cfg.get("search")
    if search is not None and search.get("name") in SEARCHES:
        allowed = {f.name for f in fields(SEARCHES[search.name])}
        for key in search:
            if key not in allowed:
                raise _unknown(f"search.{key}", allowed, where=f" for search={search.name}")
