"""The One Euro filter (Casiez, Roussel & Vogel, CHI 2012) for streams of 3D joints.

An adaptive low-pass filter per coordinate: its cutoff rises with the signal's speed, so slow
motion is smoothed (less jitter) and fast motion passes with little lag. Units: positions in
metres, times in seconds, cutoffs in Hz, ``beta`` in Hz per (m/s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroConfig:
    """Filter parameters (node config ``one_euro_*``)."""

    min_cutoff: float = 1.0  # Hz, the cutoff at rest: lower = smoother, more lag
    beta: float = 0.5  # Hz per m/s: how fast the cutoff rises with speed
    d_cutoff: float = 1.0  # Hz, the cutoff of the speed estimate


@dataclass
class OneEuroState:
    """The filter's memory for one track: last output (J, 3) m, its speed (J, 3) m/s, time s."""

    x: np.ndarray
    dx: np.ndarray
    t: float


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def one_euro(
    state: OneEuroState | None, x: np.ndarray, t: float, cfg: OneEuroConfig
) -> tuple[np.ndarray, OneEuroState]:
    """Filter one sample ``x`` (J, 3) metres taken at ``t`` seconds; returns (output, new state).

    The first sample of a track, or one not after the previous, passes unchanged (and restarts).
    """
    if state is None or t <= state.t:
        return x, OneEuroState(x.copy(), np.zeros_like(x), t)
    dt = t - state.t
    dx = (x - state.x) / dt
    dx_hat = state.dx + _alpha(cfg.d_cutoff, dt) * (dx - state.dx)
    cutoff = cfg.min_cutoff + cfg.beta * np.abs(dx_hat)
    out = state.x + _alpha(cutoff, dt) * (x - state.x)
    return out, OneEuroState(out, dx_hat, t)
