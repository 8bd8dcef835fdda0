"""On-disk cache of expensive results (timings, proxy training runs), so a rerun does not redo them.

Keys are plain dicts (spec hash, resolution, device fingerprint, runtime, threads, protocol…);
each entry is one small JSON file named by the key's hash, written atomically. An unreadable
entry (a truncated or corrupt file) is treated as missing, with a warning naming the file, so
the value is recomputed instead of failing the point.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any


def default_cache_dir() -> Path:
    """``$FASTVITSEARCH_CACHE``, else ``$XDG_CACHE_HOME/fastvitsearch`` (``~/.cache``)."""
    if env := os.environ.get("FASTVITSEARCH_CACHE"):
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fastvitsearch"


class MeasurementCache:
    """A folder of JSON entries keyed by dicts (``$FASTVITSEARCH_CACHE`` by default)."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory else default_cache_dir()

    def _path(self, key: dict[str, Any]) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        return self.directory / f"{key.get('kind', 'entry')}-{digest}.json"

    def get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        path = self._path(key)
        if not path.exists():
            return None
        try:
            entry = json.loads(path.read_text())
            return entry["value"] if entry.get("key") == key else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            warnings.warn(f"cache entry {path} is unreadable ({type(err).__name__}); recomputing it", stacklevel=2)
            return None

    def put(self, key: dict[str, Any], value: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(key)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"key": key, "value": value}, indent=1))
        tmp.replace(path)
