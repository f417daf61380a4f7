"""The network half of a sampler step in torch: x̂₀ and the DPS guidance gradient.

:func:`guided_denoise` is what the torch backend runs and what ``pads-stream export`` traces
into the ONNX step graphs, so every backend computes the same two outputs; the solver update
around them is plain numpy in :mod:`pads_stream.prior.sampler`.
"""

from __future__ import annotations

import numpy as np
import torch

from .operators import ForwardOperator
from .sampler import DenoiseFn
from .schedule import predict_x0

# m²: the squared norm is clamped below this, so ∇‖r‖ is zero (not NaN) where a sample's residual
# vanishes (no weighted joint). A clamp, not "+ ε": the ONNX exporter folds away a tiny addend.
NORM_FLOOR = 1e-20


def guided_denoise(
    net: torch.nn.Module,
    x_t: torch.Tensor,
    t: torch.Tensor,
    alpha: torch.Tensor,
    operator: ForwardOperator | None,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage 1 of the sampler step on (B, 17, 3) normalised poses.

    Args:
        t: (1,) timestep. alpha: (1,) √ᾱ_t.
        operator: the task's residual in metres, or None (unguided: the gradient is zero).
        scale: metres per normalised unit.

    Returns:
        (x̂₀, g): the data prediction and g = ∇_{x_t} Σ_b ‖r_b(x̂₀ · scale)‖, each (B, 17, 3).
    """
    if operator is None:
        with torch.no_grad():
            x0 = predict_x0(x_t, net(x_t, t.expand(x_t.shape[0])), alpha * alpha)
        return x0, torch.zeros_like(x0)
    with torch.enable_grad():
        x_t = x_t.detach().requires_grad_(True)
        eps = net(x_t, t.expand(x_t.shape[0]))
        x0 = predict_x0(x_t, eps, alpha * alpha)
        r = operator.residual(x0 * scale).flatten(1)  # (B, R)
        norm = r.square().sum(dim=1).clamp_min(NORM_FLOOR).sqrt()  # (B,) per-sample norm
        (grad,) = torch.autograd.grad(norm.sum(), x_t)
    return x0.detach(), grad


def torch_denoiser(net: torch.nn.Module, operator: ForwardOperator | None, scale: float) -> DenoiseFn:
    """:func:`guided_denoise` with the task bound, on numpy arrays (the torch backend)."""
    device = next(net.parameters()).device

    def denoise(x_t: np.ndarray, t: float, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        x = torch.from_numpy(x_t).to(device)
        t_ = torch.tensor([t], dtype=torch.float32, device=device)
        a_ = torch.tensor([alpha], dtype=torch.float32, device=device)
        x0, g = guided_denoise(net, x, t_, a_, operator, scale)
        return x0.cpu().numpy(), g.cpu().numpy()

    return denoise
