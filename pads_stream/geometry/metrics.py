"""Pose-estimation metrics as broadcasting free functions (inputs in metres, results in mm).

Shapes: predictions and targets are (N, J, 3); per-sample results are (N,).
"""

from __future__ import annotations

import numpy as np


def _check(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"pred and gt must both be (N, J, 3), got {pred.shape} and {gt.shape}")


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Mean per-joint position error per sample, mm: mean_j ‖pred_j − gt_j‖."""
    _check(pred, gt)
    return 1000.0 * np.linalg.norm(pred - gt, axis=-1).mean(axis=-1)


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Similarity-align each pred to its gt (rotation without reflection, scale, translation).

    Umeyama's least-squares solution; returns the aligned (N, J, 3) predictions.
    """
    _check(pred, gt)
    mu_p, mu_g = pred.mean(axis=1, keepdims=True), gt.mean(axis=1, keepdims=True)
    p, g = pred - mu_p, gt - mu_g
    cov = np.einsum("nji,njk->nik", g, p)  # (N, 3, 3) Σ g pᵀ
    u, s, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt))  # -1 where the best orthogonal map is a reflection
    s[:, -1] *= d
    u[:, :, -1] *= d[:, None]
    rot = u @ vt  # (N, 3, 3)
    scale = s.sum(axis=1) / np.maximum((p**2).sum(axis=(1, 2)), 1e-12)
    return scale[:, None, None] * np.einsum("nij,nkj->nki", rot, p) + mu_g


def p_mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """MPJPE after similarity Procrustes alignment (PA-MPJPE), mm per sample."""
    return mpjpe(procrustes_align(pred, gt), gt)


def n_mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """MPJPE after the least-squares scale of pred onto gt (Rhodin et al. 2018), mm per sample."""
    _check(pred, gt)
    scale = (pred * gt).sum(axis=(1, 2)) / np.maximum((pred**2).sum(axis=(1, 2)), 1e-12)
    return mpjpe(scale[:, None, None] * pred, gt)


def pck(pred: np.ndarray, gt: np.ndarray, threshold_mm: float = 150.0) -> np.ndarray:
    """Fraction of joints within ``threshold_mm`` of the truth, per sample, in [0, 1]."""
    _check(pred, gt)
    return (1000.0 * np.linalg.norm(pred - gt, axis=-1) <= threshold_mm).mean(axis=-1)


def auc(pred: np.ndarray, gt: np.ndarray, max_mm: float = 150.0, n: int = 31) -> np.ndarray:
    """Area under the PCK curve for thresholds 0 … ``max_mm`` (n evenly spaced), per sample."""
    return np.mean([pck(pred, gt, th) for th in np.linspace(0.0, max_mm, n)], axis=0)


def apd(samples: np.ndarray) -> float:
    """Average pairwise distance of a set of (S, J, 3) samples, mm: mean over pairs i≠j of
    the mean per-joint distance (a diversity measure for generation)."""
    if samples.ndim != 3 or samples.shape[0] < 2:
        raise ValueError(f"samples must be (S >= 2, J, 3), got {samples.shape}")
    s = samples.reshape(samples.shape[0], -1, 3)
    d = np.linalg.norm(s[:, None] - s[None], axis=-1).mean(axis=-1)  # (S, S)
    n = s.shape[0]
    return float(1000.0 * d.sum() / (n * (n - 1)))
