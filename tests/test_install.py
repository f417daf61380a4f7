"""A user's install: the wheel built from this repository, in a fresh virtual environment without
torch, run from another folder. The base package must give the API on ONNX Runtime, the
version, and the demo (node + replay + listen) on the shipped model."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from .conftest import ROOT, SHARED

pytestmark = pytest.mark.skipif(os.environ.get("PADS_SKIP_INSTALL_TEST") == "1", reason="PADS_SKIP_INSTALL_TEST=1")

API_CHECK = """
import importlib.util, numpy as np, pads_stream
assert importlib.util.find_spec("torch") is None, "torch must not be installed by the base package"
m = pads_stream.load_model()
assert m.backend.name == "onnxruntime", m.backend.name
K = np.array([[1145.0, 0, 512], [0, 1145, 515], [0, 0, 1]])
kp = 512 + 60 * np.random.default_rng(0).standard_normal((3, 17, 2))
x, root = m.estimate(kp, K, None, steps=10, return_root=True)
assert x.shape == (3, 17, 3) and np.isfinite(x).all() and (root[:, 2] > 0).all()
from pads_stream.common import files
node_json = files.shipped("configs", "node.json")
assert "_shipped" in str(node_json) and node_json.exists(), node_json  # the wheel's own copy
site = str(files.package_file().parent)
assert not str(files.user_engines()).startswith(site), files.user_engines()  # exports: never site-packages
print("api ok")
"""


def run(cmd: list[str], cwd: Path, timeout: float) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PADS_STREAM_ENGINES", "VIRTUAL_ENV")}
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def test_wheel_in_a_fresh_venv_without_torch(tmp_path):
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)], tmp_path, 600)
    (wheel,) = dist.glob("pads_stream-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py, cli = env_dir / "bin" / "python", env_dir / "bin" / "pads-stream"
    run([str(py), "-m", "pip", "install", "-q", str(wheel)], tmp_path, 600)
    elsewhere = tmp_path / "somewhere_else"
    elsewhere.mkdir()
    assert run([str(cli), "--version"], elsewhere, 60).startswith("pads-stream ")
    assert "api ok" in run([str(py), "-c", API_CHECK], elsewhere, 120)
    if not (SHARED / "h36m" / "test_vh36m.npz").exists():
        pytest.skip(f"the demo needs the data folder ({SHARED} is absent)")
    out = run([str(cli), "demo", "--data", str(SHARED), "--frames", "20", "--rate", "10"], elsewhere, 300)
    assert "node exit code 0" in out and "accuracy: " in out and "MPJPE" in out
