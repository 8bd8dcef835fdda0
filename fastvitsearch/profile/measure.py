"""Measured latencies on a local device: encoder, projector, LLM prefill (cached on disk).

Every function returns a :class:`~fastvitsearch.record.Sourced` of kind ``measured`` labelled with
the device name, whose ``detail`` holds the timing statistics and the environment (threads,
versions, runtime, dtype, batch, other processes' CPU use). The cache key holds everything that
changes a timing, the timing protocol included.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from fastvitsearch.build import BUILDERS, VisualEncoder, build_encoder
from fastvitsearch.cache import MeasurementCache
from fastvitsearch.llm import LLMSpec, build_llm, prefill
from fastvitsearch.profile.runtimes import check_runtime, export_path, prepare_checked
from fastvitsearch.profile.timing import Timing, TimingProtocol, device_fingerprint, measure
from fastvitsearch.record import Sourced
from fastvitsearch.spec import EncoderSpec
from fastvitsearch.torch_threads import fixed_threads

#: bumped when the protocol's semantics change (2: the numerics check's run counts as a warm-up run;
#: 3: freed memory retained by the allocator, see timing.retain_freed_memory; two agreeing runs
#: may settle a slow measurement, see TimingProtocol.agree_within; 4: a fast one stops once its
#: median is known within TimingProtocol.precision)
PROTOCOL_VERSION = 4
#: prefill runs take seconds each on a CPU: fewer repeats, same statistics
DEFAULT_PROTOCOL = TimingProtocol()
PREFILL_PROTOCOL = TimingProtocol(warmup_runs=1, warmup_seconds=0.0, min_runs=3, max_runs=10, budget_seconds=2.0)


def prefill_dtype(device: torch.device) -> torch.dtype:
    """bf16 where the hardware has bf16 matmuls (as the paper ran FP16 on the GPU), else fp32."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    with contextlib.suppress(OSError):
        flags = Path("/proc/cpuinfo").read_text()
        if "avx512_bf16" in flags or "amx_bf16" in flags:
            return torch.bfloat16
    return torch.float32


def _sourced(timing: Timing, cached: bool = False) -> Sourced:
    detail = {**timing.to_dict(), "cached": cached}
    return Sourced(timing.median_ms, "measured", timing.environment["device_name"], None, detail)


def _cached_or_measure(
    cache: MeasurementCache | None, key: dict, protocol: TimingProtocol, force: bool, run_measurement
) -> Sourced:
    key = {**key, "protocol": dataclasses.asdict(protocol), "protocol_version": PROTOCOL_VERSION}
    if cache is not None and not force and (hit := cache.get(key)) is not None:
        return _sourced(Timing(**hit), cached=True)
    timing = run_measurement()
    if cache is not None:
        cache.put(key, timing.to_dict())
    return _sourced(timing)


def _timed_encoder(spec: EncoderSpec, resolution: int, device: torch.device, runtime: str) -> VisualEncoder:
    """The reparameterized, tiled-weight module a measurement times. A kind whose module does not
    depend on the resolution (a hybrid timed at 256-1024 px is one module) is built once for all
    its resolutions: see :func:`_shared_timed_encoder`. A ViT's position table is sized per resolution."""
    if BUILDERS[spec.kind].resolution_free:
        return _shared_timed_encoder(spec, device, runtime)
    return _build_timed(spec, resolution, device)


@functools.lru_cache(maxsize=1)
def _shared_timed_encoder(spec: EncoderSpec, device: torch.device, runtime: str) -> VisualEncoder:
    """One build per (spec, runtime), so a sweep's consecutive resolutions of one hybrid pay one
    build (~1 s for FastViTHD here) instead of one each. Only the last module is kept (a large
    encoder is ~0.5 GB); ``runtime`` is in the key because a runtime may convert the module in
    place (``channels_last``), which must not reach another runtime's timing."""
    return _build_timed(spec, spec.output_stride, device)  # any resolution the stride accepts: same module


def _build_timed(spec: EncoderSpec, resolution: int, device: torch.device) -> VisualEncoder:
    torch.manual_seed(0)
    # fixed-size (a ViT's position table at this resolution): the module every runtime exports
    encoder = build_encoder(spec, resolution, dynamic_size=False, device=device, weights="tiled")
    return encoder.reparameterize().eval()


