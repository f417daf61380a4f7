"""The supervised lifting baseline: a Martinez-style MLP from 2D keypoints to 3D (Martinez et
al. 2017, "A simple yet effective baseline"), the learning-based anchor of the evaluation.

Unlike the prior it is trained on 2D–3D pairs: S1, S5–S8 training takes seen through the
virtual rig (:mod:`pads_stream.data.virtual_rig`), half of them with detector-like 2D noise and
confidences. Input: each joint's ray K⁻¹p minus the pelvis ray, times ‖T‖ (about metres at the
person), and its confidence; output: pelvis-relative camera-frame joints, metres.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.virtual_rig import detector_noise, random_views
from ..geometry.camera import normalized_rays
from ..geometry.skeleton import NUM_JOINTS


def lifting_input(kp2d: np.ndarray, K: np.ndarray, root: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """(N, 17·3) features: pelvis-relative rays scaled by ‖T‖ (m) and confidences."""
    rays = normalized_rays(kp2d, K)[..., :2]
    rel = (rays - rays[:, :1]) * np.linalg.norm(root, axis=-1)[:, None, None] * conf[..., None]
    return np.concatenate([rel, conf[..., None]], -1).reshape(len(kp2d), -1).astype(np.float32)


class LiftingMLP(nn.Module):
    """Linear -> 2 residual blocks of (Linear, LayerNorm, ReLU, Dropout) x 2 -> Linear."""

    def __init__(self, width: int = 1024, dropout: float = 0.2):
        super().__init__()
        self.inp = nn.Linear(NUM_JOINTS * 3, width)

        def block() -> nn.Sequential:
            layers: list[nn.Module] = []
            for _ in range(2):
                layers += [nn.Linear(width, width), nn.LayerNorm(width), nn.ReLU(), nn.Dropout(dropout)]
            return nn.Sequential(*layers)

        self.blocks = nn.ModuleList([block(), block()])
        self.out = nn.Linear(width, NUM_JOINTS * 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.inp(x))
        for b in self.blocks:
            h = h + b(h)
        return self.out(h).view(-1, NUM_JOINTS, 3)  # (B, 17, 3) m


def train_baseline(poses: np.ndarray, out: Path, minutes: float, seed: int = 0, batch: int = 256) -> Path:
    """Train on fresh random views of Y-up ``poses`` each batch for ``minutes`` of wall time."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    net = LiftingMLP()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    start, step, running = time.time(), 0, 0.0
    while time.time() - start < minutes * 60:
        frac = (time.time() - start) / (minutes * 60)
        for g in opt.param_groups:
            g["lr"] = 1e-3 * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * frac)))
        v = random_views(poses[rng.integers(0, len(poses), batch)], rng)
        kp, conf = v.kp2d, np.ones(v.kp2d.shape[:2])
        noisy = rng.random(batch) < 0.5
        kp_n, conf_n = detector_noise(kp[noisy], rng)
        kp[noisy], conf[noisy] = kp_n, conf_n
        x = torch.from_numpy(lifting_input(kp, v.K, v.root, conf))
        loss = (net(x) - torch.from_numpy(v.gt.astype(np.float32))).norm(dim=-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        running = 0.99 * running + 0.01 * loss.item()
        if step % 500 == 0:
            print(f"baseline step {step}: MPJPE {1000 * running / (1 - 0.99**step):.1f} mm (training views)")
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": "pads-stream-baseline/1", "weights": net.state_dict()}, out)
    return out


class Baseline:
    """A trained lifting MLP with the estimate() signature of :class:`pads_stream.PoseModel`."""

    def __init__(self, path: str | Path):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        self.net = LiftingMLP()
        self.net.load_state_dict(ckpt["weights"])
        self.net.eval()

    def estimate(self, kp2d: np.ndarray, K: np.ndarray, root: np.ndarray, conf: np.ndarray | None = None) -> np.ndarray:
        """(N, 17, 2) px, (N, 3, 3), (N, 3) m, (N, 17) -> (N, 17, 3) m pelvis-relative."""
        conf = np.ones(kp2d.shape[:2]) if conf is None else conf
        with torch.inference_mode():
            x = self.net(torch.from_numpy(lifting_input(kp2d, K, root, conf))).numpy()
        return x - x[:, :1]


def main(argv: list[str] | None = None) -> None:
    from ..data.datasets import DEFAULT_DATA, h36m_path, load_positions_3d, split_holdout
    from ..prior.train import TrainConfig

    parser = argparse.ArgumentParser(prog="pads-stream baseline", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("--data", default=DEFAULT_DATA, help="data folder holding h36m/positions_3d_25hz.npz")
    parser.add_argument("--out", default="runs/baseline.pt")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = TrainConfig(h36m=h36m_path(args.data))
    data = load_positions_3d(cfg.h36m)
    kept, _ = split_holdout({s: data[s] for s in cfg.train_subjects}, cfg.holdout_takes)
    poses = np.concatenate([x for takes in kept.values() for x in takes.values()])
    print(f"baseline: {len(poses)} training poses -> {train_baseline(poses, Path(args.out), args.minutes, args.seed)}")
