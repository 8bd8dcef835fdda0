"""On-disk cache of measurements, so a rerun (or a resumed sweep) does not re-measure.

Keys are plain dicts (spec hash, resolution, device fingerprint, runtime, threads, dtype...);
each entry is one small JSON file named by the key's hash, written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def default_cache_dir() -> Path:
    """``$FASTVITSEARCH_CACHE``, else ``$XDG_CACHE_HOME/fastvitsearch`` (``~/.cache``)."""
    if env := os.environ.get("FASTVITSEARCH_CACHE"):
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fastvitsearch"


class MeasurementCache:
    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory else default_cache_dir()

    def _path(self, key: dict[str, Any]) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        return self.directory / f"{key.get('kind', 'entry')}-{digest}.json"

    def get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        path = self._path(key)
        if not path.exists():
            return None
        entry = json.loads(path.read_text())
        return entry["value"] if entry.get("key") == key else None

    def put(self, key: dict[str, Any], value: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(key)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"key": key, "value": value}, indent=1))
        tmp.replace(path)
