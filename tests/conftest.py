"""Shared fixtures: paths to the shared data and a tiny random-weight checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pads_stream.checkpoint import FORMAT
from pads_stream.config import to_dict
from pads_stream.model import Denoiser, PriorConfig
from pads_stream.schedule import DiffusionConfig

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
