"""``pads-stream export``: the guided estimation step as ONNX, a manifest, and TensorRT engines.

What is exported is one DPS step — ε forward, x̂₀, the projection residual, its gradient with
respect to x_t through the network, the DDIM update — with the step's timestep and
coefficients as inputs. The runtime loops over it, so one graph serves every step count and
start level. Measured on this project's 2-core CPU (see ``docs/engines.md``): looping over the
one-step graph costs the same as a graph with the loop unrolled, exports in seconds instead of
minutes, and does not fix the number of steps.

Route (measured in ``shared/notes/onnx-export.md``): ``make_fx`` traces the step, autograd
included, into core ATen ops with LayerNorm decomposed (TensorRT parses only LayerNorm's first
output); the weights enter the trace as inputs and come back as initializers; the dynamo
exporter writes ONNX with a dynamic batch.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import platform
from pathlib import Path

import onnx
import torch
from torch._decomp import core_aten_decompositions, get_decompositions
from torch.fx.experimental.proxy_tensor import make_fx

from . import __version__
from .api import PoseModel, load_model
from .operators import Projection
from .sampler import GUIDANCE, guided_update

OPSET = 18
INPUTS = ("x_t", "z", "rays", "root", "weights", "t", "coef", "rho")
OUTPUT = "x_next"
TRACE_BATCH = 5  # shares no size with the joint (17), 2D (2) or 3D (3) dimensions
TRT_TABLE = Path(__file__).resolve().parents[1] / "configs" / "onnx_operators_trt10.tsv"
MANIFEST_FORMAT = "pads-stream-engine/1"


def input_shapes(batch: int | str) -> dict[str, list[int | str]]:
    """Shapes of the step graph's inputs (``batch`` a size or the dynamic dimension's name)."""
    b = batch
    return {"x_t": [b, 17, 3], "z": [b, 17, 3], "rays": [b, 17, 2], "root": [b, 3], "weights": [b, 17],
            "t": [1], "coef": [4], "rho": [1]}  # fmt: skip


def example_inputs(batch: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Plausible float32 inputs of the step graph (normalised poses, person 4-6 m away)."""
    g = torch.Generator().manual_seed(seed)
    root = torch.stack([torch.rand(batch, generator=g) - 0.5, torch.rand(batch, generator=g) - 0.5,
                        4 + 2 * torch.rand(batch, generator=g)], -1)  # fmt: skip
    return (
        torch.randn(batch, 17, 3, generator=g),
        torch.randn(batch, 17, 3, generator=g),
        0.1 * torch.randn(batch, 17, 2, generator=g),
        root,
        torch.rand(batch, 17, generator=g),
        torch.tensor([400.0]),
        torch.tensor([0.62, 0.72, 0.69, 0.0]),
        torch.tensor([1.0]),
    )


class _TracedStep(torch.nn.Module):
    """The traced step with the network's weights held as buffers (ONNX initializers)."""

    def __init__(self, graph: torch.fx.GraphModule, params: list[torch.Tensor]):
        super().__init__()
        self.graph = graph
        self.n_params = len(params)
        for k, p in enumerate(params):
            self.register_buffer(f"w{k}", p)

    def forward(self, x_t, z, rays, root, weights, t, coef, rho):  # noqa: D102 (shapes: input_shapes)
        params = [getattr(self, f"w{k}") for k in range(self.n_params)]
        return self.graph(*params, x_t, z, rays, root, weights, t, coef, rho)


def trace_step(model: PoseModel, guidance: str) -> torch.nn.Module:
    """The guided estimation step of ``model`` as a traced module (see module docstring)."""
    if guidance not in GUIDANCE:
        raise ValueError(f"guidance must be one of {GUIDANCE}, got {guidance!r}")
    net, scale = model.net, model.scale
    names = [n for n, _ in net.named_parameters()]
    params = [p.detach() for p in net.parameters()]

    class Functional(torch.nn.Module):
        def __init__(self, weights):
            super().__init__()
            self.weights = dict(zip(names, weights, strict=True))

        def forward(self, x, t):
            return torch.func.functional_call(net, self.weights, (x, t))

    def step(*args):
        weights, (x_t, z, rays, root, w, t, coef, rho) = args[: len(names)], args[len(names) :]
        return guided_update(Functional(weights), x_t, z, t, coef, Projection(rays, root, w), rho, guidance, scale)

    table = {
        **core_aten_decompositions(),
        **get_decompositions([torch.ops.aten.native_layer_norm, torch.ops.aten.native_layer_norm_backward]),
    }
    graph = make_fx(step, decomposition_table=table, tracing_mode="symbolic")(*params, *example_inputs(TRACE_BATCH))
    return _TracedStep(graph, params)


def export_onnx(model: PoseModel, path: Path, guidance: str, opset: int = OPSET, max_batch: int = 4096) -> Path:
    """Write the guided step of ``model`` to ``path`` as ONNX with a dynamic batch (1 … max)."""
    traced = trace_step(model, guidance)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    dynamic = tuple({0: batch} if len(s) > 1 else None for s in input_shapes(0).values())
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        traced, example_inputs(TRACE_BATCH), str(path), dynamo=True, dynamic_shapes=dynamic,
        opset_version=opset, input_names=list(INPUTS), output_names=[OUTPUT], external_data=False,
    )  # fmt: skip
    return path


