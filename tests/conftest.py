"""Session-wide test settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def private_measurement_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Point ``$FASTVITSEARCH_CACHE`` at a folder of this session, so that no test writes to the
    user's cache (``~/.cache/fastvitsearch``): a tiny test proxy or a timing taken under test settings
    must never be read back by a real sweep. Sweeps the tests start as subprocesses inherit it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FASTVITSEARCH_CACHE", str(tmp_path_factory.mktemp("fastvitsearch-cache")))
        yield
