"""How an encoder is run when timed: a runtime (PyTorch eager, channels_last, torch.compile, ONNX
Runtime, OpenVINO) at a precision (fp32, bf16, fp16).

Every (runtime, precision) is checked against eager fp32 on the same input before its time may
be reported: a fast wrong answer is not a latency. Tolerances (max |difference| / max |reference|)
per runtime and precision are in :data:`RUNTIME_TABLE`: eager fp32 0, other fp32 kernels 1e-4
(different conv/matmul kernels and fusions: 1e-3 for torch.compile), bf16 5e-2 (8-bit mantissa),
fp16 1e-2. A precision the runtime or this CPU cannot run is refused naming ``device.precision``;
a runtime whose package is missing says which extra installs it.

ONNX Runtime and OpenVINO run the same built, reparameterized module, exported once to ONNX
(``torch.onnx.export``) and cached on disk per (spec hash, resolution, torch version, opset):
OpenVINO reads that file (0.4 s for FastViTHD@1024) instead of converting the torch module
itself (49 s). Their thread count is set in the session, as the timing protocol's is for torch.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastvitsearch.spec import SpecError

if TYPE_CHECKING:  # torch is imported where a model runs: choosing and checking a runtime needs none
    import numpy as np
    import torch
    from torch import nn

PRECISIONS = ("fp32", "bf16", "fp16")
Run = Callable[[], Any]


class RuntimeMismatch(RuntimeError):
    """A runtime's output differs from eager fp32 by more than its tolerance."""


@functools.cache
def cpu_flags() -> frozenset[str]:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def _has_bf16() -> bool:
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def _has_fp16() -> bool:
    return bool({"avx512_fp16", "amx_fp16"} & cpu_flags())


def _torch_run(module: nn.Module, images: torch.Tensor, precision: str, threads: int) -> Run:
    import torch

    autocast = torch.bfloat16 if precision == "bf16" else torch.float16 if precision == "fp16" else None

    def run() -> torch.Tensor:
        if autocast is None:
            return module(images)
        with torch.autocast(images.device.type, dtype=autocast):
            return module(images)

    return run


def _channels_last(module: nn.Module, images: torch.Tensor, precision: str, threads: int) -> Run:
    import torch

    return _torch_run(
        module.to(memory_format=torch.channels_last),
        images.contiguous(memory_format=torch.channels_last),
        precision,
        threads,
    )


def _compiled(module: nn.Module, images: torch.Tensor, precision: str, threads: int) -> Run:
    import torch

    return _torch_run(torch.compile(module, dynamic=False), images, precision, threads)


OPSET = 17


@contextlib.contextmanager
def _onnx_file(module: nn.Module, images: torch.Tensor, export: Path | None) -> Iterator[Path]:
    """The ONNX export at ``export`` (cached there), or in a temporary folder removed once the
    runtime has loaded it (without a cache every measurement would leave a model on disk)."""
    if export is not None:
        yield write_onnx(module, images, export)
        return
    with tempfile.TemporaryDirectory(prefix="fastvitsearch-") as folder:
        yield write_onnx(module, images, Path(folder) / "model.onnx")


def write_onnx(module: nn.Module, images: torch.Tensor, path: Path) -> Path:
    import torch

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's tracer warnings
            torch.onnx.export(
                module,
                (images,),
                tmp,
                input_names=["images"],
                output_names=["features"],
                dynamo=False,
                opset_version=17,
            )
        tmp.replace(path)
    return path


def _load_onnxruntime(path: Path, images: torch.Tensor, precision: str, threads: int) -> Run:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: images.cpu().numpy()}
    return lambda: session.run(None, feed)[0]


def _load_openvino(path: Path, images: torch.Tensor, precision: str, threads: int) -> Run:
    import openvino as ov

    core = ov.Core()
    hint = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}[precision]
    compiled = core.compile_model(
        core.read_model(str(path)),
        "CPU",
        {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1},
    )
    request = compiled.create_infer_request()
    array = images.cpu().numpy()

    def run() -> np.ndarray:
        request.infer({0: array})
        return request.get_output_tensor(0).data

    return run


