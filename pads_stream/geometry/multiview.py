"""Several calibrated views of one person: rays in one frame, triangulation, and the per-joint
quadratic forms that the rig's forward operator reads (:class:`pads_stream.prior.operators.Rig`).

A joint j seen in view v lies on the ray from the camera centre c_v along the unit direction
e_vj. Its squared distance from a point p is ‖M_vj (p − q_vj)‖² with M = I − e eᵀ (the
projector across the ray) and q_vj = M_vj c_v the ray's point closest to the frame's origin.
Summed over the views with weights w_vj² this is, per joint, one quadratic

    Σ_v w_vj² ‖M_vj (p − q_vj)‖² = (p − m_j)ᵀ S_j (p − m_j) + k_j,
    S_j = Σ_v w_vj² M_vj,   S_j m_j = Σ_v w_vj² q_vj,   k_j ≥ 0 the views' disagreement,

so the operator's inputs have the same shape whatever the number of views. Frames: the
"sampling frame" is a camera's rotation (the prior's own distribution: it was trained on
camera-frame poses) about an origin near the person (the triangulated pelvis), so that every
term stays of body size in float32. Units: metres; weights are dimensionless.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .camera import unit_rays
from .skeleton import H36M_PARENTS, NUM_JOINTS, PELVIS

# An eigenvalue of S_j below this share of its trace counts as zero: a joint seen in one view, or
# by two cameras whose rays barely cross. Triangulation leaves those directions to the parent joint
# (a weighted pull towards it instead, 1e-4 to 6e-3 of the trace, shortened the bones and the
# sampler started there ended 3-4 mm worse on two-view validation persons).
RANK_TOL = 1e-3
TRIANGULATION_TRUST = 0.3


@dataclass(frozen=True)
class Rays:
    """The rays of one person's joints in every view, in the sampling frame.

    Attributes:
        foot: (V, N, 17, 3) each ray's point closest to the origin q_vj, metres.
        direction: (V, N, 17, 3) unit directions e_vj.
        weight: (V, N, 17) w_vj (0 where the joint is unseen in that view).
    """

    foot: np.ndarray
    direction: np.ndarray
    weight: np.ndarray


@dataclass(frozen=True)
class JointForms:
    """Per joint, the views' summed squared ray distances as (p − m)ᵀ S (p − m) + k.

    Attributes:
        s: (N, 17, 3, 3) S_j. sqrt_s: (N, 17, 3, 3) S_j^½. centre: (N, 17, 3) m_j (on the ray's
        line for a joint seen once; the origin for one never seen), metres. slack: (N, 17) √k_j,
        metres. rank: (N, 17) rank of S_j (0 unseen, 2 one view, 3 triangulated).
    """

    s: np.ndarray
    sqrt_s: np.ndarray
    centre: np.ndarray
    slack: np.ndarray
    rank: np.ndarray


def rays_in_frame(rays: np.ndarray, R: np.ndarray, t: np.ndarray, weight: np.ndarray, R_ref: np.ndarray,
                  origin: np.ndarray) -> Rays:  # fmt: skip
    """Every view's rays in the sampling frame y = R_ref (X_world − origin).

    Args:
        rays: (V, N, 17, 2) K⁻¹[u, v, 1] of each view's keypoints (x/z, y/z), that view's camera frame.
        R: (V, N, 3, 3), t: (V, N, 3) extrinsics, X_cam = R · X_world + t (metres).
        weight: (V, N, 17) per-view joint weights (0 = unseen there).
        R_ref: (N, 3, 3) the sampling frame's rotation from the world. origin: (N, 3) world metres.
    """
    d_world = np.einsum("vnji,vnkj->vnki", R, unit_rays(rays))  # Rᵀ d
    e = np.einsum("nij,vnkj->vnki", R_ref, d_world)
    centre_world = -np.einsum("vnji,vnj->vni", R, t)  # C = −Rᵀ t
    c = np.einsum("nij,vnj->vni", R_ref, centre_world - origin[None])[:, :, None, :]  # (V, N, 1, 3)
    foot = c - np.sum(c * e, axis=-1, keepdims=True) * e
    w = np.where(np.isfinite(foot).all(axis=-1), weight, 0.0)
    return Rays(np.where(w[..., None] > 0, foot, 0.0), np.where(w[..., None] > 0, e, 0.0), w)


def joint_forms(r: Rays) -> JointForms:
    """The per-joint quadratic of the weighted squared ray distances (module docstring)."""
    w2 = r.weight**2
    eye = np.eye(3)
    m = eye - r.direction[..., :, None] * r.direction[..., None, :]  # (V, N, 17, 3, 3)
    s = np.einsum("vnj,vnjab->njab", w2, m)
    b = np.einsum("vnj,vnja->nja", w2, r.foot)  # Σ w² M q = Σ w² q  (M q = q)
    k_raw = np.einsum("vnj,vnj->nj", w2, np.sum(r.foot**2, axis=-1))
    lam, u = np.linalg.eigh(s)
    keep = lam > RANK_TOL * np.maximum(lam.sum(axis=-1, keepdims=True), 1e-12)
    inv = np.where(keep, 1.0 / np.where(keep, lam, 1.0), 0.0)
    centre = np.einsum("njab,njb,njcb,njc->nja", u, inv, u, b)
    sqrt_s = np.einsum("njab,njb,njcb->njac", u, np.sqrt(np.clip(lam, 0.0, None)), u)
    slack = np.sqrt(np.clip(k_raw - np.sum(centre * b, axis=-1), 0.0, None))
    return JointForms(s, sqrt_s, centre, slack, keep.sum(axis=-1))


def root_solve(forms: JointForms) -> tuple[np.ndarray, np.ndarray]:
    """The closed-form root of a pelvis-relative pose x: T(x) = offset − solve · Σ_j S_j x_j, the
    translation that minimises the summed ray distances (the operator re-fits it at every step).

    Returns:
        (solve (N, 3, 3) = (Σ_j S_j)⁻¹, offset (N, 3) = (Σ_j S_j)⁻¹ Σ_j S_j m_j metres).
    """
    a = forms.s.sum(axis=1)
    a = a + 1e-9 * np.trace(a, axis1=-2, axis2=-1)[:, None, None] * np.eye(3)
    solve = np.linalg.inv(a)
    return solve, np.einsum("nab,njbc,njc->na", solve, forms.s, forms.centre)


def graph_inputs(forms: JointForms) -> dict[str, np.ndarray]:
    """The ``rig`` step graph's bound inputs (:data:`pads_stream.runtime.stepgraph.TASKS`), per person."""
    solve, offset = root_solve(forms)
    return {"sqrt_s": forms.sqrt_s, "centre": forms.centre, "slack": forms.slack, "root_solve": solve,
            "root_offset": offset}  # fmt: skip


