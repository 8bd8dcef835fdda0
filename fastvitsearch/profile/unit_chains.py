"""ONNX graphs of unit chains for an exporting runtime, each unit exported once.

Why: the latency calibration times a unit as its marginal cost in a chain (four copies minus two,
or the unit and its successor minus the successor: :mod:`~fastvitsearch.profile.latency_predictor`),
and an exporting runtime (ONNX Runtime, OpenVINO) timed each chain from its own TorchScript export:
six traced copies for a unit that keeps its shape. The export was 166 s of a 375-s OpenVINO
bf16 calibration on the AMX Xeon (cProfile, 2026-12-07: tracing, ONNX shape inference, graph
passes). Here a unit is exported once and a chain is composed from copies of its graph, the copies
sharing its weights as the chained module does in PyTorch: the composed graphs have the exported
chains' operators (but for Identity nodes) and weights (checked on every chain of
cal_w64_a3_m4@512), and the OpenVINO bf16 calibration took 228 s instead of 317 s, the two
interleaved per encoder in one run (benchmarks/results/latency_predictor/attempts.md, amx-10).
A hybrid's whole encoder is a chain too: its units in order, then the tokens read-out.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from fastvitsearch.profile.runtimes import write_onnx

if TYPE_CHECKING:  # onnx comes with the runtimes extra: only an exporting runtime composes chains
    import onnx


class OneInput(torch.nn.Module):
    """A unit seen as ``forward(x)``: exporters turn the optional arguments of a top-level forward
    (timm's ``Block(x, attn_mask=None)``) into graph inputs and break; a unit only ever takes ``x``."""

    def __init__(self, unit: torch.nn.Module) -> None:
        super().__init__()
        self.unit = unit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unit(x)


class UnitChains:
    """Chains of one encoder's units as ONNX files in a temporary folder (removed by :meth:`close`).

    A unit is exported once per input shape it is handed: in a chain a ViT block may follow the
    patch embedding directly, on the tokens without the class token."""

    def __init__(
        self,
        modules: Sequence[torch.nn.Module],
        inputs: dict[int, torch.Tensor],
        outputs: dict[int, torch.Tensor] | None = None,
    ) -> None:
        self.modules = modules
        #: each unit's input in the forward pass (a chain starts from its first unit's) and, where
        #: the caller kept them, its output there (not computed again: a composed whole encoder
        #: would otherwise cost one more eager forward pass)
        self.inputs = inputs
        self.outputs = outputs or {}
        self._folder = tempfile.TemporaryDirectory(prefix="fastvitsearch-chains-")
        #: (unit index, input shape) -> its name, its graph and its eager output on that input
        self._units: dict[tuple[int, tuple[int, ...]], tuple[str, onnx.ModelProto, torch.Tensor]] = {}

    def unit(self, i: int, x: torch.Tensor) -> tuple[str, onnx.ModelProto, torch.Tensor]:
        """Unit ``i`` exported on ``x`` (once per input shape): its name, graph and output there."""
        import onnx
        from onnx.external_data_helper import convert_model_to_external_data

        key = (i, tuple(x.shape))
        if key not in self._units:
            name = f"unit{i}_{'x'.join(map(str, x.shape))}"
            path = write_onnx(OneInput(self.modules[i]), x, Path(self._folder.name) / f"{name}.onnx")
            # the weights go to a file of their own, written once: every chain's graph refers to it
            # (copying them into each chain was 36 s of a 277-s OpenVINO bf16 calibration: cProfile,
            # AMX Xeon, 2026-12-07; attempts.md amx-9)
            model = onnx.load(str(path))
            convert_model_to_external_data(model, location=f"{name}.weights", size_threshold=0)
            onnx.save(model, str(path))
            if i in self.outputs and x is self.inputs.get(i):
                out = self.outputs[i]
            else:
                with torch.no_grad():  # not inference_mode: the output may be the next export's input
                    out = self.modules[i](x)
            self._units[key] = name, onnx.load(str(path), load_external_data=False), out
        return self._units[key]

    def chain(self, indices: Sequence[int]) -> Path:
        """The units ``indices`` in order as one graph on the first one's forward-pass input, saved
        to a file."""
        import onnx

        x, graphs = self.inputs[indices[0]], []
        for i in indices:
            name, graph, x = self.unit(i, x)
            graphs.append((name, graph))
        path = Path(self._folder.name) / f"chain_{'_'.join(map(str, indices))}.onnx"
        onnx.save(compose_chain(graphs), str(path))
        return path

    def close(self) -> None:
        self._folder.cleanup()


def compose_chain(graphs: Sequence[tuple[str, onnx.ModelProto]]) -> onnx.ModelProto:
    """One graph running ``graphs`` in order, each one's output the next one's input.

    Each graph comes with a name: copies of one name share its weights (one initializer each), as the
    same module chained in PyTorch does. The weights stay where they are (a unit's graph refers to
    its weights file): a chain of four large units (e.g. attention at width 2048, 200 MB of fp32
    weights) is a small graph. Edges and nodes are prefixed per copy. Written here, not with
    ``onnx.compose.merge_models``: that copies every initializer and runs the checker on each merge
    (8 s of 30 for cal_w64_a3_m4@512 in OpenVINO bf16: cProfile, AMX Xeon, 2026-12-07)."""
    import onnx
    from onnx import helper

    nodes: list[onnx.NodeProto] = []
    initializers: dict[str, onnx.TensorProto] = {}
    handed = "images"  # the edge the next copy reads
    for k, (unit, model) in enumerate(graphs):
        graph = model.graph
        # this copy's edges: its input is the previous copy's output, its weights are the unit's
        # (shared by every copy of it), everything else is prefixed per copy; "" is an omitted input
        renamed = {"": "", graph.input[0].name: handed}
        for tensor in graph.initializer:
            renamed[tensor.name] = f"{unit}/{tensor.name}"
            if renamed[tensor.name] not in initializers:
                shared = onnx.TensorProto()
                shared.CopyFrom(tensor)
                shared.name = renamed[tensor.name]
                initializers[shared.name] = shared
        for node in graph.node:
            if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
                # a subgraph reads outer edges by name, which the prefixes would break
                raise ValueError(
                    f"unit graph {unit!r} has control flow ({node.op_type}): its chains cannot be composed"
                )
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            copy.name = f"c{k}_{node.name}"
            copy.input[:] = [renamed.get(name, f"c{k}_{name}") for name in node.input]
            copy.output[:] = [renamed.get(name, f"c{k}_{name}") for name in node.output]
            nodes.append(copy)
        handed = renamed.get(graph.output[0].name, f"c{k}_{graph.output[0].name}")
    first, last = graphs[0][1].graph, graphs[-1][1].graph
    output = onnx.ValueInfoProto()
    output.CopyFrom(last.output[0])
    output.name = handed
    merged = helper.make_graph(nodes, "chain", [first.input[0]], [output], list(initializers.values()))
    model = helper.make_model(merged, opset_imports=graphs[0][1].opset_import)
    model.ir_version = graphs[0][1].ir_version
    return model
