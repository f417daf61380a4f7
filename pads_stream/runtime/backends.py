"""Backends behind one interface: each binds one batch's observations for a task and returns
the ``denoise`` function that the shared numpy sampler loops over
(:data:`pads_stream.prior.sampler.DenoiseFn`).

- ``torch``: the reference, autograd through the network, on CUDA when a GPU is visible.
- ``onnxruntime``: the exported step graphs (``pads-stream export``); CPU, or the CUDA
  provider when onnxruntime-gpu and a GPU are present. Needs no torch.
- ``tensorrt``: the exported graphs as TensorRT plans built for this GPU and TensorRT version.

Tasks and their inputs (numpy, float32, batch first; see :mod:`pads_stream.runtime.stepgraph`):
``projection`` (rays (B, 17, 2) K⁻¹p, root (B, 3) m, weights (B, 17)), ``identity`` (y (B, 17, 3)
m, weights (B, 17)) and ``prior`` (no inputs, unguided). This module imports neither torch nor
onnxruntime until a backend is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from ..common.recent import Recent
from ..prior.sampler import DenoiseFn
from .stepgraph import OUTPUTS, TASKS, BackendUnavailable

BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")
KEEP = 16  # bound steps an ONNX Runtime backend keeps, by (graph, batch size)


class Backend(Protocol):
    """Binds one batch's observations for a task and returns the denoise function for it."""

    name: str

    def denoiser(self, task: str, inputs: dict[str, np.ndarray], batch: int) -> DenoiseFn:
        """``task`` in ("projection", "identity", "prior"); ``inputs`` as in the module docstring."""
        ...


def _graph_inputs(task: str, inputs: dict[str, np.ndarray], batch: int) -> tuple[str, dict[str, np.ndarray]]:
    """The exported graph and its fixed inputs for ``task`` ("prior" runs the identity graph unweighted)."""
    if task == "prior":
        return "identity", {"y": np.zeros((batch, 17, 3), np.float32), "weights": np.zeros((batch, 17), np.float32)}
    if task not in TASKS:
        raise ValueError(f"task must be one of {(*TASKS, 'prior')}, got {task!r}")
    return task, {n: np.ascontiguousarray(inputs[n], dtype=np.float32) for n, _ in TASKS[task].bound}


class OnnxRuntimeBackend:
    """The exported step graphs on ONNX Runtime (on a CPU the manifest's ``cpu_graphs`` where it
    has them: the same step with LayerNorm whole, which ONNX Runtime's CPU runs faster).

    Args:
        folder, manifest: from :func:`pads_stream.runtime.stepgraph.read_manifest`.
        threads: intra-op threads (0: ONNX Runtime's default, one per physical core).
        spinning: let idle worker threads spin (lower latency, but burns the cores a 2D
            detector on the same machine needs); off by default.
    """

    name = "onnxruntime"

    def __init__(self, folder: Path, manifest: dict, threads: int = 0, spinning: bool = False):
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise BackendUnavailable(f"onnxruntime is not installed ({err})") from err
        self.folder, self.manifest = folder, manifest
        self.options = ort.SessionOptions()
        self.options.intra_op_num_threads = threads
        self.options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        self.providers = [
            p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()
        ]
        self.sessions: dict[str, object] = {}
        self.bound: Recent[_BoundStep] = Recent(KEEP)  # (graph, batch) -> its buffers

    def session(self, graph: str):
        if graph not in self.sessions:
            import onnxruntime as ort

            files = self.manifest["graphs"]
            if graph not in files:
                raise BackendUnavailable(f"{self.folder} has no '{graph}' graph; exported: {sorted(files)}")
            cpu = self.manifest.get("cpu_graphs", {}).get(graph)  # whole LayerNorms: faster on ONNX Runtime's CPU
            on_cpu = self.providers == ["CPUExecutionProvider"]
            path = str(self.folder / (cpu if on_cpu and cpu and (self.folder / cpu).exists() else files[graph]))
            self.sessions[graph] = ort.InferenceSession(path, self.options, providers=self.providers)
        return self.sessions[graph]

    def denoiser(self, task: str, inputs: dict[str, np.ndarray], batch: int) -> DenoiseFn:
        """The step with ``inputs`` bound (ONNX Runtime's IO binding): the session reads its inputs
        from buffers and writes its outputs into buffers made once per (graph, batch) (the
        :data:`KEEP` most recently used kept); a call copies the frame's inputs, then each step the
        poses and the two scalars, into them, so a step skips the feed checks and allocations of
        ``session.run``. Like every backend's, one denoiser of a task and batch size is in use at a
        time (the sampler runs one loop to its end before the next)."""
        graph, fixed = _graph_inputs(task, inputs, batch)
        step, _ = self.bound.get((graph, batch), lambda: _BoundStep(self.session(graph), fixed, batch))
        step.bind(fixed)
        return step


