"""The DDPM noise schedule and few-step solver tables: small pure numpy functions, no network.

Symbols (Ho et al. 2020; Song et al. 2021, "DDIM"; Lu et al. 2022, "DPM-Solver++"):

| name here       | paper        | meaning                                                  |
|-----------------|--------------|----------------------------------------------------------|
| ``abar[t]``     | ᾱ_t          | cumulative product of (1 - β), signal fraction at t      |
| ``alpha``       | α_t = √ᾱ_t   | signal scale                                             |
| ``sigma``       | σ_t = √(1-ᾱ) | noise scale                                              |
| ``lam``         | λ_t          | half log-SNR, log(α_t / σ_t)                             |
| ``x0_hat``      | x̂_0 (D)      | data prediction (Tweedie / DDIM Eq. 9)                   |
| ``h``, ``q``    | h_i, r_i     | λ step, and the previous step's share of it (Alg. 2 of DPM-Solver++) |

One solver step i maps x_{t_i} to x_{t_{i+1}} (ᾱ after the last step is 1, the clean sample):

    D      = c_now[i] · x̂₀_i + c_prev[i] · x̂₀_{i−1}           (2M: D = (1 + 1/2q) x̂₀_i − (1/2q) x̂₀_{i−1})
    x_next = a[i] · x_t + b[i] · D                            (a = σ_next/σ_now, b = α_next (1 − e^{−h}))

With c_prev = 0 this is exactly DDIM with η = 0 (first-order DPM-Solver++); the first and the
last step are always first order. ``tweedie`` sets a = 0, b = α_next: each step restarts from
the data prediction at the next noise level, not noised (iterated Tweedie, what completion
runs). Everything is computed once per run by
:func:`solver_tables`, so the per-frame path is plain arithmetic.
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
SOLVERS = ("ddim", "dpm2m", "tweedie")


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
    """x̂_0 = (x_t - √(1-ᾱ_t) ε) / √ᾱ_t (DDIM Eq. 9); numpy or torch alike."""
    return (x_t - (1 - abar_t) ** 0.5 * eps) / abar_t**0.5


def timesteps(t_start: int, steps: int, power: float = 1.0) -> np.ndarray:
    """The ``steps`` timesteps of a run from ``t_start`` towards the clean sample.

    t_i = round(t_start · (1 − i/steps)^power), i = 0 … steps−1; ``power`` < 1 spends more of the
    steps at high noise, 1 is uniform spacing.

    Returns:
        (steps,) int64, strictly decreasing, first ``t_start``; each step jumps to the next entry,
        the last one to the clean sample.
    """
    if not isinstance(steps, int | np.integer) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not isinstance(t_start, int | np.integer) or t_start < 1:
        raise ValueError(f"t_start must be an integer >= 1, got {t_start!r}")
    if not 0 < power <= 4:
        raise ValueError(f"spacing power must be in (0, 4], got {power}")
    ts = np.round(t_start * (1 - np.arange(steps) / steps) ** power).astype(np.int64)
    if np.any(np.diff(ts) >= 0) or ts[-1] < 1:
        raise ValueError(f"{steps} steps do not fit below t_start {t_start} (spacing power {power}): use fewer steps")
    return ts


@dataclass(frozen=True)
class SolverTables:
    """Per-step coefficients of a run (arrays of shape (steps,), float64); see module docstring."""

    t: np.ndarray  # t_i, the network's timestep input
    alpha: np.ndarray  # √ᾱ_{t_i}
    a: np.ndarray  # σ_next / σ_now
    b: np.ndarray  # α_next (1 − e^{−h})
    c_now: np.ndarray  # weight of x̂₀_i in D
    c_prev: np.ndarray  # weight of x̂₀_{i−1} in D

    @property
    def steps(self) -> int:
        return int(self.t.shape[0])


def solver_tables(abar_table: np.ndarray, ts: np.ndarray, solver: str = "dpm2m") -> SolverTables:
    """Tabulate a run over timesteps ``ts`` (from :func:`timesteps`) for ``solver`` in SOLVERS."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    abar = abar_table[ts]
    abar_next = np.append(abar_table[ts[1:]], 1.0)
    alpha, sigma = np.sqrt(abar), np.sqrt(1 - abar)
    alpha_next, sigma_next = np.sqrt(abar_next), np.sqrt(1 - abar_next)
    lam = np.log(alpha / sigma)
    with np.errstate(divide="ignore"):
        exp_neg_h = np.where(sigma_next > 0, (alpha * sigma_next) / (sigma * np.maximum(alpha_next, 1e-300)), 0.0)
    a = sigma_next / sigma
    b = alpha_next * (1 - exp_neg_h)
    if solver == "tweedie":
        a, b = np.zeros_like(a), alpha_next
    c_now, c_prev = np.ones_like(a), np.zeros_like(a)
    if solver == "dpm2m":
        for i in range(1, len(ts) - 1):  # first and last steps stay first order
            h = np.log(alpha_next[i] / sigma_next[i]) - lam[i]
            q = (lam[i] - lam[i - 1]) / h
            c_now[i], c_prev[i] = 1 + 1 / (2 * q), -1 / (2 * q)
    return SolverTables(t=ts.astype(np.float64), alpha=alpha, a=a, b=b, c_now=c_now, c_prev=c_prev)
