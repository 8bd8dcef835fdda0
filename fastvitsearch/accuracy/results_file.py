"""Accuracy ``results_file``: the user's own benchmark numbers, joined by (encoder, resolution, llm).

Formats: CSV or JSON rows with ``encoder, resolution, llm, metric, value`` (optional ``source``),
or an lmms-eval results JSON (``{"results": {task: {"metric,filter": value}}, "config":
{"model_args": …}}`` plus our ``fastvitsearch`` block naming the point, see README). Encoders are
preset names (or spec hashes); LLMs are preset names. A malformed row is reported with its line
number and skipped; the good rows are kept. Unknown encoders, LLMs and metrics are reported,
never silently dropped.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from fastvitsearch.llm import LLM_PRESETS, LLMSpec
from fastvitsearch.paper import metrics as paper_metrics
from fastvitsearch.presets import preset_names, resolve_encoder
from fastvitsearch.record import Refusal, Sourced
from fastvitsearch.spec import EncoderSpec, SpecError

REQUIRED = ("encoder", "resolution", "llm", "metric", "value")


@dataclass
class LoadReport:
    rows: int = 0
    errors: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def _encoder_hash(name: str) -> str | None:
    if name in preset_names():
        return resolve_encoder(name).content_hash
    if len(name) == 16 and all(c in "0123456789abcdef" for c in name):
        return name  # a spec hash, e.g. of a custom encoder
    return None


def _lmms_eval_rows(payload: dict) -> list[dict]:
    """Rows from an lmms-eval results JSON; the point comes from its ``fastvitsearch`` block."""
    point = payload.get("fastvitsearch") or {}
    rows = []
    for task, metrics in (payload.get("results") or {}).items():
        for key, value in metrics.items():
            if key.endswith("_stderr,none") or key == "alias" or not isinstance(value, int | float):
                continue
            name = key.split(",")[0]
            scaled = value * 100 if 0 <= value <= 1 else value  # lmms-eval reports fractions
            rows.append(
                {
                    **point,
                    "metric": f"{task}" if name in ("exact_match", "accuracy", "acc") else f"{task}:{name}",
                    "value": scaled,
                    "source": f"lmms-eval:{task}",
                }
            )
    return rows


def read_rows(path: Path) -> list[tuple[int, dict]]:
    """(line number, row) pairs; JSON rows are numbered by position (1-based). A file that is not
    text, not a CSV with the required header or not JSON is a :class:`SpecError` saying why."""
    field = "accuracy.results_file.path"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SpecError(field, f"{path} is not a text file (CSV or JSON expected)") from None
    if not text.strip():
        raise SpecError(field, f"{path} is empty: 0 rows")
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        header = reader.fieldnames or []
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            hint = " (it looks ';'-separated: use ',')" if ";" in (header[0] if header else "") else ""
            raise SpecError(
                field, f"{path}: the header {header!r} lacks {', '.join(missing)}{hint}; need {', '.join(REQUIRED)}"
            )
        return [(i + 2, row) for i, row in enumerate(reader)]  # line 1 is the header
    try:
        payload = json.loads(text)
    except ValueError as err:
        raise SpecError(field, f"{path} is not valid JSON ({err})") from None
    if isinstance(payload, dict) and "results" in payload and isinstance(payload["results"], dict):
        return list(enumerate(_lmms_eval_rows(payload), start=1))
    if isinstance(payload, dict):
        payload = payload.get("rows", [])
    return list(enumerate(payload, start=1))


class ResultsFileAccuracy:
    name = "results_file"

    def __init__(self, path: str | None = None) -> None:
        if not path:
            raise SpecError("accuracy.results_file.path", "name the CSV or JSON file with your results")
        self.path = Path(path)
        if not self.path.exists():
            raise SpecError("accuracy.results_file.path", f"no file at {self.path}")
        self.report = LoadReport()
        self._values: dict[tuple[str, int, str, str], tuple[float, str]] = {}
        metrics = paper_metrics()
        for line, row in read_rows(self.path):
            if not isinstance(row, dict):
                self.report.errors.append(f"{self.path}:{line}: expected an object with {', '.join(REQUIRED)}")
                continue
            missing = [c for c in REQUIRED if row.get(c) in (None, "")]
            if missing:
                self.report.errors.append(f"{self.path}:{line}: missing {', '.join(missing)}")
                continue
            try:
                resolution = int(row["resolution"])
                value = float(row["value"])
                if not math.isfinite(value):
                    raise ValueError("value is not finite")
                if not 0 <= value <= 100:
                    raise ValueError(f"value {value} is not an accuracy in percent (0-100)")
            except (TypeError, ValueError) as err:
                self.report.errors.append(f"{self.path}:{line}: {err}")
                continue
            encoder_hash = _encoder_hash(str(row["encoder"]))
            if encoder_hash is None:
                self.report.unknown.append(f"{self.path}:{line}: unknown encoder {row['encoder']!r}")
                continue
            if row["llm"] not in LLM_PRESETS:
                self.report.unknown.append(f"{self.path}:{line}: unknown llm {row['llm']!r}")
                continue
            if row["metric"] not in metrics and ":" not in row["metric"]:
                self.report.unknown.append(
                    f"{self.path}:{line}: metric {row['metric']!r} is not one the paper "
                    "reports (kept, but no published value will sit beside it)"
                )
            source = row.get("source") or self.path.name
            key = (encoder_hash, resolution, row["llm"], row["metric"])
            if key in self._values:
                self.report.errors.append(
                    f"{self.path}:{line}: duplicate of an earlier row for {row['encoder']}@{resolution}+{row['llm']} "
                    f"{row['metric']} (the first is kept)"
                )
                continue
            self._values[key] = (value, str(source))
            self.report.rows += 1

    def diagnostics(self) -> list[str]:
        """Said once at set-up: rows read, and every skipped or doubtful row with file:line."""
        lines = [f"results file {self.path}: {self.report.rows} row(s) read"]
        return lines + self.report.errors + self.report.unknown

    def lookup(self, encoder: EncoderSpec, resolution: int, llm: LLMSpec, metric: str) -> Sourced | Refusal:
        hit = self._values.get((encoder.content_hash, resolution, llm.name, metric))
        if hit is None:
            return Refusal(self.name, f"no {metric} row for this point in {self.path.name}")
        return Sourced(hit[0], "user", hit[1], None, {"file": str(self.path)})
