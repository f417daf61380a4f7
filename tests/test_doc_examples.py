"""The README's and the docstrings' Python examples run as written (issue 16: the documented
custom-operator example had raised a TypeError)."""

from __future__ import annotations

import re
import textwrap

import numpy as np

from pads_stream.prior import operators

from .conftest import ROOT

README = (ROOT / "README.md").read_text()


def python_block(text: str, after: str) -> str:
    """The first fenced Python block after the heading or phrase ``after``."""
    return re.search(r"```python\n(.*?)```", text.split(after, 1)[1], re.S).group(1)


def calibration_walk() -> dict:
    """Six seconds of S8 walking seen by the S9 rig, exact 2D: the README's ``kp2d_walk`` and ``K_rig``."""
    from pads_stream.data.virtual_rig import load_rig
    from pads_stream.data.walks import camera_views, foot_locked_path, place_walk

    from .conftest import CAMERAS, H36M

    rig = load_rig(str(CAMERAS), "S9")
    poses = np.load(H36M, allow_pickle=True)["positions_3d"].item()["S8"]["walking_1"][:200]
    world = place_walk(foot_locked_path(poses), rig, np.random.default_rng(0))
    kp, _, _ = camera_views(world, rig, np.zeros(4), np.zeros(4), 150)
    return {"kp2d_walk": kp, "K_rig": rig.K}


def test_the_readme_api_example_runs(test_set, rig_views):
    n = 3
    gt = test_set["gt"][:n].astype(np.float64)
    mask = np.ones((n, 17), bool)
    mask[:, 13] = False
    scope = {"kp2d": test_set["kp2d"][:n], "K": test_set["K"][:n], "noisy": gt + 0.02, "partial": gt, "mask": mask,
             "n": n, "kp2d_views": rig_views["kp2d"][:, :n], "K_views": rig_views["K"][:, :n], "R": rig_views["R"],
             "t": rig_views["t"], **calibration_walk()}  # fmt: skip
    exec(python_block(README, "## Using it"), scope)
    assert scope["cal"].R.shape == (4, 3, 3) and scope["cal"].world == "floor"
    assert scope["x"].shape == (n, 17, 3) and np.isfinite(scope["x"]).all()
    assert np.abs(scope["w"] - rig_views["world"][:n]).max() < 0.01  # exact 2D from 4 views: the world pose


def test_the_readme_custom_operator_example_runs(test_set):
    import torch

    root = torch.from_numpy(test_set["root"][:2].astype(np.float32))
    depth = (torch.from_numpy(test_set["gt"][:2].astype(np.float32)) + root[:, None]).norm(dim=-1)
    scope = {"depth": depth, "root": root}
    exec("import pads_stream\n" + python_block(README, "**A new task**"), scope)
    assert scope["x"].shape == (2, 17, 3) and np.isfinite(scope["x"]).all()


def test_the_operators_docstring_example_runs(test_set):
    import torch

    code = textwrap.dedent(operators.__doc__.split("::\n", 1)[1].split("\n\nOperators here")[0])
    root = torch.from_numpy(test_set["root"][:2].astype(np.float32))
    depth = (torch.from_numpy(test_set["gt"][:2].astype(np.float32)) + root[:, None]).norm(dim=-1)
    scope = {"depth": depth, "root": root}
    exec("import pads_stream\n" + code, scope)
    assert scope["x"].shape == (2, 17, 3) and np.isfinite(scope["x"]).all()