def measure_encoder(
    spec: EncoderSpec,
    resolution: int,
    *,
    device: torch.device,
    runtime: str = "eager",
    precision: str = "fp32",
    threads: int = 1,
    batch: int = 1,
    protocol: TimingProtocol = DEFAULT_PROTOCOL,
    cache: MeasurementCache | None = None,
    force: bool = False,
) -> Sourced:
    """Median latency of ``features(images)`` for a reparameterized, random-weight encoder, run
    in ``runtime`` at ``precision`` (checked against eager fp32 first)."""
    entry = check_runtime(runtime, precision)
    key = {
        "kind": "encoder",
        "spec_hash": spec.content_hash,
        "resolution": resolution,
        "device": device_fingerprint(device),
        "runtime": runtime,
        "runtime_version": entry.version(),
        "precision": precision,
        "threads": threads,
        "batch": batch,
    }

    def run_measurement() -> Timing:
        encoder = _timed_encoder(spec, resolution, device, runtime)
        torch.manual_seed(0)
        images = torch.rand(batch, 3, resolution, resolution, device=device)
        export = export_path(cache.directory, spec.content_hash, resolution, batch) if entry.exports and cache else None
        with fixed_threads(threads):  # the check's run is the first warm-up: same threads as the timing
            run, error = prepare_checked(encoder, images, runtime, precision, threads, export)
        context = {
            "runtime": runtime,
            "runtime_version": entry.version(),
            "precision": precision,
            "dtype": "float32",
            "batch": batch,
            "numerics_vs_eager_fp32": error,
            "reparameterized": encoder.reparameterized,
        }
        # the numerics check ran the model once: it counts as a warm-up run
        return measure(run, device=device, threads=threads, protocol=protocol, context=context, warmed_up=1)

    return _cached_or_measure(cache, key, protocol, force, run_measurement)


def projector(feature_width: int, llm: LLMSpec) -> nn.Module:
    """LLaVA's ``mlp2x_gelu`` projector: Linear(feature -> hidden), GELU, Linear(hidden -> hidden)."""
    return nn.Sequential(nn.Linear(feature_width, llm.hidden), nn.GELU(), nn.Linear(llm.hidden, llm.hidden))


def measure_projector(
    feature_width: int,
    tokens: int,
    llm: LLMSpec,
    *,
    device: torch.device,
    dtype: torch.dtype | None = None,
    threads: int = 1,
    protocol: TimingProtocol = DEFAULT_PROTOCOL,
    cache: MeasurementCache | None = None,
    force: bool = False,
) -> Sourced:
    """Median latency of the projector over ``tokens`` visual tokens, in the LLM's dtype (default:
    the prefill's, :func:`prefill_dtype`), as LLaVA runs it: it is a module of the language model."""
    dtype = dtype or prefill_dtype(device)
    key = {
        "kind": "projector",
        "feature_width": feature_width,
        "tokens": tokens,
        "hidden": llm.hidden,
        "device": device_fingerprint(device),
        "threads": threads,
        "dtype": str(dtype).removeprefix("torch."),
    }

    def run_measurement() -> Timing:
        torch.manual_seed(0)
        module = projector(feature_width, llm).eval().to(device=device, dtype=dtype)
        features = torch.randn(1, tokens, feature_width, device=device, dtype=dtype)
        context = {"runtime": "eager", "dtype": key["dtype"], "batch": 1}
        return measure(lambda: module(features), device=device, threads=threads, protocol=protocol, context=context)

    return _cached_or_measure(cache, key, protocol, force, run_measurement)


def measure_prefill(
    llm: LLMSpec,
    tokens: int,
    *,
    device: torch.device,
    dtype: torch.dtype | None = None,
    threads: int = 1,
    protocol: TimingProtocol = PREFILL_PROTOCOL,
    cache: MeasurementCache | None = None,
    force: bool = False,
    model_factory: Callable[[], nn.Module] | None = None,
) -> Sourced:
    """Median prefill latency over ``tokens`` input embeddings (batch 1, last logits only).

    Pass ``model_factory`` (returning a :func:`build_llm` model) to reuse one random-weight LLM
    for several lengths; it is only called on a cache miss, so a cached prefill builds nothing.
    """
    dtype = dtype or prefill_dtype(device)
    key = {
        "kind": "prefill",
        "llm": llm.to_dict(),
        "tokens": tokens,
        "device": device_fingerprint(device),
        "threads": threads,
        "dtype": str(dtype).removeprefix("torch."),
    }

    def run_measurement() -> Timing:
        lm = model_factory() if model_factory is not None else build_llm(llm, device=device, dtype=dtype)
        embeddings = torch.randn(1, tokens, llm.hidden, device=device, dtype=dtype)
        context = {
            "runtime": "eager",
            "dtype": key["dtype"],
            "batch": 1,
            "tokens": tokens,
            "prefill_flops": llm.prefill_flops(tokens),
        }
        return measure(
            lambda: prefill(lm, embeddings), device=device, threads=threads, protocol=protocol, context=context
        )

    return _cached_or_measure(cache, key, protocol, force, run_measurement)
