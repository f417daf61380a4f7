"""Estimation backends behind one interface: each turns a bound estimation task into the
guided step the shared sampler loops over (:data:`pads_stream.sampler.StepFn`).

- ``torch``: the reference, autograd through the network (CPU or CUDA).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import torch

from .operators import Projection
from .sampler import Schedule, StepFn, torch_step

if TYPE_CHECKING:
    from .api import PoseModel

BACKENDS = ("auto", "torch")


class Backend(Protocol):
    """Binds one batch's observations and returns the step function for it."""

    name: str

    def estimation_step(
        self, sched: Schedule, rays: torch.Tensor, root: torch.Tensor, weights: torch.Tensor, rho: float
    ) -> StepFn:
        """rays (B, 17, 2) K⁻¹p, root (B, 3) m, weights (B, 17) -> step(i, x_t, z)."""
        ...


class TorchBackend:
    """The reference: :func:`pads_stream.sampler.guided_step` in eager torch."""

    name = "torch"

    def __init__(self, model: PoseModel):
        self.model = model

    def estimation_step(
        self, sched: Schedule, rays: torch.Tensor, root: torch.Tensor, weights: torch.Tensor, rho: float
    ) -> StepFn:
        m = self.model
        return torch_step(m.net, sched, m.scale, Projection(rays, root, weights), rho, m.sampler.guidance)


def make_backend(name: str, model: PoseModel) -> Backend:
    """The backend called ``name`` for ``model``; raises ValueError if it cannot run here."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    return TorchBackend(model)
