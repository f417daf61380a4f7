"""Diffusion posterior sampling (DPS, Chung et al. 2022) with a few-step multistep solver.

The one sampler of pads-stream: the Python API, the evaluation, the node and every backend
(torch, ONNX Runtime, TensorRT) run :func:`sample`. It is plain numpy around a ``denoise``
function that a backend provides, so the ONNX Runtime path needs no torch.

One reverse step i (PADS Algorithm 1 with DPS guidance; solver tables in :mod:`schedule`):

1. x̂₀, g = denoise(x_t, t_i, α_i)       network ε_θ, Tweedie x̂₀, and g = ∇_{x_t} Σ_b ‖r_b(x̂₀)‖
                                         through the network (DPS Eq. 16, norm per sample)
2. D = c_now x̂₀ + c_prev x̂₀_prev        second-order multistep data prediction (DPM-Solver++ 2M)
3. x_{t'} = a x_t + b D − ρ g            solver update, then the guidance step

Estimation starts at t_start from x = α_{t_start} · x_init (the inverse projection, not noised:
PADS Algorithm 1 sets x_N = P_init) and, once the pose is clean, moves each joint towards the
closest point on its 2D ray by the joint's confidence to the power ``snap_power``
(:func:`~pads_stream.geometry.camera.snap_to_rays`).
A share ``restart_fraction`` of the step budget is then spent on a second
run from that result at ``restart_t_start`` (restart sampling, Xu et al. 2023, without the added
noise): on held-out views it is worth about 2 mm at every equal step count. Poses inside are
normalised (metres / ``scale``); starts and results are in metres.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .schedule import SOLVERS, SolverTables, solver_tables, timesteps

DenoiseFn = Callable[[np.ndarray, float, float], tuple[np.ndarray, np.ndarray]]
"""denoise(x_t, t, α_t) -> (x̂₀, g): x_t (B, 17, 3) float32 normalised poses; x̂₀ the data
prediction and g = ∇_{x_t} Σ_b ‖r_b(x̂₀)‖ of the bound task's residual (zeros when unguided),
both (B, 17, 3) float32."""


REFERENCE_STEPS = 10  # the step budget ``rho`` is chosen for
DEFAULT_STEPS = REFERENCE_STEPS  # network passes per estimate, denoising or completion unless asked otherwise


@dataclass(frozen=True)
class SamplerConfig:
    """Posterior-sampling settings per task (ρ in normalised pose units per residual unit, the
    residuals in metres). Defaults are what ``pads-stream tune`` chose for the shipped model."""

    t_start: int = 500  # estimation: noise level of the (not noised) inverse-projection start
    rho: float = 6.0  # estimation guidance step at REFERENCE_STEPS steps
    rho_power: float = 0.5  # at n steps the step is rho · (REFERENCE_STEPS / n) ** rho_power (fewer, larger steps)
    spacing: float = 0.7  # timestep spacing power (see schedule.timesteps); < 1: more steps at high noise
    solver: str = "dpm2m"  # estimation: "dpm2m" (second-order multistep), "ddim" or "tweedie" (schedule.SOLVERS)
    snap_power: float = 3.0  # final pull onto the 2D rays, weight conf**snap_power; 0 = off
    # estimation keeps its bones (pads_stream.geometry.bones): the final pull onto the rays holds every bone within the
    # human range, or at the person's known skeleton; False: a free pull per joint
    bone_hold: bool = True
    restart_fraction: float = 0.3  # share of the estimation steps spent on the restart run; 0 = none
    restart_t_start: int = 200  # noise level the restart run starts from
    denoise_level: float = 1.2  # denoising: Tweedie noise level over the one matched to the observation's
    complete_t_start: int = 400  # completion: noise level of the (not noised) observed-joint start
    complete_rho: float = 4.0  # completion guidance step
    complete_solver: str = "tweedie"  # completion's solver (see schedule.solver_tables)
    # estimation: joints unseen (confidence 0) are completed from the seen ones as complete() does, in this
    # share of the estimation's steps (persons with every joint seen pay nothing); 0 = left as sampled
    complete_unseen: float = 1.0
    # rigs, each a pair (two views, four or more) interpolated in the (harmonic) mean number of views per seen
    # joint: the noise level of the (not noised) triangulated start, and the guidance step at
    # REFERENCE_STEPS steps (scaled like rho). Fewer views leave more to the prior.
    rig_t_start: tuple[int, int] = (500, 250)
    rig_rho: tuple[float, float] = (4.0, 2.8)
    rig_conf_power: float = 1.5  # rigs: a view's joint weighs conf ** rig_conf_power
    rig_snap: float = 0.015  # rigs: the sampled pose's error (m) in the final fusion with the views' rays; 0 = off
    # rigs: the fusion's gain on the rays is (rig_snap / the views' disagreement) ** rig_snap_power: the sampled
    # pose already holds what noisy rays say, so the gain must fall fast with the noise and rise fast without it
    rig_snap_power: float = 4.0

    def rho_at(self, steps: int) -> float:
        """The estimation guidance step of a ``steps``-step budget: the total pull of the guidance
        grows with the number of steps, so more steps take smaller ones (measured on held-out
        views: ρ 6 at 10 steps, about 3 at 50 and 2 at 100)."""
        return self.rho * (REFERENCE_STEPS / steps) ** self.rho_power

    def rig_settings(self, views: float, steps: int) -> tuple[int, float]:
        """(t_start, ρ) of a rig person seen by ``views`` views per joint on average, for a
        ``steps``-step budget (ρ scaled as :meth:`rho_at`)."""
        share = float(np.clip((views - 2.0) / 2.0, 0.0, 1.0))
        t0 = int(round(self.rig_t_start[0] + share * (self.rig_t_start[1] - self.rig_t_start[0])))
        rho = self.rig_rho[0] + share * (self.rig_rho[1] - self.rig_rho[0])
        return t0, rho * (REFERENCE_STEPS / steps) ** self.rho_power

    def __post_init__(self) -> None:
        for name in ("solver", "complete_solver"):
            if getattr(self, name) not in SOLVERS:
                raise ValueError(f"{name} must be one of {SOLVERS}, got {getattr(self, name)!r}")
        if len(self.rig_t_start) != 2 or len(self.rig_rho) != 2:
            raise ValueError("rig_t_start and rig_rho must be pairs (two views, four or more)")
        if not all(np.isfinite(r) and r >= 0 for r in self.rig_rho):
            raise ValueError(f"rig_rho must be finite and >= 0, got {self.rig_rho!r}")
        if not 0 <= self.restart_fraction < 1:
            raise ValueError(f"restart_fraction must be in [0, 1), got {self.restart_fraction!r}")
        if not (np.isfinite(self.denoise_level) and self.denoise_level > 0):
            raise ValueError(f"denoise_level must be finite and > 0, got {self.denoise_level!r}")
        for name in (
            "rho",
            "rho_power",
            "complete_rho",
            "complete_unseen",
            "snap_power",
            "rig_conf_power",
            "rig_snap",
            "rig_snap_power",
        ):
            if not (np.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {getattr(self, name)!r}")


def split_steps(steps: int, restart_fraction: float) -> tuple[int, int]:
    """(first run, restart run) steps of an estimation budget of ``steps`` (the first run keeps ≥ 1)."""
    restart = min(int(round(steps * restart_fraction)), steps - 1)
    return steps - restart, restart


def make_tables(abar_table: np.ndarray, cfg: SamplerConfig, t_start: int, steps: int,
                solver: str | None = None) -> SolverTables:  # fmt: skip
    """The solver tables of a ``steps``-step run from ``t_start`` under ``cfg``'s spacing and
    ``solver`` (default ``cfg.solver``)."""
    if not isinstance(t_start, int | np.integer) or not 1 <= t_start < len(abar_table):
        raise ValueError(f"t_start must be an integer in [1, {len(abar_table) - 1}], got {t_start!r}")
    return solver_tables(abar_table, timesteps(int(t_start), steps, cfg.spacing), solver or cfg.solver)


def sample(denoise: DenoiseFn, tables: SolverTables, x: np.ndarray, rho: float) -> np.ndarray:
    """Run the reverse process from ``x`` at the tables' first timestep.

    Args:
        denoise: the network with the task bound (a backend's ``denoiser``).
        tables: the run's coefficients (:func:`make_tables`).
        x: (B, 17, 3) float32 normalised starting sample x_{t_0}.
        rho: guidance step size (0: unguided).

    Returns:
        (B, 17, 3) float32 clean normalised poses.
    """
    coef = [tuple(float(c[i]) for c in (tables.t, tables.alpha, tables.a, tables.b, tables.c_now, tables.c_prev))
            for i in range(tables.steps)]  # fmt: skip
    x = np.ascontiguousarray(x, dtype=np.float32)
    x0_prev = x
    for t, alpha, a, b, c_now, c_prev in coef:
        x0, g = denoise(x, t, alpha)  # 1.
        d = x0 if c_prev == 0.0 else c_now * x0 + c_prev * x0_prev  # 2.
        x = a * x + b * d - rho * g  # 3.
        x0_prev = x0
    return x


def tweedie_denoise(denoise: DenoiseFn, y: np.ndarray, t: float, alpha: float, passes: int) -> np.ndarray:
    """Denoise pelvis-relative observations by Tweedie's formula at one noise level.

    The posterior mean E[x₀ | x_t] (one network pass) is the least-squares denoiser when x_t = α y
    holds noise of the level of t. But the observation's pelvis is noisy too, and centring on it
    shifted every joint by the pelvis's noise, a translation the network does not expect; so
    each further pass first moves y by its mean offset from the last estimate (the translation
    that best explains it) and evaluates the posterior mean again.

    Args:
        denoise: the unguided network (a backend's ``prior`` denoiser).
        y: (B, 17, 3) float32 normalised noisy poses, pelvis-relative.
        t, alpha: the noise level and √ᾱ_t.
        passes: network passes (≥ 1).

    Returns:
        (B, 17, 3) float32 normalised poses, pelvis at the origin.
    """
    y = np.ascontiguousarray(y, dtype=np.float32)
    for _ in range(passes):
        x0, _ = denoise(alpha * y, t, alpha)
        x0 = x0 - x0[:, :1]
        y = y - (y - x0).mean(axis=1, keepdims=True)
    return x0
