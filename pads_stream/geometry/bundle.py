"""Bundle adjustment of a rig and the points it sees, clocks included: Levenberg-Marquardt on the
Cauchy-weighted reprojection error, with the points eliminated (the Schur complement), so each
iteration solves one small system of the cameras' parameters.

Camera 0 is the reference: its pose (X_cam = X_ref) and clock are fixed; every other camera has a
rotation, a translation and, when its clock is free, an offset (ms) and a drift (ppm) of its clock
against camera 0's. Each observation is a point's normalised image coordinates (K⁻¹[u, v, 1]) read
from that camera's 2D track at the camera's own time for the point's instant, so it moves with
the clock parameters; its rate of change (per second) gives their derivatives. Residuals are in
pixels (through each camera's focal lengths). Plain numpy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .epipolar import CAUCHY_PX, rotation_from_vector, skew


@dataclass
class Observations:
    """What the cameras saw: O observations of points by cameras.

    cam (O,) camera index; point (O,) point index; y (O, 2) normalised coordinates; w (O,) weights
    (0: absent); rate (O, 2) dy/dt per second of the camera's track there (for the clock terms);
    since (O,) seconds from the camera's clock epoch to the observation (for the drift term).
    """

    cam: np.ndarray
    point: np.ndarray
    y: np.ndarray
    w: np.ndarray
    rate: np.ndarray
    since: np.ndarray


@dataclass
class Bundle:
    """A solution: R (V, 3, 3), t (V, 3) with X_cam = R X_ref + t; X (P, 3) points in the reference
    frame (camera 0's); offset_ms (V,), drift_ppm (V,) of each camera's clock; residual_px (O,)."""

    R: np.ndarray
    t: np.ndarray
    X: np.ndarray
    offset_ms: np.ndarray
    drift_ppm: np.ndarray
    residual_px: np.ndarray


def _residuals(R, t, X, obs: Observations, focal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(r (O, 2) px, p (O, 3) camera-frame points)."""
    p = np.einsum("oij,oj->oi", R[obs.cam], X[obs.point]) + t[obs.cam]
    z = np.where(np.abs(p[:, 2]) > 1e-9, p[:, 2], 1e-9)
    return focal[obs.cam] * (p[:, :2] / z[:, None] - obs.y), p


def robust_cost(residual_px: np.ndarray, w: np.ndarray) -> float:
    """The weighted Cauchy cost Σ w · log(1 + (|r| / CAUCHY_PX)²) of residual lengths (O,) pixels."""
    return float(np.sum(w * np.log1p((residual_px / CAUCHY_PX) ** 2)))


def _sum_by(index: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """(n, ...) sums of ``values`` (O, ...) grouped by ``index`` (O,) in [0, n) (``np.add.at``, faster)."""
    flat = values.reshape(len(values), -1)
    out = np.stack([np.bincount(index, weights=flat[:, c], minlength=n) for c in range(flat.shape[1])], axis=1)
    return out.reshape((n, *values.shape[1:]))


def adjust(R: np.ndarray, t: np.ndarray, X: np.ndarray, focal: np.ndarray,
           observe: Callable[[np.ndarray, np.ndarray], Observations], clock: str = "fixed",
           offset_ms: np.ndarray | None = None, drift_ppm: np.ndarray | None = None,
           iterations: int = 60, fixed: tuple[int, ...] = (), drift_sd_ppm: float = 0.0) -> Bundle:  # fmt: skip
    """Refine cameras 1…V-1 (and their clocks when ``timed``) and every point.

    Args:
        R, t: (V, 3, 3), (V, 3) starting cameras; camera 0's is the reference and stays.
        X: (P, 3) starting points. focal: (V, 2) fx, fy pixels.
        observe: (offset_ms (V,), drift_ppm (V,)) -> :class:`Observations` for those clocks (the same
            O observations in the same order whatever the clocks; absent ones with w = 0).
        clock: ``"fixed"`` (the clocks as given), ``"offset"`` (solve each camera's offset) or
            ``"drift"`` (its offset and drift). offset_ms, drift_ppm: their starting values (default 0).
        fixed: further cameras whose pose stays as given.
        drift_sd_ppm: with ``clock="drift"``, a prior on each drift, N(0, drift_sd_ppm²), weighed against
            the residuals' own noise (0: none): a drift the walk cannot tell from noise stays near 0.
    """
    V, P = len(R), len(X)
    R, t, X = R.copy(), t.copy(), X.copy()
    off = np.zeros(V) if offset_ms is None else offset_ms.astype(float).copy()
    drift = np.zeros(V) if drift_ppm is None else drift_ppm.astype(float).copy()
    if clock not in ("fixed", "offset", "drift"):
        raise ValueError(f"clock must be fixed, offset or drift, got {clock!r}")
    timed = clock != "fixed"
    k = {"fixed": 6, "offset": 7, "drift": 8}[clock]
    free = np.array([v not in (0, *fixed) for v in range(V)])
    obs = observe(off, drift)
    r, p = _residuals(R, t, X, obs, focal)
    # the drift prior in the cost's units: the residuals' noise (px, robust) over the prior's spread
    prior = 0.0
    if clock == "drift" and drift_sd_ppm > 0:
        seen = obs.w > 0
        # a 2D Gaussian residual of σ per axis has a median length of 1.1774 σ
        noise = float(np.median(np.linalg.norm(r[seen], axis=1))) / 1.1774 if seen.any() else 1.0
        prior = noise**2 / CAUCHY_PX**2 / drift_sd_ppm**2
    cost, lam = robust_cost(np.linalg.norm(r, axis=1), obs.w) + prior * float(np.sum(drift**2)), 1e-3
    for _ in range(iterations):
        # Jacobians per observation: points (O, 2, 3), the camera's parameters (O, 2, k)
        z = np.where(np.abs(p[:, 2]) > 1e-9, p[:, 2], 1e-9)
        f = focal[obs.cam]
        dpi = np.zeros((len(z), 2, 3))
        dpi[:, 0, 0], dpi[:, 1, 1] = f[:, 0] / z, f[:, 1] / z
        dpi[:, 0, 2], dpi[:, 1, 2] = -f[:, 0] * p[:, 0] / z**2, -f[:, 1] * p[:, 1] / z**2
        Jp = dpi @ R[obs.cam]
        Jc = np.concatenate([dpi @ -skew(p - t[obs.cam]), dpi], axis=2)
        if timed:  # y is read at τ = T − offset − drift (T − epoch): dr/d offset = f · rate (per ms), …
            dr_off = f * obs.rate * 1e-3
            Jc = np.concatenate([Jc, dr_off[..., None]], axis=2)
            if clock == "drift":
                Jc = np.concatenate([Jc, (dr_off * obs.since[:, None] * 1e-3)[..., None]], axis=2)
        Jc = np.where(free[obs.cam][:, None, None], Jc, 0.0)
        omega = obs.w / (1.0 + np.sum(r * r, axis=1) / CAUCHY_PX**2)  # IRLS weights of the Cauchy loss
        JpT, JcT = Jp.transpose(0, 2, 1), Jc.transpose(0, 2, 1)
        Hp = _sum_by(obs.point, omega[:, None, None] * (JpT @ Jp), P)
        gp = _sum_by(obs.point, omega[:, None] * (JpT @ r[..., None])[..., 0], P)
        Hc = _sum_by(obs.cam, omega[:, None, None] * (JcT @ Jc), V)
        gc = _sum_by(obs.cam, omega[:, None] * (JcT @ r[..., None])[..., 0], V)
        if prior > 0:  # (the normal equations here are the cost's halved and scaled by CAUCHY_PX²)
            Hc[:, 7, 7] += prior * CAUCHY_PX**2
            gc[:, 7] += prior * CAUCHY_PX**2 * drift
        Wp = np.zeros((P, V, k, 3))
        Wp[obs.point, obs.cam] = omega[:, None, None] * (JcT @ Jp)  # (O, k, 3)
        Wf = Wp.reshape(P, V * k, 3)
        while True:
            Hp_d = Hp + lam * (np.einsum("pii->pi", Hp)[..., None] * np.eye(3)) + 1e-9 * np.eye(3)
            Hp_inv = np.linalg.inv(Hp_d)
            Y = Wf @ Hp_inv  # (P, V·k, 3)
            S = np.zeros((V, k, V, k))
            for a in range(V):
                S[a, :, a] = Hc[a] + lam * np.diag(np.diag(Hc[a])) + 1e-9 * np.eye(k)
            S -= (Y.transpose(1, 0, 2).reshape(V * k, -1) @ Wf.transpose(1, 0, 2).reshape(V * k, -1).T).reshape(
                V, k, V, k
            )
            rhs = gc - np.tensordot(Y, gp, axes=([0, 2], [0, 1])).reshape(V, k)
            idx = np.flatnonzero(free)
            S_free = S[idx][:, :, idx].reshape(len(idx) * k, len(idx) * k)
            dc = np.zeros((V, k))
            dc[idx] = -np.linalg.solve(S_free, rhs[idx].reshape(-1)).reshape(len(idx), k)
            dX = -(Hp_inv @ (gp + (Wf.transpose(0, 2, 1) @ dc.reshape(-1)))[..., None])[..., 0]
            dR = rotation_from_vector(dc[:, :3])
            R_n, t_n, X_n = dR @ R, t + dc[:, 3:6], X + dX
            off_n = off + dc[:, 6] if timed else off
            drift_n = drift + dc[:, 7] if clock == "drift" else drift
            obs_n = observe(off_n, drift_n) if timed else obs
            r_n, p_n = _residuals(R_n, t_n, X_n, obs_n, focal)
            cost_n = robust_cost(np.linalg.norm(r_n, axis=1), obs_n.w) + prior * float(np.sum(drift_n**2))
            if cost_n < cost:
                break
            lam *= 10
            if lam > 1e8:
                return Bundle(R, t, X, off, drift, np.linalg.norm(r, axis=1))
        gain = (cost - cost_n) / max(cost, 1e-12)
        R, t, X, off, drift, obs, r, p, cost = R_n, t_n, X_n, off_n, drift_n, obs_n, r_n, p_n, cost_n
        lam = max(lam / 10, 1e-7)
        if gain < 1e-7:
            break
    return Bundle(R, t, X, off, drift, np.linalg.norm(r, axis=1))