def fitted_root(x: np.ndarray, forms: JointForms) -> np.ndarray:
    """T(x) of :func:`root_solve` for (N, 17, 3) pelvis-relative poses, metres -> (N, 3)."""
    solve, offset = root_solve(forms)
    return offset - np.einsum("nab,njbc,njc->na", solve, forms.s, x)


def triangulate(r: Rays, trust: float = TRIANGULATION_TRUST) -> np.ndarray:
    """Each joint's position from its rays, in the sampling frame (N, 17, 3) metres: the start of
    the rig's sampler and the DLT of the evaluation.

    A view whose weight for a joint is below ``trust`` times the best view's is left out (a
    detector's low confidence marks a displaced joint, which one other view cannot outvote).
    From the views kept, a joint is p = a + S_j⁺ (Σ_v w² q_vj − S_j a): the weighted least-squares
    point along the directions the views constrain, the anchor a's coordinate along those they
    leave open (S_j's eigenvalues below ``RANK_TOL`` of its trace: one view's ray; two cameras
    facing each other across the person, whose rays barely cross). The anchor is the pelvis (held-out
    S8 in the S9 rig through the sampler: the facing pair 39.5 mm against 41.4 with the parent as
    anchor, the other views within 0.3 mm), for the
    pelvis the point nearest to every ray (the person as one point); a joint no view sees is at its
    parent. Parents come first in H36M order, so one pass fills the tree. The result does not
    depend on where the frame's origin is.
    """
    best = r.weight.max(axis=0, keepdims=True)
    kept = Rays(r.foot, r.direction, np.where(r.weight >= trust * best, r.weight, 0.0))
    forms = joint_forms(kept)
    b = np.einsum("vnj,vnja->nja", kept.weight**2, kept.foot)  # Σ_v w² q
    lam, u = np.linalg.eigh(forms.s)
    keep = lam > RANK_TOL * np.maximum(lam.sum(axis=-1, keepdims=True), 1e-12)
    pinv = np.einsum("njab,njb,njcb->njac", u, np.where(keep, 1.0 / np.where(keep, lam, 1.0), 0.0), u)
    _, offset = root_solve(forms)
    x = np.zeros((forms.s.shape[0], NUM_JOINTS, 3))
    for j in range(NUM_JOINTS):
        # what the views leave open: a seen joint at the pelvis's coordinate there, an unseen one at its parent
        anchor = offset if j == PELVIS else np.where((forms.rank[:, j] > 0)[:, None], x[:, PELVIS],
                                                     x[:, H36M_PARENTS[j]])  # fmt: skip
        pull = b[:, j] - np.einsum("nab,nb->na", forms.s[:, j], anchor)
        x[:, j] = anchor + np.einsum("nab,nb->na", pinv[:, j], pull)
    return x


