"""pads-stream view: the page loaded in headless Chromium shows the skeletons it was sent, in
the left (red) and right (blue) colours, framed: inside the picture and large enough to see."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time

import msgpack
import pytest
import zmq

pytest.importorskip("viser", reason="the viewer needs the [view] extra (viser)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hue_pixels(png: str) -> tuple[int, int]:
    """(reddish, bluish) pixel counts in the 3D scene area: below the control panel, right of
    the axes gizmo (both have red and blue of their own). Lines are drawn lighter than their
    nominal colour, so pixels are classed by which channel dominates."""
    import matplotlib.image

    img = (matplotlib.image.imread(png)[..., :3] * 255).astype(int)[340:, 90:]
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return int(((r > g + 50) & (r > b + 50)).sum()), int(((b > r + 40) & (b > g + 20)).sum())


def skeleton_box(png: str) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the red and blue pixels in the scene area, as fractions of the
    picture (the control panel, the notice and the axes gizmo left out)."""
    import matplotlib.image
    import numpy as np

    img = (matplotlib.image.imread(png)[..., :3] * 255).astype(int)
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    coloured = ((r > g + 50) & (r > b + 50)) | ((b > r + 40) & (b > g + 20))
    coloured[:160, :] = coloured[:, 640:] = coloured[600:, :100] = False
    ys, xs = np.nonzero(coloured)
    h, w = coloured.shape
    return xs.min() / w, ys.min() / h, xs.max() / w, ys.max() / h


def photograph(tmp_path, message, period_s: float, enough: int, camera: bool = False,
               ) -> tuple[list[str], int, int, str]:  # fmt: skip
    """Feed a viewer ``message(k)`` (a pose3d's two frames) every ``period_s`` and photograph its
    page in headless Chromium (up to three looks, until both colours exceed ``enough`` pixels and,
    with ``camera``, a camera's frustum shows: :func:`camera_pixels` over :data:`FRUSTUM_PIXELS`);
    returns (the scene's names once the viewer has stopped, red, blue, the picture's path)."""
    from pads_stream.apps.view import Viewer

    pub = zmq.Context.instance().socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    viewer = Viewer(f"tcp://127.0.0.1:{port}", port=free_port())
    stop = threading.Event()

    def feed() -> None:
        k = 0
        while not stop.is_set():
            pub.send_multipart(message(k))
            k += 1
            time.sleep(period_s)

    threads = [threading.Thread(target=feed), threading.Thread(target=viewer.run, args=(300.0,))]
    for t in threads:
        t.start()
    try:
        time.sleep(2.0)
        shot = tmp_path / "view.png"
        flags = ["--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
        flags += ["--window-size=1000,700", "--virtual-time-budget=8000", f"--screenshot={shot}"]
        for _ in range(3):  # a busy machine can leave a headless page unpainted: look again, never lower the bar
            shot.unlink(missing_ok=True)
            subprocess.run([CHROMIUM, *flags, viewer.url], capture_output=True, timeout=90)
            assert shot.exists()
            red, blue = hue_pixels(str(shot))
            if red > enough and blue > enough and (not camera or camera_pixels(str(shot)) > FRUSTUM_PIXELS):
                break
    finally:
        stop.set()
        viewer.stop()  # the viewer's thread returns before its socket closes (sockets stay in one thread)
        for t in threads:
            t.join()
        shown = list(viewer.shown)  # the scene is the viewer thread's: read once that thread is done
        viewer.close()
        pub.close(0)
    return shown, red, blue, str(shot)


@pytest.mark.parametrize("world", [False, True], ids=["camera frame", "world"])
def test_browser_shows_the_skeletons(tmp_path, test_set, world):
    import numpy as np

    rotation = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # a level camera 1.5 m up, looking along the world's +y
    offset = -rotation @ np.array([0.0, 0.0, 1.5])

    def message(k: int) -> list[bytes]:
        persons = []
        for m in range(2):
            joints = test_set["gt"][50 * m] + [0.8 * m - 0.4, 0.0, 3.0]
            person = {"id": m, "joints": joints.tolist(), "root": [0.0, 0.0, 3.0],
                      "rel": test_set["gt"][50 * m].tolist(), "reproj_px": 1.0, "conf": [1.0] * 17}  # fmt: skip
            if world:
                person["joints_world"] = ((joints - offset) @ rotation).tolist()
            persons.append(person)
        payload = {"v": 1, "stream": "cam0", "frame": k, "t_ns": 0, "t_recv_ns": 0, "t_pub_ns": 0,
                   "layout": "h36m17", "persons": persons}  # fmt: skip
        return [b"pose3d/cam0", msgpack.packb(payload)]

    _, red, blue, shot = photograph(tmp_path, message, 0.1, 300, camera=True)
    assert red > 300 and blue > 300, (red, blue)  # left limbs red, right limbs blue
    left, top, right, bottom = skeleton_box(shot)
    # framed: the people whole and large, seen from beside their camera 3 m away
    assert bottom - top > 0.2 and 0.05 < left and right < 0.95 and 0.05 < top and bottom < 0.95
    assert camera_pixels(shot) > FRUSTUM_PIXELS  # issue 31, item 5: the camera's dark frustum is in the picture too


FRUSTUM_PIXELS = 2000  # a lone camera's frustum framed from beside it (165 and 30 when it was out of the picture)


def camera_pixels(png: str) -> int:
    """Dark grey pixels (a camera's frustum; the grid is lighter) in the scene area."""
    import matplotlib.image

    img = (matplotlib.image.imread(png)[..., :3] * 255).astype(int)
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    dark = (abs(r - g) < 12) & (abs(g - b) < 12) & (r < 140)
    dark[:160, :] = dark[:, 640:] = dark[600:, :100] = False
    return int(dark.sum())


def test_browser_shows_a_rig_with_its_latest_persons_and_every_camera(tmp_path, test_set):
    """Issue 31, item 1: a rig replay whose person ids change every frame (as the test set's do)
    shows two skeletons, not a pile of every id of the last second, and its four cameras; framed on
    the people and the cameras, the skeletons are still seen in their colours."""
    import numpy as np

    from pads_stream.data.virtual_rig import load_rig
    from pads_stream.stream.wire import Pose3d, PosePerson, RigView, encode_pose3d

    from .conftest import SHARED

    rig = load_rig(str(SHARED / "h36m" / "cameras_s9_s11.json"), "S9")
    views = tuple(RigView(f"cam{v}", 0, True, rig.R[v], rig.t[v]) for v in range(4))

    def message(k: int) -> list[bytes]:
        persons = []
        for m in range(2):
            world = test_set["gt"][(2 * k + m) % 500] @ np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]).T
            world = world + [0.8 * m - 0.4, 0.0, 1.0]
            cam = world @ rig.R[0].T + rig.t[0]
            persons.append(PosePerson(1000 * k + m, cam, cam[0], cam - cam[0], 1.0, np.ones(17), world))
        return encode_pose3d(Pose3d("studio", k, 0, 0, 0, tuple(persons), views, "cam0"))

    shown, red, blue, _ = photograph(tmp_path, message, 0.04, 50)
    assert red > 50 and blue > 50, (red, blue)  # two small skeletons among four cameras
    assert sum(n.startswith("/persons/") for n in shown) == 2  # the latest frame's two, not every id
    assert sorted(n for n in shown if n.startswith("/cameras/")) == [f"/cameras/cam{v}" for v in range(4)]
