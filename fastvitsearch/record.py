"""One typed record per point: every figure a :class:`Sourced` value, one fixed column list.

The profile CLI, the sweep (Optuna user attr), the results table, the report and the tests all
read and write :class:`TrialRecord` through :meth:`TrialRecord.to_row` / :meth:`TrialRecord.from_row`,
so the schema lives here and nowhere else. Torch- and Optuna-free: a report reads records
without importing either.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

#: where a number came from (DESIGN: every recorded figure says it)
KINDS = ("counted", "measured", "predicted", "published", "proxy", "user", "not-timed")
#: how much a composed value can be trusted, weakest last: a sum takes its weakest part's kind
_TRUST = ("counted", "published", "measured", "user", "proxy", "predicted")
#: the latency parts of a TTFT, in the order they happen
LATENCY_PARTS = ("encoder_ms", "projector_ms", "prefill_ms", "ttft_ms")
#: the record's :class:`Sourced` fields: the latency parts, the encoder latency the latency model
#: predicted beside a measured one (``device.latency=both`` or a screened search), the accuracy
SOURCED_FIELDS = (*LATENCY_PARTS, "encoder_ms_predicted", "accuracy")
#: timing statistics of a measured part that get their own columns (``<part>_<stat>``)
#: (``other_cpu``: CPU cores other processes used while it was timed, from its environment;
#: ``measured_at``: when, in UTC, which tells a timing reused from the cache from one of this run)
_STATS = {
    "iqr": ("iqr_ms",),
    "p90": ("p90_ms",),
    "n": ("n",),
    "noisy": ("noisy",),
    "cached": ("cached",),
    "other_cpu": ("environment", "other_processes_cpu_cores"),
    "measured_at": ("environment", "measured_at"),
}


def _dig(detail: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        detail = detail.get(key) if isinstance(detail, dict) else None
    return detail


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class Sourced:
    """A value with its provenance.

    ``kind`` is one of :data:`KINDS`; ``label`` names the device, model, table or file;
    ``error`` is a relative error (0.05 = 5 %) where one exists (held-out error of a prediction);
    ``detail`` keeps what a reader may want to check (timing statistics, fitted model, table row).
    """

    value: float
    kind: str
    label: str
    error: float | None = None
    detail: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind: {self.kind!r} is not one of {KINDS}")

    @property
    def source(self) -> str:
        """``kind:label``: the text stored in the ``<column>_source`` column."""
        return f"{self.kind}:{self.label}"

    @staticmethod
    def split(source: str) -> tuple[str, str]:
        """``'measured:cpu'`` -> ``('measured', 'cpu')``; older tables' ``sum of parts (a + b)``
        is read as the weakest kind inside the brackets."""
        if source.startswith("sum of parts"):
            inner = source[source.find("(") + 1 : source.rfind(")")].split(" + ")
            return weakest([k for k in inner if k in KINDS] or ["predicted"]), source
        kind, _, label = source.partition(":")
        return (kind, label) if kind in KINDS else ("user", source)


@dataclass(frozen=True)
class Refusal:
    """A source that had no value for a point, and why (carried to the record and the report)."""

    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


def weakest(kinds: list[str]) -> str:
    """The least trusted of several kinds (a sum of a measured and a predicted part is predicted)."""
    ranked = [k for k in kinds if k in _TRUST]
    return max(ranked, key=_TRUST.index) if ranked else "not-timed"


def kind_of(source: Any) -> str:
    """Kind of a ``<column>_source`` text; ``none`` when the value is missing."""
    if not isinstance(source, str) or not source:
        return "none"
    return Sourced.split(source)[0]


@dataclass(frozen=True)
class TrialRecord:
    """Everything known about one (encoder, resolution, LLM) point.

    Counts are exact (``counts_source``); each latency part and the accuracy are :class:`Sourced`
    or ``None`` (not asked for, or refused: ``refusals`` says why).
    """

    point: str
    encoder: str
    family: str
    spec: dict[str, Any]
    spec_hash: str
    resolution: int
    llm: str | None
    visual_tokens: int
    output_stride: int
    feature_width: int
    params: int | None = None
    params_reparameterized: int | None = None
    macs: int | None = None
    macs_conv: int | None = None
    macs_linear: int | None = None
    macs_attention: int | None = None
    uncounted_ops: dict[str, int] = field(default_factory=dict)
    counts_source: str = "counted"
    #: ``RxC+1`` for a tiled point (tokens, MACs and encoder latency then cover every pass);
    #: ``<scheme>:RxC+1`` where a released scheme (llava_next, anyres_max_N) is named
    tiling: str | None = None
    #: the scheme's released code's token count (unpadding, newlines, cap; tiling.Tiling.released_tokens);
    #: ``visual_tokens`` and the prefill keep the paper's convention
    visual_tokens_released: int | None = None
    device: str | None = None
    device_fingerprint: str | None = None
    threads: int | None = None
    runtime: str | None = None
    runtime_version: str | None = None
    precision: str | None = None
    text_tokens: int = 0
    encoder_ms: Sourced | None = None
    projector_ms: Sourced | None = None
    prefill_ms: Sourced | None = None
    ttft_ms: Sourced | None = None
    encoder_ms_predicted: Sourced | None = None
    accuracy: Sourced | None = None
    accuracy_metric: str | None = None
    refusals: tuple[str, ...] = ()
    versions: dict[str, str] = field(default_factory=dict)

    # --- the table ---------------------------------------------------------------------------
    @staticmethod
    def sourced_columns(name: str) -> tuple[str, ...]:
        base = (name, f"{name}_source", f"{name}_error")
        if name == "accuracy":
            return (*base, "accuracy_detail")
        return (*base, *(f"{name}_{stat}" for stat in _STATS))

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        """The fixed column list of the results table (``version_*`` columns follow it)."""
        out: list[str] = []
        for f in fields(cls):
            if f.name == "versions":
                continue
            if f.name in SOURCED_FIELDS:
                out += cls.sourced_columns(f.name)
            else:
                out.append(f.name)
        return tuple(out)

    def to_row(self) -> dict[str, Any]:
        """Flat, JSON-able: one column per field, ``<part>``, ``<part>_source``, ``<part>_error``…"""
        row: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "versions":
                row.update({f"version_{k}": v for k, v in value.items()})
            elif f.name in SOURCED_FIELDS:
                row.update(_sourced_to_columns(f.name, value))
            elif f.name == "refusals":
                row[f.name] = list(value)
            else:
                row[f.name] = value
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TrialRecord:
        """Inverse of :meth:`to_row`; also reads a results-table row (JSON text in list columns,
        NaN for missing) and older tables without the newer columns."""
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "versions":
                kwargs[f.name] = {
                    k.removeprefix("version_"): v
                    for k, v in row.items()
                    if k.startswith("version_") and not _missing(v)
                }
            elif f.name in SOURCED_FIELDS:
                kwargs[f.name] = _sourced_from_columns(f.name, row)
            elif f.name in row and not _missing(row[f.name]):
                value = row[f.name]
                if f.name in ("spec", "uncounted_ops", "refusals") and isinstance(value, str):
                    value = json.loads(value)
                if f.name == "refusals":
                    value = tuple(value)
                kwargs[f.name] = value
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        missing = sorted(n for n in required if n not in kwargs)
        if missing:
            raise KeyError(f"{missing[0]}: a trial record needs this column")
        return cls(**kwargs)

    def with_(self, **changes: Any) -> TrialRecord:
        return replace(self, **changes)


def _sourced_to_columns(name: str, value: Sourced | None) -> dict[str, Any]:
    columns = dict.fromkeys(TrialRecord.sourced_columns(name))
    if value is None:
        return columns
    columns.update({name: value.value, f"{name}_source": value.source, f"{name}_error": value.error})
    detail = value.detail or {}
    if name == "accuracy":
        columns["accuracy_detail"] = detail or None
    else:
        columns.update({f"{name}_{stat}": _dig(detail, path) for stat, path in _STATS.items()})
    return columns


def _sourced_from_columns(name: str, row: dict[str, Any]) -> Sourced | None:
    value, source = row.get(name), row.get(f"{name}_source")
    if _missing(value) or not isinstance(source, str):
        return None
    kind, label = Sourced.split(source)
    error = row.get(f"{name}_error")
    if name == "accuracy":
        detail = row.get("accuracy_detail")
        detail = json.loads(detail) if isinstance(detail, str) else (detail or None)
    else:
        detail = {}
        for stat, path in _STATS.items():
            if not _missing(stat_value := row.get(f"{name}_{stat}")):
                target = detail
                for key in path[:-1]:
                    target = target.setdefault(key, {})
                target[path[-1]] = stat_value
    return Sourced(float(value), kind, label, None if _missing(error) else float(error), detail or None)
