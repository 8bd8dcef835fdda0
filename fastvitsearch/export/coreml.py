"""Export any encoder we can build to a Core ML package, and check it without a Mac.

Capture: ``torch.export`` (not ``torch.jit.trace``). coremltools 9.0 with numpy 2.4 fails to
convert traced attention models (``only 0-dimensional arrays can be converted to Python
scalars``, coremltools#2633, fixed upstream but unreleased); the ``torch.export`` path converts
on numpy 2.4 and captures FastViTHD at 1024 px in seconds. The encoder is reparameterized first,
so the package holds the inference form the paper timed.

Linux can convert and inspect packages but not run them: prediction needs macOS
(``time_coreml.py`` in this folder is the script to run there).
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from fastvitsearch.build import build_encoder
from fastvitsearch.profile.count import count_encoder
from fastvitsearch.profile.timing import versions
from fastvitsearch.spec import EncoderSpec, SpecError

PRECISIONS = ("fp16", "fp32")
COMPUTE_UNITS = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")
TARGETS = ("iOS16", "iOS17", "iOS18", "macOS13", "macOS14", "macOS15")
INPUT_NAME, OUTPUT_NAME = "images", "image_features"
#: MIL ops that commonly run off the Neural Engine (on GPU/CPU) — a heuristic from Apple's
#: Core ML docs and coremltools issues; only MLComputePlan on macOS knows the real placement.
ANE_UNFRIENDLY = {
    "gather",
    "gather_nd",
    "gather_along_axis",
    "scatter",
    "scatter_nd",
    "scatter_along_axis",
    "einsum",
    "topk",
    "argsort",
    "non_zero",
    "while_loop",
    "cond",
    "random_uniform",
    "random_normal",
    "random_bernoulli",
    "erf",
    "non_maximum_suppression",
    "cumsum",
}


@dataclass(frozen=True)
class ExportOptions:
    precision: str = "fp16"
    compute_units: str = "ALL"
    minimum_deployment_target: str = "iOS17"

    def __post_init__(self) -> None:
        for name, allowed in (
            ("precision", PRECISIONS),
            ("compute_units", COMPUTE_UNITS),
            ("minimum_deployment_target", TARGETS),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise SpecError(name, f"unsupported value {value!r}; one of {', '.join(allowed)}")


@dataclass
class ExportResult:
    package: Path
    sidecar: Path
    info: dict[str, Any] = field(default_factory=dict)


def package_name(spec: EncoderSpec, resolution: int) -> str:
    return f"{spec.name}_{resolution}"


def export_coreml(
    spec: EncoderSpec, resolution: int, out_dir: str | Path, options: ExportOptions | None = None
) -> ExportResult:
    """Write ``<name>_<res>.mlpackage`` (ML Program) and its JSON sidecar into ``out_dir``."""
    import coremltools as ct

    options = options or ExportOptions()
    tokens = spec.tokens(resolution)  # validates the resolution against the stride
    torch.manual_seed(0)
    # the module the sweep times (profile/measure.py): random weights tiled from one block at the
    # models' own init scales, which builds ViT-L/14 in a fraction of timm's init (why timing may use
    # them, with its measurement: fastvitsearch/random_weights.py)
    encoder = build_encoder(spec, resolution, dynamic_size=False, weights="tiled").reparameterize().eval()
    out_dir = Path(out_dir)
    try:  # before the minute-long conversion, not after it
        out_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out_dir).close()
    except OSError as err:
        raise SpecError("out_dir", f"cannot write to {out_dir} ({err.strerror})") from None
    example = torch.rand(1, 3, resolution, resolution)
    with torch.no_grad():
        program = torch.export.export(encoder, (example,)).run_decompositions({})
    precision = ct.precision.FLOAT16 if options.precision == "fp16" else ct.precision.FLOAT32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # coremltools warns about untested torch versions
        model = ct.convert(
            program,
            inputs=[ct.TensorType(name=INPUT_NAME, shape=(1, 3, resolution, resolution))],
            outputs=[ct.TensorType(name=OUTPUT_NAME)],
            convert_to="mlprogram",
            compute_precision=precision,
            compute_units=getattr(ct.ComputeUnit, options.compute_units),
            minimum_deployment_target=getattr(ct.target, options.minimum_deployment_target),
        )
    name = package_name(spec, resolution)
    package = out_dir / f"{name}.mlpackage"
    model.save(str(package))
    counts = count_encoder(spec, resolution)
    info = {
        "package": package.name,
        "encoder": spec.name,
        "spec": spec.to_dict(),
        "spec_hash": spec.content_hash,
        "resolution": resolution,
        "visual_tokens": tokens,
        "feature_width": spec.feature_width,
        "macs": counts.macs,
        "macs_source": counts.source,
        "export": asdict(options)
        | {"capture": "torch.export", "reparameterized": encoder.reparameterized, "weights": "random, tiled"},
        "versions": versions() | {"coremltools": ct.__version__},
        **inspect_package(package),
    }
    sidecar = out_dir / f"{name}.json"
    sidecar.write_text(json.dumps(info, indent=1))
    return ExportResult(package, sidecar, info)


def _shape(feature) -> list[int]:
    return list(feature.type.multiArrayType.shape)


def inspect_package(path: str | Path) -> dict[str, Any]:
    """Reload a package on any OS (no compilation), list its I/O, MIL ops and ANE warnings."""
    import coremltools as ct

    model = ct.models.MLModel(str(path), skip_model_load=True)
    spec = model.get_spec()
    ops: Counter[str] = Counter()
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            for op in block.operations:
                ops[op.type] += 1
    flagged = sorted(op for op in ops if op in ANE_UNFRIENDLY)
    return {
        "inputs": {f.name: _shape(f) for f in spec.description.input},
        "outputs": {f.name: _shape(f) for f in spec.description.output},
        "mil_ops": dict(sorted(ops.items())),
        "ane_warnings": [f"{op} ({ops[op]}x) often runs off the Neural Engine" for op in flagged],
        "prediction": "needs macOS: run fastvitsearch/export/time_coreml.py on a Mac",
    }
