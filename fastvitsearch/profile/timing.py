"""The one timing protocol used for every measured number (encoders, projector, LLM prefill).

Eval mode, reparameterized, ``torch.inference_mode``; warm-up by count *and* by time; repeats
until a time or count budget, or until the runs pin the median down (``agree_within``,
``precision``); median, IQR and p90 over the repeats; the thread count fixed and recorded
(default 1: on a shared 2-core machine two OpenMP threads stall whenever the other core is busy,
which swings timings 3-10x); CUDA synchronised around every run; a run whose IQR/median exceeds
``noisy_threshold`` is flagged ``noisy``, never hidden. The CPU time other
processes used while we measured is recorded too, so a reader can judge a slow number.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import fcntl
import hashlib
import math
import os
import platform
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch loads when something is timed: a protocol or a cache key needs none
    import torch


@dataclass(frozen=True)
class TimingProtocol:
    """How long to warm up and how many repeats to take; defaults suit a CPU encoder."""

    warmup_runs: int = 2
    warmup_seconds: float = 0.5
    min_runs: int = 5
    max_runs: int = 50
    budget_seconds: float = 3.0
    noisy_threshold: float = 0.10
    #: stop after two runs (before ``min_runs``) when they differ by at most this share of their
    #: mean: the repeats a slow encoder gets follow the variance observed (0 disables)
    agree_within: float = 0.05
    #: stop (after ``min_runs``) once the median's distribution-free 95 % confidence interval lies
    #: within this share of the median (the tolerance two agreeing slow runs get): a steady fast op
    #: needs 6 runs, not the whole budget (0 disables)
    precision: float = 0.05
    #: keep freed memory in the process (glibc) instead of returning every large tensor to the
    #: system: see :func:`retain_freed_memory`
    retain_memory: bool = True

    def __post_init__(self) -> None:
        if self.min_runs < 1 or self.max_runs < self.min_runs:
            raise ValueError("timing.min_runs must be >= 1 and <= timing.max_runs")


@dataclass(frozen=True)
class Timing:
    """Statistics of one measurement, in milliseconds, with the environment it ran in."""

    median_ms: float
    iqr_ms: float
    p90_ms: float
    n: int
    noisy: bool
    environment: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def cpu_model() -> str:
    """The CPU's marketing name (Linux ``/proc/cpuinfo``), else what ``platform`` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_slug() -> str:
    """:func:`cpu_model` as a file-name part (``intel-xeon-processor``): benchmark results are
    kept per machine, since this project's CI machine has changed CPU between sessions."""
    return re.sub(r"[^a-z0-9]+", "-", cpu_model().lower().replace("(r)", "")).strip("-")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    return cpu_model()


def versions() -> dict[str, str]:
    import timm
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "transformers": transformers.__version__,
    }


def device_fingerprint(device: torch.device) -> str:
    """Identifies hardware + software whose timings are comparable (cache key, grouping key)."""
    import torch

    parts = [device.type, device_name(device), str(os.cpu_count()), platform.machine(), torch.__version__]
    if device.type == "cuda":
        parts.append(str(torch.version.cuda))
    return f"{device.type}-{hashlib.sha256('|'.join(parts).encode()).hexdigest()[:12]}"


