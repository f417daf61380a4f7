"""TensorRT engines of the guided step: the builder (ONNX -> plan) and the runtime.

Written against TensorRT 10's Python API (``tensorrt``); it needs an NVIDIA GPU. Where
TensorRT or a GPU is absent, :func:`unavailable_reason` says why and nothing is built or run.
Plans are named by GPU, compute capability, TensorRT version and precision, since a plan only
runs on the GPU model and TensorRT version that built it.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from .stepgraph import OUTPUTS, TASKS


def unavailable_reason() -> str | None:
    """None when TensorRT and a CUDA GPU are usable here, else the reason they are not."""
    try:
        import tensorrt  # noqa: F401
    except ImportError as err:  # the PyPI stubs raise ImportError too when their libraries are absent
        return f"TensorRT is not installed ({err}); pip install tensorrt on a machine with an NVIDIA GPU"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible to torch; TensorRT engines need one"
    return None


def gpu_tag() -> dict[str, str]:
    """The current GPU's name and compute capability, and the TensorRT version."""
    import tensorrt as trt

    major, minor = torch.cuda.get_device_capability()
    return {"gpu": torch.cuda.get_device_name(), "compute_capability": f"{major}.{minor}", "tensorrt": trt.__version__}


def plan_name(task: str, tag: dict[str, str], precision: str) -> str:
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", tag["gpu"]).strip("-").lower()
    return f"step_{task}_{gpu}_sm{tag['compute_capability'].replace('.', '')}_trt{tag['tensorrt']}_{precision}.plan"


def build_plan(
    onnx_path: Path, task: str, plan_path: Path, precision: str, max_batch: int, opt_batch: int, cache: Path
) -> None:
    """Parse ONNX and build a serialised engine with a batch profile and a timing cache.

    FP16 keeps the normalisation arithmetic (reductions, square roots, powers: LayerNorm is
    decomposed into these) in FP32 under OBEY_PRECISION_CONSTRAINTS.
    """
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "\n".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}:\n{errors}")
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    for name, shape in TASKS[task].shapes(1).items():
        if len(shape) > 1:  # batched inputs
            rest = tuple(shape[1:])
            profile.set_shape(name, (1, *rest), (opt_batch, *rest), (max_batch, *rest))
    config.add_optimization_profile(profile)
    timing = config.create_timing_cache(cache.read_bytes() if cache.exists() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        keep = {trt.LayerType.REDUCE, trt.LayerType.NORMALIZATION}
        for k in range(network.num_layers):
            layer = network.get_layer(k)
            sensitive = layer.type in keep
            if layer.type == trt.LayerType.UNARY:
                layer.__class__ = trt.IUnaryLayer
                sensitive = layer.op in (trt.UnaryOperation.SQRT,)
            elif layer.type == trt.LayerType.ELEMENTWISE:
                layer.__class__ = trt.IElementWiseLayer
                sensitive = layer.op == trt.ElementWiseOperation.POW
            if sensitive:
                layer.precision = trt.float32
                for j in range(layer.num_outputs):
                    layer.set_output_type(j, trt.float32)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    plan_path.write_bytes(bytes(plan))
    cache.write_bytes(bytes(config.get_timing_cache().serialize()))


def build_engines(
    out: Path, graphs: dict[str, str], precision: str, max_batch: int, opt_batch: int
) -> tuple[list[dict], str | None]:
    """Build a plan per exported graph; returns (manifest entries, reason none was built)."""
    reason = unavailable_reason()
    if reason:
        return [], reason
    tag = gpu_tag()
    entries = []
    for task, onnx_file in graphs.items():
        plan = out / plan_name(task, tag, precision)
        build_plan(out / onnx_file, task, plan, precision, max_batch, opt_batch, out / "timing.cache")
        entries.append({"task": task, "file": plan.name, "precision": precision,
                        "max_batch": max_batch, "opt_batch": opt_batch, **tag})  # fmt: skip
        print(f"built {plan}")
    return entries, None


class TensorRTStep:
    """Runs one task's plan: binds CUDA tensors by address and enqueues on torch's current stream."""

    def __init__(self, plan: Path, task: str):
        import tensorrt as trt

        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(plan.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not deserialise {plan}")
        self.context = self.engine.create_execution_context()
        self.inputs = TASKS[task].inputs
        self.max_batch = self.engine.get_tensor_profile_shape("x_t", 0)[2][0]

    def __call__(self, feeds: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """feeds: the graph's inputs as contiguous float32 CUDA tensors -> (x0, grad), each (B, 17, 3)."""
        batch = feeds["x_t"].shape[0]
        if batch > self.max_batch:
            raise ValueError(f"batch {batch} exceeds the engine's profile maximum {self.max_batch}")
        outs = tuple(torch.empty_like(feeds["x_t"]) for _ in OUTPUTS)
        for name in self.inputs:
            tensor = feeds[name].contiguous()
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
        for name, tensor in zip(OUTPUTS, outs, strict=True):
            self.context.set_tensor_address(name, tensor.data_ptr())
        if not self.context.execute_async_v3(torch.cuda.current_stream().cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        torch.cuda.current_stream().synchronize()
        return outs