def load_trt_table(path: Path = TRT_TABLE) -> dict[str, str]:
    """{operator: restriction text} of the operators TensorRT 10's ONNX parser supports."""
    rows = csv.reader((ln for ln in path.read_text().splitlines() if not ln.startswith("#")), delimiter="\t")
    return {r[0]: (r[3] if len(r) > 3 else "") for r in rows if len(r) > 1 and r[1] == "Y"}


def trt_problems(model: onnx.ModelProto, table: dict[str, str] | None = None) -> list[str]:
    """What in an ONNX graph TensorRT 10's parser would refuse: unsupported operators, axes
    that are not initializers or constants, ScatterND with a reduction, non-float/int64/bool
    tensors. Empty when the graph is within the support table."""
    table = load_trt_table() if table is None else table
    constants = {i.name for i in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    problems = []
    for node in model.graph.node:
        if node.op_type not in table:
            problems.append(f"{node.name}: operator {node.op_type} is not supported")
            continue
        if "`axes` must be" in table[node.op_type]:
            axes_input = {"Slice": 3}.get(node.op_type, 1)
            if len(node.input) > axes_input and node.input[axes_input] and node.input[axes_input] not in constants:
                problems.append(f"{node.name}: {node.op_type} axes input is not a constant")
        if node.op_type == "ScatterND" and any(
            a.name == "reduction" and a.s not in (b"", b"none") for a in node.attribute
        ):
            problems.append(f"{node.name}: ScatterND reduction is not supported")
    allowed = {onnx.TensorProto.FLOAT, onnx.TensorProto.INT64, onnx.TensorProto.INT32, onnx.TensorProto.BOOL}
    for value in list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info):
        if value.type.tensor_type.elem_type not in allowed:
            problems.append(
                f"{value.name}: tensor type {onnx.TensorProto.DataType.Name(value.type.tensor_type.elem_type)}"
            )
    return problems


def engine_dir_for(model: PoseModel, root: Path | None = None) -> Path:
    """Where the exported files of ``model`` live: ``engines/<checkpoint name>/``."""
    from .backends import engines_root

    return (root or engines_root()) / model.path.stem


def build_manifest(
    model: PoseModel, graphs: dict[str, str], opset: int, precision: str, max_batch: int, steps: int = 10
) -> dict:
    """The manifest describing exported graphs (engines are appended by the builder)."""
    import onnxruntime

    return {
        "format": MANIFEST_FORMAT,
        "model": {"file": model.path.name, "hash": model.model_hash},
        "graph": {
            "kind": "guided_step",
            "files": graphs,
            "opset": opset,
            "inputs": [{"name": k, "shape": v, "dtype": "float32"} for k, v in input_shapes("batch").items()],
            "outputs": [{"name": OUTPUT, "shape": ["batch", 17, 3], "dtype": "float32"}],
            "max_batch": max_batch,
        },
        "schedule": {
            "diffusion_steps": len(model.abar),
            "sampler": dataclasses.asdict(model.sampler),
            "steps": steps,
            "steps_note": "default only: the runtime loops over the step graph, so any step count runs",
        },
        "precision": precision,
        "exporter": {
            "pads_stream": __version__,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
            "python": platform.python_version(),
        },  # fmt: skip
        "engines": [],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pads-stream export", description=__doc__)
    parser.add_argument("--model", help="checkpoint (default: the shipped model)")
    parser.add_argument("--out", help="output folder (default: engines/<model name>/)")
    parser.add_argument("--steps", type=int, default=10, help="default step count recorded in the manifest")
    parser.add_argument("--precision", choices=("fp32", "fp16"), default="fp16", help="TensorRT engine precision")
    parser.add_argument("--max-batch", type=int, default=256, help="largest batch of the engine profile")
    parser.add_argument("--opt-batch", type=int, default=16, help="batch the engine is tuned for")
    parser.add_argument("--opset", type=int, default=OPSET, choices=(17, 18, 19, 20))
    parser.add_argument("--guidance", default="dps,cheap", help="graphs to export")
    args = parser.parse_args(argv)

    model = load_model(args.model, backend="torch")
    out = Path(args.out) if args.out else engine_dir_for(model)
    graphs = {}
    for guidance in args.guidance.split(","):
        path = export_onnx(model, out / f"step_{guidance}.onnx", guidance, args.opset)
        problems = trt_problems(onnx.load(str(path)))
        if problems:
            raise SystemExit(f"{path} is outside TensorRT 10's ONNX support:\n" + "\n".join(problems))
        graphs[guidance] = path.name
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB; every operator within TensorRT 10's table)")
    manifest = build_manifest(model, graphs, args.opset, args.precision, args.max_batch, args.steps)
    from .tensorrt_engine import build_engines

    manifest["engines"], reason = build_engines(out, graphs, args.precision, args.max_batch, args.opt_batch)
    if reason:
        manifest["why_no_engine"] = reason
        print(f"no TensorRT engine built: {reason}")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {out / 'manifest.json'}")
