"""Is a report folder current? The digest of the results table and meta it was built from, kept
beside ``index.html``; light (no plotting imports), so a rerun of a finished sweep answers fast."""

from __future__ import annotations

import hashlib
from pathlib import Path

#: the digest of the results table and meta a report was built from (beside index.html)
BUILT_FROM = ".built_from"


def inputs_digest(sweep_dir: Path) -> str:
    """What a report is built from: the results table and meta.json, as bytes."""
    digest = hashlib.sha256()
    for name in ("results.csv", "meta.json"):
        path = sweep_dir / name
        digest.update(path.read_bytes() if path.exists() else b"")
    return digest.hexdigest()


def is_current(sweep_dir: Path, report_dir: Path) -> bool:
    """True when ``report_dir`` holds a report built from ``sweep_dir``'s present results."""
    stamp = report_dir / BUILT_FROM
    return stamp.exists() and (report_dir / "index.html").exists() and stamp.read_text() == inputs_digest(sweep_dir)
