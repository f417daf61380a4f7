"""``pads-stream export``: the sampler step's network half as ONNX graphs, a manifest, and TensorRT engines.

What is exported, per task (:mod:`pads_stream.runtime.stepgraph`), is stage 1 of the sampler step —
ε forward, x̂₀, the task's residual and its gradient with respect to x_t through the network —
with the timestep and √ᾱ as inputs; the numpy solver update loops around it, so one graph serves
every step count, start level and solver, on every backend.

Route (measured on this project's CPU; see ``docs/engines.md``): ``make_fx`` traces
:func:`pads_stream.prior.guidance.guided_denoise`, autograd included, into core ATen ops with
LayerNorm decomposed (TensorRT parses only LayerNorm's first output); the weights enter the
trace as inputs and come back as initializers; the dynamo exporter writes ONNX with a dynamic
batch.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
from pathlib import Path

import onnx
import torch
from torch._decomp import core_aten_decompositions, get_decompositions
from torch.fx.experimental.proxy_tensor import make_fx

from ..common.files import default_model_path, file_hash, shipped, user_engines
from ..common.version import __version__
from ..prior import operators
from ..prior.checkpoint import build_denoiser, load_checkpoint
from ..prior.guidance import guided_denoise
from .stepgraph import MANIFEST_FORMAT, OUTPUTS, TASKS

OPSET = 18
TRACE_BATCH = 5  # shares no size with the joint (17), 2D (2) or 3D (3) dimensions
TRT_TABLE = shipped("configs", "onnx_operators_trt10.tsv")


def example_inputs(task: str, batch: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Plausible float32 inputs of ``task``'s graph, in graph order (person 4-6 m away)."""
    g = torch.Generator().manual_seed(seed)
    values = {
        "x_t": torch.randn(batch, 17, 3, generator=g),
        "rays": 0.1 * torch.randn(batch, 17, 2, generator=g),
        "root": torch.stack([torch.rand(batch, generator=g) - 0.5, torch.rand(batch, generator=g) - 0.5,
                             4 + 2 * torch.rand(batch, generator=g)], -1),
        "y": 0.3 * torch.randn(batch, 17, 3, generator=g),
        "weights": torch.rand(batch, 17, generator=g),
        **_rig_example(batch, g),
        "t": torch.tensor([400.0]),
        "alpha": torch.tensor([0.62]),
    }  # fmt: skip
    return tuple(values[name] for name in TASKS[task].inputs)