def pull_to_rays(p: np.ndarray, r: Rays) -> np.ndarray:
    """Move each joint towards its rays: argmin_p' ‖p' − p‖² + Σ_v a_vj ‖M_vj (p' − q_vj)‖², with
    the gains a_vj in ``r.weight`` (large: onto the triangulation; a joint seen once: onto its ray).

    Args:
        p: (N, 17, 3) absolute joints in the sampling frame, metres.

    Returns:
        (N, 17, 3) metres.
    """
    m = np.eye(3) - r.direction[..., :, None] * r.direction[..., None, :]
    a = np.eye(3) + np.einsum("vnj,vnjab->njab", r.weight, m)
    b = p + np.einsum("vnj,vnja->nja", r.weight, r.foot)
    return np.linalg.solve(a, b[..., None])[..., 0]


def ray_noise(r: Rays) -> np.ndarray:
    """Each person's 2D noise as a distance across the rays (N,) metres: how far the views' rays
    miss the triangulated joints, once each view's common offset is taken out (a view whose
    extrinsics are a little off shifts all its rays alike, which moves the person but hardly its
    pose), √(Σ ‖residual‖² / Σ_j (2 V_j − 3)) over joints seen in V_j ≥ 2 views with unit weights
    (each view measures 2 coordinates, a point has 3). NaN where no joint is seen twice."""
    seen = r.weight > 0
    unit = Rays(r.foot, r.direction, seen.astype(np.float64))
    p = triangulate(unit, trust=0.0)
    m = np.eye(3) - r.direction[..., :, None] * r.direction[..., None, :]  # (V, N, 17, 3, 3)
    residual = np.einsum("vnjab,vnjb->vnja", m, p[None] - r.foot)
    views = seen.sum(axis=0)  # (N, 17)
    counted = seen & ((views >= 2) & (joint_forms(unit).rank == 3))[None]
    offset = (residual * counted[..., None]).sum(axis=2) / np.maximum(counted.sum(axis=2), 1)[..., None]
    residual = (residual - np.einsum("vnjab,vnb->vnja", m, offset)) * counted[..., None]
    dof = np.where(counted.any(axis=0), 2 * views - 3, 0).sum(axis=1) - 3 * (counted.sum(axis=2) > 3).sum(axis=0)
    total = (residual**2).sum(axis=(0, 2, 3))
    return np.where(dof > 0, np.sqrt(total / np.maximum(dof, 1)), np.nan)
