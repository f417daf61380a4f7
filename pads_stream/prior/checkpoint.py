"""Checkpoints: one plain dict in one file holding config, weights and normalisation.

Keys: ``format``, ``prior`` (PriorConfig dict), ``diffusion`` (DiffusionConfig dict), ``scale``
(metres per normalised unit), ``weights`` (EMA state dict, the one used for sampling), and for
resuming only: ``train`` (TrainConfig dict), ``step``, ``raw_weights``, ``optimizer``, ``rng``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..common.config import from_dict
from .model import Denoiser, PriorConfig
from .schedule import DiffusionConfig

FORMAT = "pads-stream-prior/1"
RESUME_KEYS = ("raw_weights", "optimizer", "rng")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint dict (weights on the CPU); raises ValueError if it is not ours."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} checkpoint")
    return ckpt


def build_denoiser(ckpt: dict[str, Any]) -> tuple[Denoiser, DiffusionConfig, float]:
    """The EMA denoiser (eval mode, frozen), its diffusion config and its scale in metres."""
    net = Denoiser(from_dict(PriorConfig, ckpt["prior"], "checkpoint prior"))
    net.load_state_dict(ckpt["weights"])
    net.eval().requires_grad_(False)
    return net, from_dict(DiffusionConfig, ckpt["diffusion"], "checkpoint diffusion"), float(ckpt["scale"])


def strip_for_release(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint without optimiser state and raw weights (what ships)."""
    return {k: v for k, v in ckpt.items() if k not in RESUME_KEYS}
