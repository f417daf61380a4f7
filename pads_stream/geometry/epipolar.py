"""Two-view and one-view geometry for calibrating a rig from people: the essential matrix of a camera
pair from joint correspondences, its decomposition, triangulation of points, and a camera placed
on known points (PnP).

Coordinates are normalised image coordinates (K⁻¹[u, v, 1]: x/z, y/z of the camera frame, OpenCV
axes); a camera is (R, t) with X_cam = R · X_ref + t in a reference frame of arbitrary scale.
Errors are stated in pixels through a focal length ``focal_px``. Plain numpy.
"""

from __future__ import annotations

import numpy as np

CAUCHY_PX = 4.0  # the robust loss's scale, pixels (detector noise is ~5 px; displaced joints 20-60 px)


def skew(v: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3, 3) cross-product matrices [v]×."""
    z = np.zeros(v.shape[:-1])
    return np.stack([np.stack([z, -v[..., 2], v[..., 1]], -1), np.stack([v[..., 2], z, -v[..., 0]], -1),
                     np.stack([-v[..., 1], v[..., 0], z], -1)], -2)  # fmt: skip


def rotation_from_vector(w: np.ndarray) -> np.ndarray:
    """Rodrigues: (..., 3) axis × angle (radians) -> (..., 3, 3) rotations."""
    theta = np.linalg.norm(w, axis=-1, keepdims=True)[..., None]
    k = skew(w / np.maximum(theta[..., 0], 1e-12))
    eye = np.broadcast_to(np.eye(3), k.shape)
    return eye + np.sin(theta) * k + (1 - np.cos(theta)) * (k @ k)


def rotation_angle_deg(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (...) the rotation's angle, degrees."""
    c = (np.trace(R, axis1=-2, axis2=-1) - 1) / 2
    return np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))