def _busy_cpu_seconds() -> float | None:
    """Whole-machine busy CPU seconds from /proc/stat (None where that does not exist)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    ticks = [int(x) for x in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def device_lock(device: torch.device) -> Iterator[None]:
    """An exclusive inter-process lock per device, so two timing trials never share it."""
    lock_dir = Path(os.environ.get("FASTVITSEARCH_LOCK_DIR", tempfile.gettempdir()))
    path = lock_dir / f"fastvitsearch-{device_fingerprint(device)}.lock"
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


#: glibc ``mallopt`` parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_allocator: str | None = None
_libc: ctypes.CDLL | None = None


def retain_freed_memory() -> str:
    """Serve large tensors from the heap and keep freed memory, as a caching allocator does.

    Why: glibc maps every allocation over 128 KiB-32 MiB with ``mmap`` and unmaps it when freed,
    so eager CPU inference page-faults its activations in on every run. Measured here on one
    RepMixer block (48 ch, 256x256, 1 thread): 80-140 ms a run with glibc's defaults, 60-67 ms
    with this (less time and 8x less spread); FastViTHD@1024: 7.4-7.6 s vs 6.4-6.9 s. Deployment
    runtimes keep their own arenas and PyTorch's CPU tuning guide recommends a caching allocator
    (jemalloc/tcmalloc) for the same reason. Process-wide and idempotent; returns what the
    timing's environment records (``system`` where the C library has no ``mallopt``).
    """
    global _allocator
    if _allocator is None:
        _allocator = "system"
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            if libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1):
                _allocator = "glibc: mmap threshold 1 GiB, trim off"
                global _libc
                _libc = libc
    if _libc is not None:  # start every measurement from a heap without earlier models' garbage
        _libc.malloc_trim(0)
    return _allocator


def median_interval(samples: list[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """Distribution-free confidence interval of the median: the order statistics ``x_(k)`` and
    ``x_(n+1-k)`` with the largest ``k`` whose two-sided binomial(n, 1/2) tail stays within
    ``1 - confidence``. None below 6 samples, the fewest for which even (min, max) covers 95 %."""
    n = len(samples)
    tail, k, mass = (1 - confidence) / 2, 0, 0.0
    while k < n // 2:
        mass += math.comb(n, k) / 2**n  # P(Binomial(n, 1/2) = k)
        if mass > tail:
            break
        k += 1
    if k == 0:
        return None
    ordered = sorted(samples)
    return ordered[k - 1], ordered[n - k]


def _settled(samples: list[float], protocol: TimingProtocol, budget_spent: bool) -> bool:
    """Whether more runs would not move the estimate: repeats follow the variance observed.

    Two runs agreeing within ``agree_within`` once the budget is spent (runs of a slow encoder
    vary by ~1 % here while this machine drifts by up to 15 % over minutes), or, from
    ``min_runs`` on, the median known within ``precision`` at 95 % confidence.
    """
    if len(samples) == 2 and budget_spent and protocol.agree_within > 0:
        return abs(samples[0] - samples[1]) <= protocol.agree_within * (samples[0] + samples[1]) / 2
    if len(samples) < protocol.min_runs or protocol.precision <= 0:
        return False
    interval = median_interval(samples)
    if interval is None:
        return False
    middle = statistics.median(samples)
    return max(middle - interval[0], interval[1] - middle) <= protocol.precision * middle


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile of an already sorted list (q in [0, 1])."""
    position = q * (len(sorted_values) - 1)
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def measure(
    run: Callable[[], Any],
    *,
    device: torch.device,
    threads: int = 1,
    protocol: TimingProtocol | None = None,
    context: dict[str, Any] | None = None,
    warmed_up: int = 0,
) -> Timing:
    """Time ``run()`` under the protocol; ``context`` (runtime, dtype, batch...) joins the record.

    ``warmed_up``: untimed runs of ``run`` the caller already made (the numerics check runs the
    model once), which count towards the protocol's warm-up runs instead of being repeated.
    """
    import torch

    from fastvitsearch.torch_threads import fixed_threads

    protocol = protocol or TimingProtocol()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def once() -> float:
        sync()
        start = time.perf_counter()
        run()
        sync()
        return (time.perf_counter() - start) * 1e3

    allocator = retain_freed_memory() if protocol.retain_memory else "system"
    with device_lock(device), fixed_threads(threads), torch.inference_mode():
        warm_start = time.perf_counter()
        done = warmed_up
        while done < protocol.warmup_runs or time.perf_counter() - warm_start < protocol.warmup_seconds:
            once()
            done += 1
        busy_before, own_before, wall_before = _busy_cpu_seconds(), time.process_time(), time.perf_counter()
        samples: list[float] = []
        while len(samples) < protocol.min_runs or (
            len(samples) < protocol.max_runs and time.perf_counter() - wall_before < protocol.budget_seconds
        ):
            samples.append(once())
            if _settled(samples, protocol, time.perf_counter() - wall_before >= protocol.budget_seconds):
                break
        wall = time.perf_counter() - wall_before
        busy_after, own = _busy_cpu_seconds(), time.process_time() - own_before
    other_cores = None
    if busy_before is not None and busy_after is not None and wall > 0:
        other_cores = round(max(0.0, (busy_after - busy_before - own) / wall), 3)
    ordered = sorted(samples)
    median = statistics.median(ordered)
    iqr = _percentile(ordered, 0.75) - _percentile(ordered, 0.25)
    environment = {
        "device": device.type,
        "device_name": device_name(device),
        "device_fingerprint": device_fingerprint(device),
        "threads": threads,
        "other_processes_cpu_cores": other_cores,
        "warmup_runs": done,
        "allocator": allocator,
        # when: a cached timing may come from an earlier run, and this VM's speed drifts between runs
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **versions(),
        **(context or {}),
    }
    return Timing(
        median_ms=round(median, 4),
        iqr_ms=round(iqr, 4),
        p90_ms=round(_percentile(ordered, 0.90), 4),
        n=len(samples),
        noisy=median > 0 and iqr / median > protocol.noisy_threshold,
        environment=environment,
    )
