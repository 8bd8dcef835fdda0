"""A throw-away PostgreSQL server on loopback for tests (Debian's postgresql package).

As root (CI), the server runs as the ``postgres`` user, as PostgreSQL refuses root. Tests that
need it are skipped, with the reason, where the binaries or the driver are missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def unavailable_reason() -> str | None:
    if _bin("initdb") is None or _bin("pg_ctl") is None:
        return "PostgreSQL server binaries not installed (apt-get install postgresql; .ci/run does)"
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "psycopg2 not installed (pip install -e '.[test]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server in a temporary data directory; yield its SQLAlchemy URL; stop and delete it."""
    root = tempfile.mkdtemp(prefix="fastvitsearch-pg-")
    data = os.path.join(root, "data")
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(root, "postgres")
        os.chmod(root, 0o700)
    port = _free_port()
    run = lambda *cmd: subprocess.run([*prefix, *cmd], check=True, capture_output=True, text=True)  # noqa: E731
    run(_bin("initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
    options = f"-p {port} -k {root} -h 127.0.0.1 -c fsync=off -c max_connections=100"
    run(_bin("pg_ctl"), "-D", data, "-o", options, "-w", "-l", os.path.join(root, "log"), "start")
    try:
        run(_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "fastvitsearch")
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/fastvitsearch"
    finally:
        subprocess.run([*prefix, _bin("pg_ctl"), "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
