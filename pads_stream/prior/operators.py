"""Forward operators f of the inverse problems y = f(x) + n that posterior sampling solves.

An operator is any object with a ``residual(x0)`` method: given a batch of clean-pose
estimates x̂₀ (torch, (B, 17, 3), pelvis-relative, camera frame, metres) it returns the
weighted residual W·(y − f(x̂₀)) as a (B, ...) tensor, differentiable in ``x0``. The sampler
takes the per-sample L2 norm of it and steps against its gradient. Nothing else is required,
so a new task is a new small class. Worked example — a depth sensor that measures each joint's
distance to the camera, known root ``T`` (B, 3)::

    class JointDepth:
        def __init__(self, depth, root):      # depth (B, 17) metres
            self.depth, self.root = depth, root
        def residual(self, x0):
            return self.depth - (x0 + self.root[:, None]).norm(dim=-1)

    model = pads_stream.load_model(backend="torch")
    x = model.solve(JointDepth(depth, root), n=len(depth), steps=20)

Operators here: :class:`Projection` (estimation), :class:`Rig` (estimation from several
calibrated views) and :class:`Identity` (denoising; completion weights it by the observed-joint
mask); generation uses no operator. An operator that an
exported graph runs also needs a record in :data:`pads_stream.runtime.stepgraph.TASKS` (its bound
inputs are its constructor's keyword arguments).
"""

from __future__ import annotations

from typing import Protocol

import torch


class ForwardOperator(Protocol):
    """What the sampler needs of a task: the weighted residual of a clean-pose estimate."""

    def residual(self, x0: torch.Tensor) -> torch.Tensor:
        """(B, 17, 3) metres -> (B, ...) weighted residual W·(y − f(x0))."""
        ...


class Projection:
    """Perspective projection with known root: f(x) = π(x + T).

    The residual is taken in normalised image coordinates (K⁻¹ applied to the keypoints) and
    multiplied by the root depth T_z, so it reads as metres at the person's distance: the
    guidance strength then depends neither on the camera's resolution nor on how far away the
    person stands.

    Args:
        rays: (B, 17, 2) observed keypoints as K⁻¹[u, v, 1] (x/z, y/z), dimensionless.
        root: (B, 3) pelvis position T, camera frame, metres.
        weights: (B, 17) per-joint weights (the 2D confidences; 0 = missing).
    """

    def __init__(self, rays: torch.Tensor, root: torch.Tensor, weights: torch.Tensor):
        self.rays, self.root = rays, root
        self.weights = weights * root[:, 2:3]  # (B, 17) confidence x depth (m)

    def residual(self, x0: torch.Tensor) -> torch.Tensor:
        p = x0 + self.root[:, None, :]  # (B, 17, 3) camera frame
        uv = p[..., :2] / p[..., 2:3].clamp_min(1e-3)  # (B, 17, 2)
        return self.weights[..., None] * (self.rays - uv)


class Identity:
    """Denoising: f(x) = x. ``y`` (B, 17, 3) metres, ``weights`` (B, 17)."""

    def __init__(self, y: torch.Tensor, weights: torch.Tensor):
        self.y, self.weights = y, weights

    def residual(self, x0: torch.Tensor) -> torch.Tensor:
        return self.weights[..., None] * (self.y - x0)


class Rig:
    """Several calibrated views: the weighted distances of every joint from its rays in every
    view, the root re-fitted in closed form for each x̂₀ (:mod:`pads_stream.geometry.multiview`).

    The summed squared distances Σ_v w_vj² ‖M_vj (p_j − q_vj)‖² of p_j = x̂₀_j + T are, per joint,
    (p_j − m_j)ᵀ S_j (p_j − m_j) + k_j; the residual is [S_j^½ (p_j − m_j); √k_j], whose squared
    norm is that sum, so the inputs' shapes do not depend on the number of views. The root
    T = offset − solve · Σ_j S_j x̂₀_j minimises it for the current pose; its dependence on x̂₀ is
    part of the gradient. All in the sampling frame (a camera's rotation about an origin near
    the person), metres.

    Args:
        sqrt_s: (B, 17, 3, 3) S_j^½. centre: (B, 17, 3) m_j. slack: (B, 17) √k_j.
        root_solve: (B, 3, 3) (Σ_j S_j)⁻¹. root_offset: (B, 3) (Σ_j S_j)⁻¹ Σ_j S_j m_j.
    """

    def __init__(self, sqrt_s: torch.Tensor, centre: torch.Tensor, slack: torch.Tensor, root_solve: torch.Tensor,
                 root_offset: torch.Tensor):  # fmt: skip
        self.sqrt_s, self.centre, self.slack = sqrt_s, centre, slack
        self.s = sqrt_s @ sqrt_s
        self.root_solve, self.root_offset = root_solve, root_offset

    def residual(self, x0: torch.Tensor) -> torch.Tensor:
        pull = (self.s @ x0[..., None]).sum(dim=1)  # (B, 3, 1) Σ_j S_j x_j
        root = self.root_offset - (self.root_solve @ pull)[..., 0]  # (B, 3)
        d = x0 + root[:, None, :] - self.centre  # (B, 17, 3)
        r = (self.sqrt_s @ d[..., None])[..., 0]  # (B, 17, 3)
        return torch.cat([r.flatten(1), self.slack], dim=1)