@dataclass(frozen=True)
class Runtime:
    """One way to run an encoder: precisions it supports here, tolerance per precision, and the
    package (and pip extra) it needs."""

    name: str
    #: a torch runtime runs the module itself: ``run_module(module, images, precision, threads)``
    run_module: Callable[[nn.Module, torch.Tensor, str, int], Run] | None
    tolerance: dict[str, float]
    package: str = "torch"
    extra: str | None = None
    #: an exporting runtime loads an ONNX file (:func:`write_onnx`; cached per spec, resolution and
    #: versions) into a zero-argument run: ``load(path, images, precision, threads)``
    load: Callable[[Path, torch.Tensor, str, int], Run] | None = None
    #: takes the thread count in its session (torch runtimes use the protocol's fixed_threads)
    own_threads: bool = False

    @property
    def exports(self) -> bool:
        return self.load is not None

    def prepare(
        self, module: nn.Module, images: torch.Tensor, precision: str, threads: int, export: Path | None
    ) -> Run:
        """``module`` on ``images`` as a zero-argument run: an exporting runtime exports it to ONNX
        first (to ``export``, cached there; else to a temporary file removed once loaded)."""
        if self.load is None:
            return self.run_module(module, images, precision, threads)
        with _onnx_file(module, images, export) as path:
            return self.load(path, images, precision, threads)

    def version(self) -> str:
        return str(importlib.import_module(self.package).__version__)

    def check(self, precision: str) -> None:
        """Refuse a precision this runtime or CPU cannot run, or a runtime that is not installed."""
        if importlib.util.find_spec(self.package) is None:
            raise SpecError(
                "device.runtime", f"{self.name} needs the {self.package} package: pip install -e '.[{self.extra}]'"
            )
        if precision not in PRECISIONS:
            raise SpecError("device.precision", f"unknown precision {precision!r}; one of {', '.join(PRECISIONS)}")
        if precision not in self.tolerance:
            raise SpecError(
                "device.precision",
                f"{self.name} runs {', '.join(self.tolerance)} here, not {precision}",
            )
        if precision == "bf16" and not _has_bf16():
            raise SpecError("device.precision", "bf16 needs a CPU with avx512_bf16 or AMX; this one has neither")
        if precision == "fp16" and not _has_fp16():
            raise SpecError("device.precision", "fp16 needs a CPU with avx512_fp16 or AMX-FP16; this one has neither")


#: one row per runtime: adding a runtime is one entry here
RUNTIME_TABLE: dict[str, Runtime] = {
    r.name: r
    for r in (
        Runtime("eager", _torch_run, {"fp32": 0.0, "bf16": 5e-2, "fp16": 1e-2}),
        Runtime("channels_last", _channels_last, {"fp32": 1e-4, "bf16": 5e-2}),
        Runtime("compile", _compiled, {"fp32": 1e-3, "bf16": 5e-2}),
        Runtime(
            "onnxruntime", None, {"fp32": 1e-4}, "onnxruntime", "runtimes", load=_load_onnxruntime, own_threads=True
        ),
        Runtime(
            "openvino",
            None,
            {"fp32": 1e-4, "bf16": 5e-2, "fp16": 1e-2},
            "openvino",
            "runtimes",
            load=_load_openvino,
            own_threads=True,
        ),
    )
}
RUNTIMES = tuple(RUNTIME_TABLE)


def check_runtime(runtime: str, precision: str = "fp32") -> Runtime:
    if runtime not in RUNTIME_TABLE:
        raise SpecError("device.runtime", f"unknown runtime {runtime!r}; one of {', '.join(RUNTIMES)}")
    entry = RUNTIME_TABLE[runtime]
    entry.check(precision)
    return entry


def export_path(root: Path, spec_hash: str, resolution: int, batch: int = 1) -> Path:
    """Where the ONNX export of one (spec, resolution, batch) is cached, keyed by the exporter's
    versions: every exporting runtime reads the same file (shapes are static: batch is part of it)."""
    import torch

    shape = f"{resolution}" if batch == 1 else f"{resolution}|batch{batch}"
    digest = hashlib.sha256(f"{spec_hash}|{shape}|{torch.__version__}|{OPSET}".encode()).hexdigest()[:20]
    return root / "exports" / f"{digest}.onnx"


def relative_error(output: Any, reference: torch.Tensor) -> float:
    import numpy as np
    import torch

    output = torch.as_tensor(np.asarray(output)) if not isinstance(output, torch.Tensor) else output
    scale = reference.abs().max().clamp_min(1e-12)
    return float((output.float() - reference.float()).abs().max() / scale)


def prepare_checked(
    module: nn.Module,
    images: torch.Tensor,
    runtime: str,
    precision: str = "fp32",
    threads: int = 1,
    export: Path | None = None,
    reference: torch.Tensor | None = None,
) -> tuple[Run, float]:
    """A zero-argument callable running ``module`` on ``images`` in ``runtime`` at ``precision``,
    after checking its output against eager fp32 (``reference``, when the caller has it: the
    latency calibration ran the forward pass already).

    Returns the callable and the measured relative error; raises :class:`RuntimeMismatch` naming
    the runtime, the error and the tolerance when it is off. Either way ``run`` has run once
    (a warm-up the timing protocol counts): eager fp32 is the reference itself, so it is not run twice.
    """
    import torch

    entry = check_runtime(runtime, precision)
    if runtime == "eager" and precision == "fp32":
        with torch.inference_mode():
            module(images)  # the warm-up: eager fp32 is the reference itself
        return (lambda: module(images)), 0.0
    if reference is None:
        with torch.inference_mode():
            reference = module(images)
    run = entry.prepare(module, images, precision, threads, export)
    return run, check_output(run, reference, runtime, precision)


def check_output(run: Run, reference: torch.Tensor, runtime: str, precision: str = "fp32") -> float:
    """Run ``run`` once and compare its output with eager fp32's ``reference``: the relative
    error, or :class:`RuntimeMismatch` naming the runtime, the error and the tolerance."""
    import torch

    with torch.inference_mode():
        error = relative_error(run(), reference)
    tolerance = check_runtime(runtime, precision).tolerance[precision]
    if error > tolerance:
        raise RuntimeMismatch(
            f"runtime: {runtime} {precision} output differs from eager fp32 by {error:.2e} (tolerance {tolerance:.0e})"
        )
    return error