class _BoundStep:
    """One session's step with IO binding for ``batch`` poses: input and output buffers made once."""

    def __init__(self, session, fixed: dict[str, np.ndarray], batch: int):
        import onnxruntime as ort

        self.session = session
        self.x_t = np.empty((batch, 17, 3), np.float32)
        self.t, self.alpha = np.zeros(1, np.float32), np.zeros(1, np.float32)
        self.fixed = {name: np.empty_like(value) for name, value in fixed.items()}
        self.out = {name: np.empty((batch, 17, 3), np.float32) for name in OUTPUTS}
        self.binding = session.io_binding()
        for name, value in {"x_t": self.x_t, "t": self.t, "alpha": self.alpha, **self.fixed}.items():
            self.binding.bind_cpu_input(name, value)
        for name, value in self.out.items():
            self.binding.bind_ortvalue_output(name, ort.OrtValue.ortvalue_from_numpy(value))

    def bind(self, fixed: dict[str, np.ndarray]) -> None:
        """Copy one call's task inputs into the bound buffers."""
        for name, value in fixed.items():
            np.copyto(self.fixed[name], value)

    def __call__(self, x_t: np.ndarray, t: float, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        np.copyto(self.x_t, x_t)
        self.t[0], self.alpha[0] = t, alpha
        self.session.run_with_iobinding(self.binding)
        return self.out["x0"].copy(), self.out["grad"].copy()  # the next step overwrites the buffers


class TorchBackend:
    """The reference: :func:`pads_stream.prior.guidance.guided_denoise` in eager torch.

    On a CPU torch runs ``threads`` intra-op threads, one unless asked (0 means one). Its default,
    one OpenMP thread per core with an active wait, collapses when another process holds a core:
    one 10-step estimate took 7.4 s instead of 61 ms (docs/engines.md). ``torch.set_num_threads``
    is process-wide: the last torch backend made sets it.

    On a GPU each task's step is captured as a CUDA graph per padded batch size
    (:mod:`pads_stream.runtime.cudagraph`); ``cuda_graphs = False`` runs it eagerly instead.
    """

    name = "torch"

    def __init__(self, net, scale: float, device: str | None = None, threads: int = 1):
        import torch

        self.torch = torch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cpu":
            torch.set_num_threads(max(1, threads))
        self.net, self.scale = net.to(self.device), scale
        self.graphed = None  # the captured steps, on a GPU
        if self.device.type == "cuda":
            from .cudagraph import GraphedSteps

            self.graphed = GraphedSteps(self.net, scale)
        self.cuda_graphs = self.graphed is not None

    def operator(self, task: str, inputs: dict[str, np.ndarray], batch: int):
        """The torch forward operator of ``task`` (None for ``prior``)."""
        from ..prior import operators

        if task == "prior":
            return None
        graph, fixed = _graph_inputs(task, inputs, batch)
        return getattr(operators, TASKS[graph].operator)(**{k: self.torch.from_numpy(v).to(self.device)
                                                            for k, v in fixed.items()})  # fmt: skip

    def denoiser(self, task: str, inputs: dict[str, np.ndarray], batch: int) -> DenoiseFn:
        from ..prior.guidance import torch_denoiser

        if self.cuda_graphs and self.graphed is not None and self.graphed.fits(batch):
            if task == "prior":
                return self.graphed.denoiser(None, {}, batch)
            return self.graphed.denoiser(*_graph_inputs(task, inputs, batch), batch)
        return torch_denoiser(self.net, self.operator(task, inputs, batch), self.scale)


class TensorRTBackend:
    """The exported graphs as TensorRT plans for this GPU (see :mod:`pads_stream.runtime.tensorrt`)."""

    name = "tensorrt"

    def __init__(self, folder: Path, manifest: dict):
        from .tensorrt import TensorRTStep, gpu_tag, unavailable_reason

        reason = unavailable_reason()
        if reason:
            raise BackendUnavailable(reason)
        import torch

        self.torch = torch
        tag = gpu_tag()
        entries = [
            e for e in manifest["engines"] if all(e[k] == tag[k] for k in ("gpu", "compute_capability", "tensorrt"))
        ]
        if not entries:
            built = [f"{e['gpu']} sm{e['compute_capability']} TensorRT {e['tensorrt']}" for e in manifest["engines"]]
            here = f"{tag['gpu']} sm{tag['compute_capability']} TensorRT {tag['tensorrt']}"
            raise BackendUnavailable(
                f"{folder} has no engine for {here} (built: {built or 'none'}): run `pads-stream export` here"
            )
        self.folder = folder
        self.plans = {e["task"]: TensorRTStep(folder / e["file"], e["task"]) for e in entries}

    def denoiser(self, task: str, inputs: dict[str, np.ndarray], batch: int) -> DenoiseFn:
        graph, fixed = _graph_inputs(task, inputs, batch)
        if graph not in self.plans:
            raise BackendUnavailable(f"no TensorRT engine for task '{graph}' in {self.folder}")
        run, torch = self.plans[graph], self.torch
        feeds = {k: torch.from_numpy(v).cuda() for k, v in fixed.items()}

        def denoise(x_t: np.ndarray, t: float, alpha: float) -> tuple[np.ndarray, np.ndarray]:
            scalars = {"t": torch.tensor([t], device="cuda"), "alpha": torch.tensor([alpha], device="cuda")}
            x0, grad = run({"x_t": torch.from_numpy(x_t).cuda(), **scalars, **feeds})
            return x0.cpu().numpy(), grad.cpu().numpy()

        return denoise
