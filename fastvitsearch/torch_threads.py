"""A fixed torch thread count for a block of work (timing and proxy training both need one)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def fixed_threads(threads: int) -> Iterator[None]:
    """Run the body with exactly ``threads`` intra-op threads, then restore the old count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
