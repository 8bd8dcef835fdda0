"""How a module is run when timed: eager fp32 (default), channels_last, torch.compile, bf16.

Each runtime is checked against eager fp32 on the same input before its time may be reported:
a fast wrong answer is not a latency. Tolerances (max |difference| / max |reference|):
eager 0, channels_last 1e-4 (different conv kernels), compile 1e-3 (fused kernels reorder
sums), bf16 autocast 5e-2 (8-bit mantissa).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn

from fastvitsearch.spec import SpecError

RUNTIMES = ("eager", "channels_last", "compile", "bf16")
TOLERANCE = {"eager": 0.0, "channels_last": 1e-4, "compile": 1e-3, "bf16": 5e-2}


class RuntimeMismatch(RuntimeError):
    """A runtime's output differs from eager fp32 by more than its tolerance."""


def check_runtime(runtime: str) -> None:
    if runtime not in RUNTIMES:
        raise SpecError("device.runtime", f"unknown runtime {runtime!r}; one of {', '.join(RUNTIMES)}")


def prepare(module: nn.Module, images: torch.Tensor, runtime: str) -> Callable[[], torch.Tensor]:
    """A zero-argument callable running ``module`` on ``images`` the way ``runtime`` says."""
    check_runtime(runtime)
    if runtime == "channels_last":
        module = module.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    if runtime == "compile":
        module = torch.compile(module, dynamic=False)
    autocast = (
        (lambda: torch.autocast(images.device.type, dtype=torch.bfloat16))
        if runtime == "bf16"
        else contextlib.nullcontext
    )

    def run() -> torch.Tensor:
        with autocast():
            return module(images)

    return run


def relative_error(output: torch.Tensor, reference: torch.Tensor) -> float:
    scale = reference.abs().max().clamp_min(1e-12)
    return float((output.float() - reference.float()).abs().max() / scale)


def prepare_checked(module: nn.Module, images: torch.Tensor, runtime: str) -> tuple[Callable[[], torch.Tensor], float]:
    """:func:`prepare`, after checking the runtime's output against eager fp32.

    Returns the callable and the measured relative error; raises :class:`RuntimeMismatch`
    naming the runtime, the error and the tolerance when it is off.
    """
    with torch.inference_mode():
        reference = module(images)
    run = prepare(module, images, runtime)
    with torch.inference_mode():
        error = relative_error(run(), reference)
    if error > TOLERANCE[runtime]:
        raise RuntimeMismatch(
            f"runtime: {runtime} output differs from eager fp32 by {error:.2e} (tolerance {TOLERANCE[runtime]:.0e})"
        )
    return run, error
