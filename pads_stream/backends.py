"""Estimation backends behind one interface: each binds one batch's observations and returns
the guided step that the shared sampler loops over (:data:`pads_stream.sampler.StepFn`).

- ``torch``: the reference, autograd through the network, on CUDA when a GPU is visible.
- ``onnxruntime``: the exported step graph (``pads-stream export``), CPU; CUDA provider
  when onnxruntime-gpu and a GPU are present.
- ``tensorrt``: the exported step as a TensorRT plan built for this GPU and TensorRT version.
- ``auto``: tensorrt, else torch on a GPU; onnxruntime, else torch on a CPU — the order of
  the latencies measured in ``docs/engines.md``.

Exported files are looked up in ``engines/<checkpoint name>/`` (``$PADS_STREAM_ENGINES`` or the
repository's ``engines/``) and refused, with the reason, when their manifest does not match the
model, the GPU or the TensorRT version.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from .operators import Projection
from .sampler import Schedule, StepFn, torch_step

if TYPE_CHECKING:
    from .api import PoseModel

BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run here; the message says why."""


class Backend(Protocol):
    """Binds one batch's observations and returns the step function for it."""

    name: str
    device: torch.device

    def estimation_step(
        self, sched: Schedule, rays: torch.Tensor, root: torch.Tensor, weights: torch.Tensor, rho: float
    ) -> StepFn:
        """rays (B, 17, 2) K⁻¹p, root (B, 3) m, weights (B, 17) on ``device`` -> step(i, x_t, z)."""
        ...


def engines_root() -> Path:
    """The folder holding ``<model name>/manifest.json`` of exported models."""
    env = os.environ.get("PADS_STREAM_ENGINES")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "engines"


def read_manifest(model: PoseModel) -> tuple[Path, dict]:
    """The engine folder and manifest of ``model``; raises BackendUnavailable if absent or stale."""
    folder = engines_root() / model.path.stem
    path = folder / "manifest.json"
    if not path.exists():
        raise BackendUnavailable(f"no exported model at {folder}: run `pads-stream export --model {model.path}`")
    manifest = json.loads(path.read_text())
    if manifest["model"]["hash"] != model.model_hash:
        raise BackendUnavailable(
            f"{path} was exported from model hash {manifest['model']['hash']}, this model is {model.model_hash}: "
            f"re-run `pads-stream export --model {model.path}`"
        )
    return folder, manifest


class TorchBackend:
    """The reference: :func:`pads_stream.sampler.guided_step` in eager torch."""

    name = "torch"

    def __init__(self, model: PoseModel, device: str | None = None):
        self.model = model
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model.net.to(self.device)

    def estimation_step(
        self, sched: Schedule, rays: torch.Tensor, root: torch.Tensor, weights: torch.Tensor, rho: float
    ) -> StepFn:
        m = self.model
        return torch_step(m.net, sched, m.scale, Projection(rays, root, weights), rho, m.sampler.guidance)


class OnnxRuntimeBackend:
    """The exported step graph on ONNX Runtime (the CPU engine)."""

    name = "onnxruntime"

    def __init__(self, model: PoseModel, threads: int = 0):
        import onnxruntime as ort

        self.model = model
        self.folder, self.manifest = read_manifest(model)
        self.options = ort.SessionOptions()
        self.options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        self.options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.providers = [
            p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()
        ]
        self.device = torch.device("cpu")
        self.sessions: dict[str, object] = {}

    def session(self, guidance: str):
        if guidance not in self.sessions:
            import onnxruntime as ort

            files = self.manifest["graph"]["files"]
            if guidance not in files:
                raise BackendUnavailable(f"{self.folder} has no '{guidance}' graph; exported: {sorted(files)}")
            path = str(self.folder / files[guidance])
            self.sessions[guidance] = ort.InferenceSession(path, self.options, providers=self.providers)
        return self.sessions[guidance]

    def estimation_step(
        self, sched: Schedule, rays: torch.Tensor, root: torch.Tensor, weights: torch.Tensor, rho: float
    ) -> StepFn:
        session = self.session(self.model.sampler.guidance)
        fixed = {
            "rays": rays.numpy(), "root": root.numpy(), "weights": weights.numpy(),
            "rho": np.array([rho], np.float32),
        }  # fmt: skip
        ts = sched.timesteps.numpy().reshape(-1, 1)
        coef = sched.coef.numpy()

        def step(i: int, x_t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            feeds = {"x_t": x_t.numpy(), "z": z.numpy(), "t": ts[i], "coef": coef[i], **fixed}
            return torch.from_numpy(session.run(["x_next"], feeds)[0])

        return step


class TensorRTBackend:
    """The exported step as a TensorRT plan for this GPU (see :mod:`tensorrt_engine`)."""

    name = "tensorrt"

    def __init__(self, model: PoseModel):
        from .tensorrt_engine import TensorRTStep, gpu_tag, unavailable_reason

        reason = unavailable_reason()
        if reason:
            raise BackendUnavailable(reason)
        self.model = model
        self.folder, manifest = read_manifest(model)
        tag = gpu_tag()
        entries = [
            e for e in manifest["engines"] if all(e[k] == tag[k] for k in ("gpu", "compute_capability", "tensorrt"))
        ]
        if not entries:
            built = [f"{e['gpu']} sm{e['compute_capability']} TensorRT {e['tensorrt']}" for e in manifest["engines"]]
            here = f"{tag['gpu']} sm{tag['compute_capability']} TensorRT {tag['tensorrt']}"
            raise BackendUnavailable(
                f"{self.folder} has no engine for {here} (built: {built or 'none'}): "
                f"run `pads-stream export --model {model.path}` on this machine"
            )
        self.steps = {e["guidance"]: TensorRTStep(self.folder / e["file"]) for e in entries}
        self.device = torch.device("cuda")
        model.net.to(self.device)

    def estimation_step(
        self, sched: Schedule, rays: torch.Tensor, root: torch.Tensor, weights: torch.Tensor, rho: float
    ) -> StepFn:
        guidance = self.model.sampler.guidance
        if guidance not in self.steps:
            raise BackendUnavailable(f"no TensorRT engine for guidance '{guidance}' in {self.folder}")
        run = self.steps[guidance]
        dev = self.device
        fixed = {"rays": rays.to(dev).contiguous(), "root": root.to(dev).contiguous(),
                 "weights": weights.to(dev).contiguous(), "rho": torch.tensor([rho], device=dev)}  # fmt: skip
        ts, coef = sched.timesteps.to(dev).reshape(-1, 1), sched.coef.to(dev)
        return lambda i, x_t, z: run(
            {"x_t": x_t.contiguous(), "z": z.contiguous(), "t": ts[i], "coef": coef[i], **fixed}
        )


def make_backend(name: str, model: PoseModel) -> Backend:
    """The backend called ``name`` for ``model``; raises BackendUnavailable saying why it cannot run."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "torch":
        return TorchBackend(model)
    if name == "onnxruntime":
        return OnnxRuntimeBackend(model)
    if name == "tensorrt":
        return TensorRTBackend(model)
    order = (TensorRTBackend,) if torch.cuda.is_available() else (OnnxRuntimeBackend,)
    for cls in order:
        try:
            return cls(model)
        except BackendUnavailable:
            pass
    return TorchBackend(model)
