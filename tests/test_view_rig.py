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
    from pads_stream.apps.view import Viewer
    from pads_stream.data.virtual_rig import load_rig
    from pads_stream.stream.wire import Pose3d, PosePerson, RigView

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


def test_a_rig_shows_only_its_latest_persons_and_frames_every_camera(test_set):
    """Issue 31, item 1: a rig whose persons change id every frame (the test set: a new person each
    frame) shows only the latest frame's persons, not a pile of every id seen in the last second;
    "Frame the people" takes in the people and every camera."""
    from pads_stream.apps.view import Viewer
    from pads_stream.data.virtual_rig import load_rig
    from pads_stream.stream.wire import Pose3d, PosePerson, RigView

    from .conftest import SHARED

    rig = load_rig(str(SHARED / "h36m" / "cameras_s9_s11.json"), "S9")
    views = tuple(RigView(f"cam{v}", 7, True, rig.R[v], rig.t[v]) for v in range(4))
    viewer = Viewer("tcp://127.0.0.1:1", port=free_port())
    try:
        for f in range(10):
            persons = []
            for m in range(2):
                world = test_set["gt"][2 * f + m] @ np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]).T + [m, 0.0, 1.0]
                cam = world @ rig.R[0].T + rig.t[0]
                persons.append(PosePerson(100 * f + m, cam, cam[0], cam - cam[0], 1.0, np.ones(17), world))
            viewer.draw(Pose3d("studio", f, 0, 0, 0, tuple(persons), views, "cam0"))
        shown = sorted(n for n in viewer.shown if n.startswith("/persons/"))
        assert shown == ["/persons/studio/900", "/persons/studio/901"]
        viewer.frame()
        look = np.asarray(viewer.server.initial_camera.look_at)
        position = np.asarray(viewer.server.initial_camera.position)
        centres = np.stack([-rig.R[v].T @ rig.t[v] for v in range(4)])
        # every camera within the framed extent: the view is as far back as the cameras are spread
        assert np.linalg.norm(position - look) >= 0.5 * np.linalg.norm(centres - look, axis=1).max()
    finally:
        viewer.close()


def test_the_viewer_says_when_the_floor_is_a_guess(test_set):
    """Issue 31, item 6: a stream's floor estimated from its people is shown as a guess."""
    from pads_stream.apps.view import Viewer
    from pads_stream.stream.wire import Pose3d, PosePerson

    cam = test_set["gt"][0] + test_set["root"][0]
    world = cam @ np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]).T + [0.0, 0.0, 1.6]
    person = PosePerson(0, cam, cam[0], cam - cam[0], 1.0, np.ones(17), world)
    floor = {"height_m": 1.6, "height_sd_m": 0.1, "pitch_deg": 5.0, "roll_deg": 0.0, "confidence": 0.4}
    viewer = Viewer("tcp://127.0.0.1:1", port=free_port())
    try:
        assert viewer.floor_note.content == ""
        viewer.draw(Pose3d("cam", 0, 0, 0, 0, (person,), floor=floor))
        assert "a guess" in viewer.floor_note.content and "0.40" in viewer.floor_note.content
    finally:
        viewer.close()