def _rig_example(batch: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Inputs of the ``rig`` graph for random joint forms (3 views' worth of positive semi-definite S_j)."""
    a = 0.6 * torch.randn(batch, 17, 3, 3, generator=g)
    sqrt_s = a @ a.transpose(-1, -2)
    s = sqrt_s @ sqrt_s
    centre = 0.3 * torch.randn(batch, 17, 3, generator=g)
    solve = torch.linalg.inv(s.sum(dim=1))
    offset = (solve @ (s @ centre[..., None]).sum(dim=1))[..., 0]
    return {"sqrt_s": sqrt_s, "centre": centre, "slack": 0.01 * torch.rand(batch, 17, generator=g),
            "root_solve": solve, "root_offset": offset}  # fmt: skip


class _TracedStep(torch.nn.Module):
    """The traced graph with the network's weights held as buffers (ONNX initializers)."""

    def __init__(self, graph: torch.fx.GraphModule, params: list[torch.Tensor]):
        super().__init__()
        self.graph = graph
        self.n_params = len(params)
        for k, p in enumerate(params):
            self.register_buffer(f"w{k}", p)

    def forward(self, *inputs):  # inputs in TASKS[task] order
        params = [getattr(self, f"w{k}") for k in range(self.n_params)]
        return self.graph(*params, *inputs)


def trace_task(net: torch.nn.Module, scale: float, task: str, native_layer_norm: bool = False) -> torch.nn.Module:
    """:func:`guided_denoise` of ``task`` with ``net`` as a traced module (see module docstring);
    ``native_layer_norm`` keeps LayerNorm's forward whole (ONNX LayerNormalization: faster on ONNX
    Runtime's CPU, not parsable by TensorRT, which reads only its first output)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {tuple(TASKS)}, got {task!r}")
    names = [n for n, _ in net.named_parameters()]
    params = [p.detach() for p in net.parameters()]

    class Functional(torch.nn.Module):
        def __init__(self, weights):
            super().__init__()
            self.weights = dict(zip(names, weights, strict=True))

        def forward(self, x, t):
            return torch.func.functional_call(net, self.weights, (x, t))

    def step(*args):
        weights, inputs = args[: len(names)], dict(zip(TASKS[task].inputs, args[len(names) :], strict=True))
        op = getattr(operators, TASKS[task].operator)(**{name: inputs[name] for name, _ in TASKS[task].bound})
        return guided_denoise(Functional(weights), inputs["x_t"], inputs["t"], inputs["alpha"], op, scale)

    decomposed = [torch.ops.aten.native_layer_norm_backward]
    if not native_layer_norm:
        decomposed.append(torch.ops.aten.native_layer_norm)
    table = {**core_aten_decompositions(), **get_decompositions(decomposed)}
    example = example_inputs(task, TRACE_BATCH)
    graph = make_fx(step, decomposition_table=table, tracing_mode="symbolic")(*params, *example)
    return _TracedStep(graph, params)


def export_onnx(net: torch.nn.Module, scale: float, task: str, path: Path, opset: int = OPSET,
                max_batch: int = 4096, native_layer_norm: bool = False) -> Path:  # fmt: skip
    """Write ``task``'s graph to ``path`` as ONNX with a dynamic batch (1 … ``max_batch``)."""
    traced = trace_task(net, scale, task, native_layer_norm)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    dynamic = tuple({0: batch} if len(s) > 1 else None for s in TASKS[task].shapes(0).values())
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        traced, example_inputs(task, TRACE_BATCH), str(path), dynamo=True, dynamic_shapes=(dynamic,),
        opset_version=opset, input_names=list(TASKS[task].inputs), output_names=list(OUTPUTS), external_data=False,
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


def build_manifest(
    ckpt_path: Path, ckpt: dict, graphs: dict[str, str], opset: int, precision: str, max_batch: int
) -> dict:
    """The manifest of exported graphs: what a runtime needs besides them (engines are appended
    by the builder)."""
    import onnxruntime

    return {
        "format": MANIFEST_FORMAT,
        "model": {"file": ckpt_path.name, "hash": file_hash(ckpt_path), "scale": float(ckpt["scale"]),
                  "diffusion": ckpt["diffusion"], "prior": ckpt["prior"]},
        "sampler": ckpt.get("sampler", {}),
        "graphs": graphs,
        "opset": opset,
        "inputs": {task: TASKS[task].shapes("batch") for task in graphs},
        "outputs": {name: ["batch", 17, 3] for name in OUTPUTS},
        "max_batch": max_batch,
        "precision": precision,
        "exporter": {"pads_stream": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__, "python": platform.python_version()},
        "engines": [],
    }  # fmt: skip


def export(ckpt_path: Path, out: Path, opset: int = OPSET, precision: str = "fp16", max_batch: int = 256,
           opt_batch: int = 16) -> dict:  # fmt: skip
    """Export every task's graph of the checkpoint at ``ckpt_path`` into ``out``, each twice: with
    LayerNorm decomposed (TensorRT and every provider) and whole (``cpu_graphs``: ONNX Runtime on a
    CPU, 0.92-1.0 of the time, the same outputs); returns the manifest."""
    ckpt = load_checkpoint(ckpt_path)
    net, _, scale = build_denoiser(ckpt)
    graphs, cpu_graphs = {}, {}
    for task in TASKS:
        path = export_onnx(net, scale, task, out / f"step_{task}.onnx", opset)
        problems = trt_problems(onnx.load(str(path)))
        if problems:
            raise SystemExit(f"{path} is outside TensorRT 10's ONNX support:\n" + "\n".join(problems))
        graphs[task] = path.name
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB; every operator within TensorRT 10's table)")
        cpu = export_onnx(net, scale, task, out / f"step_{task}.cpu.onnx", opset, native_layer_norm=True)
        cpu_graphs[task] = cpu.name
        print(f"wrote {cpu} (native LayerNormalization: ONNX Runtime on a CPU)")
    manifest = build_manifest(ckpt_path, ckpt, graphs, opset, precision, max_batch)
    manifest["cpu_graphs"] = cpu_graphs
    from .tensorrt import build_engines

    manifest["engines"], reason = build_engines(out, graphs, precision, max_batch, opt_batch)
    if reason:
        manifest["why_no_engine"] = reason
        print(f"no TensorRT engine built: {reason}")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {out / 'manifest.json'}")
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pads-stream export", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("--model", help="checkpoint (default: the shipped model)")
    parser.add_argument(
        "--out",
        help="output folder (default: <user engines>/<model name>/: $PADS_STREAM_ENGINES, a checkout's engines/, "
        "else ~/.cache/pads-stream/engines; never inside the installed package)",
    )
    parser.add_argument("--precision", choices=("fp32", "fp16"), default="fp16", help="TensorRT engine precision")
    parser.add_argument("--max-batch", type=int, default=256, help="largest batch of the engine profile")
    parser.add_argument("--opt-batch", type=int, default=16, help="batch the engine is tuned for")
    parser.add_argument("--opset", type=int, default=OPSET, choices=(17, 18, 19, 20))
    args = parser.parse_args(argv)
    ckpt_path = Path(args.model) if args.model else default_model_path()
    out = Path(args.out) if args.out else user_engines() / ckpt_path.stem
    export(ckpt_path, out, args.opset, args.precision, args.max_batch, args.opt_batch)
