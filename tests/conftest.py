"""Shared fixtures: paths to the shared data and a tiny random-weight checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pads_stream.common.config import to_dict
from pads_stream.prior.checkpoint import FORMAT
from pads_stream.prior.model import Denoiser, PriorConfig
from pads_stream.prior.schedule import DiffusionConfig

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
TEST_SET = SHARED / "h36m" / "test_vh36m.npz"
H36M = SHARED / "h36m" / "positions_3d_25hz.npz"


MISSING_DATA = f"needs the data folder {SHARED} (h36m/test_vh36m.npz, h36m/positions_3d_25hz.npz); it is absent"
needs_data = pytest.mark.skipif(not (TEST_SET.exists() and H36M.exists()), reason=MISSING_DATA)


@pytest.fixture(scope="session")
def test_set() -> dict[str, np.ndarray]:
    if not TEST_SET.exists():
        pytest.skip(MISSING_DATA)
    return dict(np.load(TEST_SET))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight prior (d=32, 2 layers) saved as a real checkpoint file."""
    torch.manual_seed(0)
    prior = PriorConfig(d_model=32, n_layers=2, n_heads=4, d_ff=64)
    net = Denoiser(prior)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    ckpt = {
        "format": FORMAT,
        "prior": to_dict(prior),
        "diffusion": to_dict(DiffusionConfig()),
        "scale": 0.3,
        "weights": net.state_dict(),
    }
    torch.save(ckpt, path)
    return path


CAMERAS = SHARED / "h36m" / "cameras_s9_s11.json"


@pytest.fixture(scope="session")
def rig_views(test_set) -> dict[str, np.ndarray]:
    """32 S9 poses of the test set seen by the 4 cameras of its calibrated rig: kp2d, kp2d_det,
    conf_det (4, N, 17[, 2]), K (4, N, 3, 3), R (4, 3, 3), t (4, 3), world (N, 17, 3) metres."""
    from pads_stream.data.virtual_rig import load_rig, rig_samples
    from pads_stream.geometry.camera import camera_to_world

    rig = load_rig(str(CAMERAS), "S9")
    idx = rig_samples(test_set, "S9", 4)[:, ::97][:, :32]
    n = idx.shape[1]
    R0, t0 = np.broadcast_to(rig.R[0], (n, 3, 3)), np.broadcast_to(rig.t[0], (n, 3))
    world = camera_to_world(test_set["gt"][idx[0]] + test_set["root"][idx[0]][:, None], R0, t0)
    out = {k: test_set[k][idx].astype(np.float64) for k in ("kp2d", "kp2d_det", "conf_det", "K")}
    return {**out, "R": rig.R, "t": rig.t, "world": world}