def _eight_point(x1: np.ndarray, x2: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """The (weighted) linear essential matrix of x2ᵀ E x1 = 0 from (N, 2) normalised points, N >= 8,
    with singular values forced to (1, 1, 0)."""
    a = np.concatenate([x2[:, :1] * x1, x2[:, :1], x2[:, 1:] * x1, x2[:, 1:], x1, np.ones((len(x1), 1))], 1)
    if w is not None:
        a = a * w[:, None]
    _, _, vt = np.linalg.svd(a, full_matrices=False)
    u, _, vt2 = np.linalg.svd(vt[-1].reshape(3, 3))
    return u @ np.diag([1.0, 1.0, 0.0]) @ vt2


def _sampson_parts(E: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(algebraic residual x2ᵀ E x1, the norm of its gradient) per correspondence, normalised units."""
    h1 = np.concatenate([x1, np.ones((len(x1), 1))], 1)
    h2 = np.concatenate([x2, np.ones((len(x2), 1))], 1)
    e1, e2 = h1 @ E.T, h2 @ E
    num = np.einsum("ni,ni->n", h2, e1)
    return num, np.sqrt(np.maximum(e1[:, 0] ** 2 + e1[:, 1] ** 2 + e2[:, 0] ** 2 + e2[:, 1] ** 2, 1e-18))


def sampson_px(E: np.ndarray, x1: np.ndarray, x2: np.ndarray, focal_px: float) -> np.ndarray:
    """The Sampson distance of each correspondence to E, pixels (first-order reprojection error)."""
    num, den = _sampson_parts(E, x1, x2)
    return focal_px * np.abs(num) / den


def essential(x1: np.ndarray, x2: np.ndarray, focal_px: float, rng: np.random.Generator,
              iterations: int = 400, threshold_px: float = 3 * CAUCHY_PX) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """A robust essential matrix from (N, 2) normalised correspondences (N >= 8).

    Minimal 8-point samples scored by MSAC (squared Sampson error truncated at ``threshold_px``), the
    best refined by iteratively reweighted least squares on every correspondence with Cauchy weights
    of scale :data:`CAUCHY_PX` (a σ-consensus in the spirit of MAGSAC: no single threshold decides).

    Returns:
        (E (3, 3), weights (N,) in [0, 1]: each correspondence's final Cauchy weight).
    """
    n = len(x1)
    if n < 8:
        raise ValueError(f"an essential matrix needs 8 correspondences, got {n}")
    best, best_cost = None, np.inf
    for _ in range(iterations):
        pick = rng.choice(n, 8, replace=False)
        E = _eight_point(x1[pick], x2[pick])
        cost = (np.minimum(sampson_px(E, x1, x2, focal_px), threshold_px) ** 2).sum()
        if cost < best_cost:
            best, best_cost = E, cost
    E = refit(best, x1, x2, focal_px)
    d = sampson_px(E, x1, x2, focal_px)
    return E, 1.0 / (1.0 + (d / CAUCHY_PX) ** 2)


def refit(E: np.ndarray, x1: np.ndarray, x2: np.ndarray, focal_px: float, rounds: int = 20) -> np.ndarray:
    """E refined on every correspondence by iteratively reweighted least squares: rows scaled to
    Sampson distances, Cauchy weights of scale :data:`CAUCHY_PX`."""
    for _ in range(rounds):
        num, den = _sampson_parts(E, x1, x2)
        w = 1.0 / (1.0 + (focal_px * np.abs(num) / den / CAUCHY_PX) ** 2)
        E_new = _eight_point(x1, x2, np.sqrt(w) / den)
        done = min(np.abs(E_new - E).max(), np.abs(E_new + E).max()) < 1e-9
        E = E_new
        if done:
            break
    return E


def triangulate(R: np.ndarray, t: np.ndarray, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Points nearest to their weighted rays: cameras R (V, 3, 3), t (V, 3); x (V, N, 2) normalised
    points, w (V, N) weights (0: not seen) -> (N, 3) in the reference frame (NaN where under two views)."""
    d = np.einsum("vji,vnj->vni", R, np.concatenate([x, np.ones_like(x[..., :1])], -1))  # R^T [x, 1]
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    c = -np.einsum("vji,vj->vi", R, t)  # centres
    proj = np.eye(3) - d[..., :, None] * d[..., None, :]  # (V, N, 3, 3)
    a = np.einsum("vn,vnij->nij", w, proj)
    b = np.einsum("vn,vnij,vj->ni", w, proj, c)
    seen = (w > 0).sum(axis=0) >= 2
    out = np.full((x.shape[1], 3), np.nan)
    ok = seen & (np.linalg.cond(np.where(seen[:, None, None], a, np.eye(3))) < 1e8)
    out[ok] = np.linalg.solve(a[ok], b[ok][..., None])[..., 0]
    return out


def decompose(E: np.ndarray, x1: np.ndarray, x2: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The relative pose (R, t) with |t| = 1 of camera 2 (X₂ = R X₁ + t) among E's four that puts the
    most weight of correspondences in front of both cameras."""
    u, _, vt = np.linalg.svd(E)
    if np.linalg.det(u) < 0:
        u = -u
    if np.linalg.det(vt) < 0:
        vt = -vt
    W = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    best, best_score = None, -1.0
    for R in (u @ W @ vt, u @ W.T @ vt):
        for t in (u[:, 2], -u[:, 2]):
            Rs, ts = np.stack([np.eye(3), R]), np.stack([np.zeros(3), t])
            p = triangulate(Rs, ts, np.stack([x1, x2]), np.stack([w, w]))
            z1, z2 = p[:, 2], (p @ R.T + t)[:, 2]
            score = np.sum(w * ((z1 > 0) & (z2 > 0)))
            if score > best_score:
                best, best_score = (R, t), score
    return best


def pnp(X: np.ndarray, x: np.ndarray, w: np.ndarray, focal_px: float, rng: np.random.Generator,
        iterations: int = 300) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """A camera (R, t) from reference points X (N, 3) seen at normalised x (N, 2) with weights w (N,):
    the linear DLT on 6-point samples scored by truncated reprojection error, then refined with Cauchy
    weights by Gauss-Newton on the reprojection error (pixels through ``focal_px``)."""
    good = np.flatnonzero((w > 0) & np.isfinite(X).all(axis=1))
    X, x, w = X[good], x[good], w[good]
    if len(X) < 6:
        raise ValueError(f"placing a camera needs 6 points, got {len(X)}")

    def dlt(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Xh = np.concatenate([X[idx], np.ones((len(idx), 1))], 1)
        z = np.zeros_like(Xh)
        a = np.concatenate([np.concatenate([Xh, z, -x[idx, :1] * Xh], 1), np.concatenate([z, Xh, -x[idx, 1:] * Xh], 1)])
        P = np.linalg.svd(a)[2][-1].reshape(3, 4)
        u, s, vt = np.linalg.svd(P[:, :3])
        R = u @ vt
        sign = np.sign(np.linalg.det(R))
        R, scale = R * sign, sign * s.mean()
        t = P[:, 3] / scale
        if np.median((X[idx] @ R.T + t)[:, 2]) < 0:  # the points must lie in front
            R, t = -R, -t  # never a rotation: rejected by the caller's cost
        return R, t

    def cost(R: np.ndarray, t: np.ndarray) -> np.ndarray:
        p = X @ R.T + t
        e = focal_px * np.linalg.norm(p[:, :2] / np.maximum(p[:, 2:], 1e-9) - x, axis=1)
        return np.where(p[:, 2] > 0, e, 1e3)

    best, best_cost = None, np.inf
    for _ in range(iterations):
        R, t = dlt(rng.choice(len(X), 6, replace=False))
        if np.linalg.det(R) < 0:
            continue
        c = (np.minimum(cost(R, t), 3 * CAUCHY_PX) ** 2).sum()
        if c < best_cost:
            best, best_cost = (R, t), c
    if best is None:
        raise ValueError("no camera placement was found from these points")
    R, t = best
    for _ in range(15):  # Gauss-Newton on the Cauchy-weighted reprojection error
        p = X @ R.T + t
        z = np.maximum(p[:, 2], 1e-9)
        r = focal_px * (p[:, :2] / z[:, None] - x)
        wt = w / (1.0 + (np.linalg.norm(r, axis=1) / CAUCHY_PX) ** 2)
        dpi = focal_px * np.stack([np.stack([1 / z, 0 * z, -p[:, 0] / z**2], -1),
                                   np.stack([0 * z, 1 / z, -p[:, 1] / z**2], -1)], 1)  # fmt: skip
        J = np.concatenate([dpi @ -skew(X @ R.T), dpi], 2)  # (N, 2, 6): left rotation increment, t
        H = np.einsum("n,nai,naj->ij", wt, J, J) + 1e-9 * np.eye(6)
        g = np.einsum("n,nai,na->i", wt, J, r)
        step = -np.linalg.solve(H, g)
        R, t = rotation_from_vector(step[:3]) @ R, t + step[3:]
        if np.abs(step).max() < 1e-10:
            break
    return R, t


def pair_poses(y: np.ndarray, w: np.ndarray, focal: np.ndarray, rng: np.random.Generator
                ) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """Each camera pair's relative pose from a robust essential matrix: {(u, v): (R, t)} with
    X_v = R X_u + t, |t| = 1, both orders, for the pairs sharing 50 or more seen joints (y (V, P, 2)
    normalised, w (V, P))."""
    out = {}
    for u in range(len(y)):
        for v in range(u + 1, len(y)):
            both = np.flatnonzero((w[u] > 0) & (w[v] > 0))
            if len(both) < 50:
                continue
            E, _ = essential(y[u, both], y[v, both], focal[[u, v]].mean(), rng)
            R, t = decompose(E, y[u, both], y[v, both], np.minimum(w[u, both], w[v, both]))
            out[u, v], out[v, u] = (R, t), (R.T, -R.T @ t)
    return out


def poses_from_reference(pairs: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]], ref: int, y: np.ndarray,
                         w: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:  # fmt: skip
    """Every camera (R (V, 3, 3), t (V, 3)) in camera 0's frame from its pair with camera ``ref``, the
    pairs' scales made one by their triangulated depths in ``ref``; None when a camera has no pair
    with ``ref``."""
    V = len(y)
    others = [v for v in range(V) if v != ref]
    if any((ref, v) not in pairs for v in others):
        return None
    R, t = np.repeat(np.eye(3)[None], V, 0), np.zeros((V, 3))
    for v in others:
        R[v], t[v] = pairs[ref, v]
    depth = {}
    for v in others:
        X = triangulate(R[[ref, v]], t[[ref, v]], y[[ref, v]], w[[ref, v]])
        depth[v] = np.where(X[:, 2] > 0, X[:, 2], np.nan)
    for v in others[1:]:
        ratio = depth[others[0]] / depth[v]
        ratio = ratio[np.isfinite(ratio)]
        t[v] *= np.median(ratio) if len(ratio) else 1.0
    R0 = R @ R[0].T  # X_v = R_v R_0ᵀ (X_0 - t_0) + t_v
    return R0, t - np.einsum("vij,j->vi", R0, t[0])


def epipolar_cost(E: np.ndarray, y0: np.ndarray, w0: np.ndarray, yv: np.ndarray, wv: np.ndarray,
                  focal_px: float) -> float:  # fmt: skip
    """The Cauchy cost of the correspondences seen by both views under E re-fitted to them, their
    mean weighted by both views' weights (a read that fades out, near a track's end, counts less)."""
    both = np.flatnonzero((w0 > 0) & (wv > 0))
    if len(both) < 50:
        return np.inf
    E = refit(E, y0[both], yv[both], focal_px, rounds=3)
    d = sampson_px(E, y0[both], yv[both], focal_px)
    return float(np.average(np.log1p((d / CAUCHY_PX) ** 2), weights=w0[both] * wv[both]))
