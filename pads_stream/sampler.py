"""Diffusion posterior sampling (DPS, Chung et al. 2022) with few-step DDIM.

The one sampler of pads-stream: the Python API, the evaluation, the node and the exported
graph all run :func:`sample`. It is a pure function of the network, a coefficient table, the
starting sample, the noise and the operator; all randomness comes in as tensors.

One reverse step i (DPS Algorithm 1, with the DDIM update in place of the DDPM one):

1. ε = ε_θ(x_t, t)                                       network
2. x̂₀ = (x_t − √(1−ᾱ_t) ε) / √ᾱ_t                       Tweedie / DDIM Eq. 9
3. x' = √ᾱ_{t'} x̂₀ + √(1−ᾱ_{t'}−σ²) ε + σ z            DDIM Eq. 12
4. x_{t'} = x' − ρ ∇_{x_t} ‖y − f(x̂₀)‖                  DPS Eq. 16, norm per sample

Guidance ``"dps"`` takes the gradient in step 4 through the network (a vector-Jacobian
product); ``"cheap"`` skips the network Jacobian, using ∂x̂₀/∂x_t ≈ 1/√ᾱ_t.
Poses inside are normalised (metres / ``scale``); x_init, the operator and the result are in
metres.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .operators import ForwardOperator
from .schedule import DdimCoefficients, add_noise, ddim_coefficients, ddim_timesteps, predict_x0

GUIDANCE = ("dps", "cheap")


@dataclass(frozen=True)
class SamplerConfig:
    """Posterior-sampling settings per task (ρ in normalised pose units per residual unit)."""

    t_start: int = 400  # estimation: noise level the inverse-projection start is lifted to
    rho: float = 1.0  # estimation guidance step (residual in metres at the person)
    guidance: str = "dps"  # "dps" (through the network) or "cheap" (no network Jacobian)
    hypotheses: int = 1  # samples per person, averaged
    eta: float = 0.0  # DDIM stochasticity
    denoise_t_start: int = 150  # denoising: noise level the observation is lifted to
    denoise_rho: float = 0.5  # denoising guidance step (residual in metres)
    complete_rho: float = 2.0  # completion guidance step (residual in metres)

    def __post_init__(self) -> None:
        if self.guidance not in GUIDANCE:
            raise ValueError(f"guidance must be one of {GUIDANCE}, got {self.guidance!r}")
        if self.hypotheses < 1:
            raise ValueError(f"hypotheses must be >= 1, got {self.hypotheses}")


@dataclass(frozen=True)
class Schedule:
    """A run's DDIM coefficients as float32 tensors: ``timesteps`` (steps,) and ``coef``
    (steps, 4) holding [√ᾱ_t, c_x0, c_eps, σ] per step (see :class:`DdimCoefficients`)."""

    timesteps: torch.Tensor
    coef: torch.Tensor

    @classmethod
    def from_coefficients(cls, c: DdimCoefficients, device: torch.device | str = "cpu") -> Schedule:
        coef = np.stack([np.sqrt(c.abar), c.c_x0, c.c_eps, c.sigma], axis=-1)
        return cls(
            timesteps=torch.as_tensor(c.timesteps, dtype=torch.float32, device=device),
            coef=torch.as_tensor(coef, dtype=torch.float32, device=device),
        )

    @property
    def steps(self) -> int:
        return int(self.timesteps.shape[0])

    @property
    def sqrt_abar(self) -> torch.Tensor:
        """(steps,) √ᾱ of each step's starting timestep."""
        return self.coef[:, 0]


def make_schedule(
    abar_table: np.ndarray, t_start: int, steps: int, eta: float = 0.0, device: torch.device | str = "cpu"
) -> Schedule:
    """The DDIM schedule of a ``steps``-step run from ``t_start`` down to the clean sample."""
    return Schedule.from_coefficients(ddim_coefficients(abar_table, ddim_timesteps(t_start, steps), eta), device)


def guided_update(
    net: torch.nn.Module,
    x_t: torch.Tensor,
    z: torch.Tensor,
    t: torch.Tensor,
    coef: torch.Tensor,
    operator: ForwardOperator | None,
    rho: torch.Tensor | float,
    guidance: str,
    scale: float,
) -> torch.Tensor:
    """One reverse step (stages 1-4 of the module docstring) on (B, 17, 3) normalised poses.

    Args:
        t: () timestep. coef: (4,) [√ᾱ_t, c_x0, c_eps, σ] of this step (see :class:`Schedule`).
        rho: guidance step size; guidance is skipped when ``operator`` is None.

    This is the function the exporter traces, so it is written in plain tensor ops.
    """
    sqrt_abar, c_x0, c_eps, sigma = coef[0], coef[1], coef[2], coef[3]
    guided = operator is not None
    with torch.enable_grad() if guided else torch.no_grad():
        x_t = x_t.detach().requires_grad_(guided and guidance == "dps")
        eps = net(x_t, t.expand(x_t.shape[0]))  # 1.
        x0 = predict_x0(x_t, eps, sqrt_abar * sqrt_abar)  # 2.
        x_next = c_x0 * x0 + c_eps * eps + sigma * z  # 3.
        if not guided:
            return x_next.detach()
        if guidance == "cheap":
            x0 = x0.detach().requires_grad_(True)
        norm = operator.residual(x0 * scale).flatten(1).norm(dim=1)  # (B,) per-sample norm
        (grad,) = torch.autograd.grad(norm.sum(), x_t if guidance == "dps" else x0)
        if guidance == "cheap":
            grad = grad / sqrt_abar
        return (x_next - rho * grad).detach()  # 4.


def guided_step(
    net: torch.nn.Module,
    sched: Schedule,
    i: int,
    x_t: torch.Tensor,
    z: torch.Tensor,
    operator: ForwardOperator | None,
    rho: float,
    guidance: str,
    scale: float,
) -> torch.Tensor:
    """Step ``i`` of the run ``sched`` (:func:`guided_update` with the step's coefficients)."""
    op = operator if rho > 0 else None
    return guided_update(net, x_t, z, sched.timesteps[i], sched.coef[i], op, rho, guidance, scale)


StepFn = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]
"""step(i, x_t, z) -> x_{t'}: one reverse step on (B, 17, 3) normalised poses."""


def torch_step(
    net: torch.nn.Module, sched: Schedule, scale: float, operator: ForwardOperator | None, rho: float, guidance: str
) -> StepFn:
    """The reference step function: :func:`guided_step` with the task bound."""
    return lambda i, x_t, z: guided_step(net, sched, i, x_t, z, operator, rho, guidance, scale)


def sample(
    step: StepFn, sched: Schedule, scale: float, x_init: torch.Tensor | None, noise: torch.Tensor
) -> torch.Tensor:
    """Run the reverse process and return pelvis-relative poses in metres.

    Args:
        step: one reverse step with the task bound (:func:`torch_step` or an exported engine's).
        sched: coefficients of the run (its first timestep is the starting noise level).
        scale: metres per normalised unit (from the checkpoint).
        x_init: (B, 17, 3) metres, the starting estimate lifted to the first noise level, or
            None to start from pure noise (the first timestep should then be near T).
        noise: (steps + 1, B, 17, 3) standard normal: [0] lifts the start, [i + 1] is step
            i's z (unused when η = 0).

    Returns:
        (B, 17, 3) pelvis-relative poses, camera frame, metres.
    """
    if x_init is None:
        x = noise[0]
    else:
        x = add_noise(x_init / scale, noise[0], sched.sqrt_abar[0] ** 2)
    for i in range(sched.steps):
        x = step(i, x, noise[i + 1])
    x = x * scale
    return x - x[:, :1]
