"""The DDPM noise schedule and the DDIM update: small pure functions, apart from the network.

Symbols (Ho et al. 2020; Song et al. 2021, "DDIM"):

| name here       | paper      | meaning                                             |
|-----------------|------------|-----------------------------------------------------|
| ``abar[t]``     | ᾱ_t        | cumulative product of (1 - β), signal fraction at t |
| ``x_t``         | x_t        | noisy sample at step t                              |
| ``eps``         | ε_θ(x_t,t) | predicted noise                                     |
| ``x0_hat``      | x̂_0        | Tweedie estimate of the clean sample (DDIM Eq. 9)   |
| ``eta``         | η          | 0: deterministic DDIM, 1: DDPM-like ancestral noise |

Everything here is arithmetic on arrays or tensors (numpy and torch alike): the coefficient
tables are computed once by :func:`ddim_coefficients`, so the per-frame path does no lookup.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DiffusionConfig:
    """The forward (noising) process."""

    num_train_steps: int = 1000  # T
    schedule: str = "cosine"  # "cosine" (Nichol & Dhariwal 2021) or "linear" (Ho et al. 2020)


SCHEDULES = ("cosine", "linear")


def alphas_cumprod(cfg: DiffusionConfig) -> np.ndarray:
    """ᾱ_t for t = 0 … T-1 as float64, shape (T,)."""
    n = cfg.num_train_steps
    if cfg.schedule == "linear":
        betas = np.linspace(1e-4, 0.02, n)
    elif cfg.schedule == "cosine":
        s = 0.008
        f = np.cos((np.arange(n + 1) / n + s) / (1 + s) * np.pi / 2) ** 2
        betas = np.clip(1 - f[1:] / f[:-1], 0, 0.999)
    else:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {cfg.schedule!r}")
    return np.cumprod(1.0 - betas)


def add_noise(x0, eps, abar_t):
    """Sample q(x_t | x_0) = √ᾱ_t x_0 + √(1-ᾱ_t) ε (``abar_t`` broadcast against ``x0``)."""
    return abar_t**0.5 * x0 + (1 - abar_t) ** 0.5 * eps


def predict_x0(x_t, eps, abar_t):
    """x̂_0 = (x_t - √(1-ᾱ_t) ε) / √ᾱ_t (DDIM Eq. 9)."""
    return (x_t - (1 - abar_t) ** 0.5 * eps) / abar_t**0.5


def ddim_timesteps(t_start: int, steps: int) -> np.ndarray:
    """The ``steps`` timesteps of a DDIM run that starts at ``t_start`` and ends at 0.

    Returns:
        (steps,) int64, strictly decreasing, first ``t_start``; each step jumps to the next
        entry, the last one to the clean sample.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if t_start < steps - 1:
        raise ValueError(f"t_start {t_start} is too small for {steps} steps")
    return np.round(np.linspace(t_start, 0, steps, endpoint=False)).astype(np.int64)


@dataclass(frozen=True)
class DdimCoefficients:
    """Per-step coefficients of a DDIM run (arrays of shape (steps,), float64).

    Step i maps x_{t_i} to x_{t_{i+1}} with
    x_next = c_x0[i] · x̂_0 + c_eps[i] · ε + sigma[i] · z.
    """

    timesteps: np.ndarray  # t_i
    abar: np.ndarray  # ᾱ_{t_i}
    c_x0: np.ndarray  # √ᾱ_{t_{i+1}}
    c_eps: np.ndarray  # √(1 - ᾱ_{t_{i+1}} - σ_i²)
    sigma: np.ndarray  # σ_i = η √((1-ᾱ_{i+1})/(1-ᾱ_i)) √(1 - ᾱ_i/ᾱ_{i+1})  (DDIM Eq. 16)


def ddim_coefficients(abar_table: np.ndarray, timesteps: np.ndarray, eta: float = 0.0) -> DdimCoefficients:
    """Tabulate the DDIM update for a run over ``timesteps`` (ᾱ of the step after the last is 1)."""
    abar = abar_table[timesteps]
    abar_next = np.append(abar_table[timesteps[1:]], 1.0)
    sigma = eta * np.sqrt((1 - abar_next) / (1 - abar) * (1 - abar / abar_next))
    return DdimCoefficients(
        timesteps=timesteps,
        abar=abar,
        c_x0=np.sqrt(abar_next),
        c_eps=np.sqrt(np.clip(1 - abar_next - sigma**2, 0, None)),
        sigma=sigma,
    )
