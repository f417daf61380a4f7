"""pads-stream view with a rig: every view's camera is drawn where its extrinsics put it (no browser)."""

from __future__ import annotations

import socket

import numpy as np
import pytest

pytest.importorskip("viser", reason="the viewer needs the [view] extra (viser)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_rig_frame_draws_every_views_camera(test_set):
    from pads_stream.rig import load_rig
    from pads_stream.view import Viewer
    from pads_stream.wire import Pose3d, PosePerson, RigView

    from .conftest import SHARED

    rig = load_rig(str(SHARED / "h36m" / "cameras_s9_s11.json"), "S9")
    world = test_set["gt"][0] @ np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]).T + [0.0, 0.0, 1.0]  # Z up
    cam = world @ rig.R[0].T + rig.t[0]
    person = PosePerson(0, cam, cam[0], cam - cam[0], 1.0, np.ones(17), world)
    views = tuple(RigView(f"cam{v}", 7, True, rig.R[v], rig.t[v]) for v in range(4))
    viewer = Viewer("tcp://127.0.0.1:1", port=free_port())
    try:
        viewer.draw(Pose3d("studio", 0, 0, 0, 0, (person,), views, "cam0"))
        for v in range(4):
            _, _, centre = viewer.shown[f"/cameras/cam{v}"]
            np.testing.assert_allclose(centre[0], -rig.R[v].T @ rig.t[v], atol=1e-9)  # where the camera is
        assert "/persons/studio/0" in viewer.shown
    finally:
        viewer.close()
