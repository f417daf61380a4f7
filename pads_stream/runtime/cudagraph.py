"""The torch backend's guided step on a GPU, captured once per task and batch size as a CUDA graph.

Eager torch launches each of the step's few hundred small kernels (the network, its
vector-Jacobian product, the residual) from Python: on a GPU one 10-step estimate of one person
then costs ~80 ms of launch overhead for well under a millisecond of arithmetic (an H200,
``pads-stream bench --backends torch,torch-eager``). A CUDA graph records those launches once and
replays them with one call. The graph reads and writes fixed buffers, so a captured step owns
static input tensors: each call copies the new poses (and, per frame, the task's inputs) into
them. Batches are padded to the next power of two by repeating the first row, so a node whose
person count changes every frame reuses a handful of graphs; padded rows are dropped from the
outputs (each row of the step is independent of the others).
"""

from __future__ import annotations

import numpy as np
import torch

from ..common.recent import Recent
from ..geometry.skeleton import NUM_JOINTS
from ..prior import operators
from ..prior.guidance import guided_denoise
from ..prior.sampler import DenoiseFn
from .stepgraph import TASKS

MAX_BUCKET = 1024  # larger batches run eagerly (their launch overhead is small against their arithmetic)
KEEP = 16  # captured graphs kept (least recently used dropped): each holds its own memory pool


def bucket(batch: int) -> int:
    """The padded batch size a graph is captured for: the next power of two."""
    return 1 << max(0, (batch - 1).bit_length())


def padded(x: np.ndarray, size: int) -> np.ndarray:
    """``x`` (batch first) grown to ``size`` rows by repeating its first row."""
    if len(x) == size:
        return x
    return np.concatenate([x, np.repeat(x[:1], size - len(x), axis=0)])


class GraphedStep:
    """One task's guided step for ``size`` poses, captured on the current CUDA device.

    Args:
        net: the noise predictor, on the GPU. scale: metres per normalised unit.
        graph: the step graph's task name in :data:`pads_stream.runtime.stepgraph.TASKS`, or None for the
            unguided prior. fixed: its bound inputs, (size, ...) float32 arrays.
    """

    def __init__(self, net: torch.nn.Module, scale: float, graph: str | None, fixed: dict[str, np.ndarray], size: int):
        device = next(net.parameters()).device
        self.inputs = {k: torch.from_numpy(v).to(device) for k, v in fixed.items()}
        self.x_t = torch.zeros((size, NUM_JOINTS, 3), dtype=torch.float32, device=device)
        self.t = torch.zeros(1, dtype=torch.float32, device=device)
        self.alpha = torch.ones(1, dtype=torch.float32, device=device)
        make = getattr(operators, TASKS[graph].operator) if graph else None

        def step() -> tuple[torch.Tensor, torch.Tensor]:
            # the operator is built inside the graph, so whatever it derives from its inputs is recomputed per replay
            op = make(**self.inputs) if make else None
            return guided_denoise(net, self.x_t, self.t, self.alpha, op, scale)

        side = torch.cuda.Stream()  # warm-up off the default stream, as capture requires
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.x0, self.grad = step()

    def bind(self, fixed: dict[str, np.ndarray]) -> None:
        """Copy one frame's task inputs (the capture's shapes) into the graph's buffers."""
        for k, v in fixed.items():
            self.inputs[k].copy_(torch.from_numpy(v))

    def __call__(self, x_t: np.ndarray, t: float, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        self.x_t.copy_(torch.from_numpy(x_t))
        self.t.fill_(t)
        self.alpha.fill_(alpha)
        self.graph.replay()
        return self.x0.cpu().numpy(), self.grad.cpu().numpy()


class GraphedSteps:
    """The captured steps of one network, by (task, padded batch), least recently used dropped."""

    def __init__(self, net: torch.nn.Module, scale: float):
        self.net, self.scale = net, scale
        self.steps: Recent[GraphedStep] = Recent(KEEP)  # (task graph, padded batch) -> its capture

    @staticmethod
    def fits(batch: int) -> bool:
        """Whether ``batch`` poses run as a graph (larger batches run eagerly)."""
        return batch <= MAX_BUCKET

    def denoiser(self, graph: str | None, fixed: dict[str, np.ndarray], batch: int) -> DenoiseFn:
        """The step for ``batch`` poses with ``fixed`` bound (see :class:`GraphedStep`)."""
        size = bucket(batch)
        fixed = {k: np.ascontiguousarray(padded(v, size)) for k, v in fixed.items()}
        run, made = self.steps.get((graph, size), lambda: GraphedStep(self.net, self.scale, graph, fixed, size))
        if not made:  # a new capture is made with these inputs bound
            run.bind(fixed)

        def denoise(x_t: np.ndarray, t: float, alpha: float) -> tuple[np.ndarray, np.ndarray]:
            x0, grad = run(np.ascontiguousarray(padded(x_t.astype(np.float32, copy=False), size)), t, alpha)
            return x0[:batch], grad[:batch]

        return denoise
