"""The pose prior's noise predictor: a Transformer encoder whose 17 tokens are the joints.

ε_θ(x_t, t) for pelvis-relative poses in the camera frame (normalised by a scalar scale
stored with the weights). Each joint token is its 3 coordinates embedded, plus a learned
joint embedding, plus the timestep embedding; pre-LayerNorm encoder blocks; a linear head back
to 3 coordinates per joint. Plain torch ops throughout, so the guided sampler traces to ONNX.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..geometry.skeleton import NUM_JOINTS


@dataclass(frozen=True)
class PriorConfig:
    """Network size."""

    d_model: int = 128  # token width
    n_layers: int = 4  # encoder blocks
    n_heads: int = 4  # attention heads
    d_ff: int = 256  # feed-forward width
    dropout: float = 0.0


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of (B,) float timesteps -> (B, dim) (Vaswani et al. 2017)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class SelfAttention(nn.Module):
    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        B, J, D = h.shape
        q, k, v = self.qkv(h).split(D, dim=-1)
        q = q.view(B, J, self.n_heads, D // self.n_heads).transpose(1, 2)  # (B, nh, J, hs)
        k = k.view(B, J, self.n_heads, D // self.n_heads).transpose(1, 2)
        v = v.view(B, J, self.n_heads, D // self.n_heads).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.shape[-1]))  # (B, nh, J, J)
        y = att.softmax(dim=-1) @ v  # (B, nh, J, hs)
        return self.proj(y.transpose(1, 2).reshape(B, J, D))


class Block(nn.Module):
    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.fc = nn.Linear(cfg.d_model, cfg.d_ff)
        self.out = nn.Linear(cfg.d_ff, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.drop(self.attn(self.ln1(h)))
        return h + self.drop(self.out(F.gelu(self.fc(self.ln2(h)))))


class Denoiser(nn.Module):
    """ε_θ: (B, 17, 3) normalised noisy poses and (B,) timesteps -> (B, 17, 3) noise."""

    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.embed = nn.Linear(3, d)
        self.joint_embed = nn.Parameter(torch.randn(NUM_JOINTS, d) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, 3)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.time_mlp(timestep_embedding(t, self.cfg.d_model).to(x.dtype))  # (B, d)
        h = self.embed(x) + self.joint_embed + temb[:, None, :]  # (B, J, d)
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln_f(h))  # (B, J, 3)
