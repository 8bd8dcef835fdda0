"""Study <-> tidy table: one row per trial, the fixed columns of its record and their sources.

The table is rebuilt from the Optuna storage alone (the record is a trial user attr), so a
report never needs the process that ran the sweep; :func:`load_folder` reads it back without
Optuna. Columns: ``TRIAL_COLUMNS`` (state, error, why it was pruned, …), then
:meth:`TrialRecord.columns() <fastvitsearch.record.TrialRecord.columns>`, then ``version_*``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from fastvitsearch.record import TrialRecord

if TYPE_CHECKING:
    import optuna

RECORD_ATTR = "record"
STUDY_DB = "study.db"
#: what the study knows about a trial beside its record
TRIAL_COLUMNS = ("trial", "state", "point", "error", "missing", "retry_of", "duration_s", "worker")
__all__ = ["RECORD_ATTR", "TRIAL_COLUMNS", "load", "load_folder", "sqlite_url", "trials_table", "write_tables"]


def sqlite_url(study_dir: Path) -> str:
    return f"sqlite:///{(Path(study_dir) / STUDY_DB).resolve()}"


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: the trial's columns, then its record's fixed columns (NaN where none)."""
    rows: list[dict[str, Any]] = []
    for trial in study.get_trials(deepcopy=False):
        record = dict(trial.user_attrs.get(RECORD_ATTR) or {})
        row: dict[str, Any] = dict.fromkeys(TrialRecord.columns())
        row.update(
            trial=trial.number,
            state=trial.state.name,
            point=trial.user_attrs.get("point", record.get("point")),
            error=trial.user_attrs.get("error"),
            missing=trial.user_attrs.get("missing"),
            retry_of=trial.user_attrs.get("retry_of"),
            duration_s=trial.duration.total_seconds() if trial.duration else None,
            worker=trial.user_attrs.get("worker"),
        )
        for key, value in record.items():
            if key != "point":
                row[key] = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value
        rows.append(row)
    columns = [*TRIAL_COLUMNS, *(c for c in TrialRecord.columns() if c != "point")]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    return frame[columns + sorted(c for c in frame.columns if c not in columns)]


def write_tables(study: optuna.Study, directory: Path) -> pd.DataFrame:
    """Write ``results.csv`` and ``results.parquet`` next to the study (atomically)."""
    table = trials_table(study)
    directory.mkdir(parents=True, exist_ok=True)
    for name, writer in (
        ("results.csv", lambda t, p: t.to_csv(p, index=False)),
        ("results.parquet", lambda t, p: t.to_parquet(p, index=False)),
    ):
        tmp = directory / f".{name}.{os.getpid()}.tmp"
        writer(table, tmp)
        tmp.replace(directory / name)
    return table


def load(path: str | Path, study_name: str | None = None) -> pd.DataFrame:
    """Results of a sweep as a DataFrame, from its folder, its ``study.db``, a storage URL or the
    sweep's ``journal:<file>``.

    A folder or file path reads the SQLite study; a URL (``postgresql://…``) needs ``study_name``
    when it holds several studies. Nothing is created on the way: a missing database or study is a
    ``FileNotFoundError`` naming the path, the study or the URL, and a file that is not a study
    database (e.g. the sweep's ``results.csv``) a ``ValueError`` saying what to pass instead.
    """
    url = _study_url(path)
    import optuna

    if url.startswith("journal:"):  # the sweep's storage=journal:<file> (shared file systems)
        from optuna.storages.journal import JournalFileBackend

        storage = optuna.storages.JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    else:
        storage = optuna.storages.RDBStorage(url)
    names = [s.study_name for s in optuna.study.get_all_study_summaries(storage, include_best_trial=False)]
    if study_name is None:
        if not names:
            raise FileNotFoundError(f"path: no study in {url}")
        if len(names) > 1:
            raise ValueError(f"study_name: {len(names)} studies in {url} ({', '.join(sorted(names))}); name one")
        study_name = names[0]
    elif study_name not in names:
        known = ", ".join(sorted(names)) or "none"
        raise FileNotFoundError(f"study_name: no study {study_name!r} in {url} (studies there: {known})")
    return trials_table(optuna.load_study(study_name=study_name, storage=storage))


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _study_url(path: str | Path) -> str:
    """The storage URL of ``path``, refusing what would make Optuna create an empty database."""
    text = str(path)
    if text.startswith("journal:"):
        if not Path(text.removeprefix("journal:")).is_file():
            raise FileNotFoundError(f"path: no journal file at {text.removeprefix('journal:')}")
        return text
    if "://" in text:
        if text.startswith("sqlite:"):
            from sqlalchemy.engine import make_url

            database = make_url(text).database
            if database and database != ":memory:" and not Path(database).exists():
                raise FileNotFoundError(f"path: no study database at {database} (from {text})")
        return text
    p = Path(path)
    db = p / STUDY_DB if p.is_dir() else p
    if not db.exists():
        raise FileNotFoundError(f"path: no study database at {db}")
    with db.open("rb") as handle:
        is_sqlite = handle.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    if not is_sqlite:
        hint = (
            f"; it looks like a sweep's results table: pass its folder ({db.parent}) to read the study,"
            " or read the table with load_folder"
            if db.suffix in (".csv", ".parquet")
            else ""
        )
        raise ValueError(f"path: {db} is not an SQLite study database{hint}")
    return f"sqlite:///{db.resolve()}"


def write_meta(directory: Path, meta: dict[str, Any]) -> None:
    """``meta.json`` beside the table: experiment, study, objectives, command, config."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "meta.json").write_text(json.dumps(meta, indent=1, default=str))


class TableError(ValueError):
    """A results table or meta file that cannot be read; the message names the file and why."""


def _read_table(directory: Path) -> pd.DataFrame:
    parquet, csv = directory / "results.parquet", directory / "results.csv"
    problems = []
    for path, reader in ((parquet, pd.read_parquet), (csv, pd.read_csv)):
        if not path.exists():
            continue
        try:
            return reader(path)
        except Exception as err:  # noqa: BLE001 - pyarrow/pandas raise many kinds: say which file and why
            problems.append(f"{path}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'unreadable'}")
    if problems:
        raise TableError("; ".join(problems))
    raise FileNotFoundError(f"path: no results.parquet or results.csv in {directory}")


def load_folder(directory: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The results table and its meta from a sweep folder (no Optuna needed). The parquet table is
    read first, the CSV when the parquet is unreadable; a table without the trial columns, or an
    unreadable ``meta.json``, is a :class:`TableError` naming the file."""
    directory = Path(directory)
    table = _read_table(directory)
    missing = [c for c in ("trial", "state", "point") if c not in table.columns]
    if missing:
        raise TableError(f"{directory}: the results table has no {', '.join(missing)} column (not a sweep's table?)")
    meta_path = directory / "meta.json"
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    except (OSError, ValueError) as err:
        raise TableError(f"{meta_path}: unreadable ({err}); rerun the sweep command to rewrite it") from None
    if not isinstance(meta, dict):
        raise TableError(f"{meta_path}: expected a JSON object, got {type(meta).__name__}")
    return table, meta
