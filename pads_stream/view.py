"""``pads-stream view``: a live 3D view of a node's output in a web page (viser).

Subscribes to ``pose3d/`` on the node's output and draws every person as a skeleton (the
person's left limbs red, right limbs blue, trunk grey) with a ``stream #id`` label. Persons with
``joints_world`` (the stream's camera has extrinsics) stand on a floor grid in the world frame
(Z up); the others are drawn in their camera's frame turned Z-up (x right, z forward → y, up →
z) with a frustum for the camera at the origin. A person not seen for a second disappears.
Open the printed address in a browser. Needs ``pip install 'pads-stream[view]'``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from .skeleton import H36M_LEFT, H36M_PARENTS, H36M_RIGHT
from .sockets import Curve, add_curve_argument, subscriber
from .wire import Pose3d, WireError, decode_pose3d

COLOURS = {"left": (230, 40, 40), "right": (40, 90, 230), "trunk": (110, 110, 110)}
BONES = [(j, p) for j, p in enumerate(H36M_PARENTS) if p >= 0]
# camera frame (x right, y down, z forward) -> a Z-up display frame (x right, y forward, z up)
CAMERA_TO_DISPLAY = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])


def bone_segments(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(16, 2, 3) bone end points and (16, 2, 3) uint8 colours of (17, 3) H36M-17 joints."""
    points = np.stack([[joints[j], joints[p]] for j, p in BONES])
    side = ["left" if j in H36M_LEFT else "right" if j in H36M_RIGHT else "trunk" for j, _ in BONES]
    colours = np.array([[COLOURS[s], COLOURS[s]] for s in side], dtype=np.uint8)
    return points, colours


class Viewer:
    """Owns the SUB socket and the viser server; :meth:`run` polls and draws until stopped."""

    def __init__(self, endpoint: str, host: str = "127.0.0.1", port: int = 8080, forget_s: float = 1.0,
                 curve: Curve | None = None):  # fmt: skip
        try:
            import viser
        except ImportError as err:
            raise SystemExit("pads-stream view needs viser: pip install 'pads-stream[view]'") from err
        self.server = viser.ViserServer(host=host, port=port, verbose=False)
        self.server.scene.set_up_direction("+z")
        self.floor = self.server.scene.add_grid("/floor", width=10.0, height=10.0, plane="xy", visible=False)
        self.camera = self.server.scene.add_camera_frustum("/camera", fov=1.0, aspect=4 / 3, scale=0.25, visible=False,
                                                           wxyz=(0.7071068, 0.7071068, 0.0, 0.0))  # fmt: skip
        self.socket = subscriber(endpoint, (b"pose3d/",), curve)
        self.forget_s = forget_s
        self.shown: dict[str, tuple[float, list]] = {}  # scene name -> (last seen, handles)
        self.url = f"http://{host}:{port}"
        self.stopping = False

    def draw(self, msg: Pose3d) -> None:
        """Draw the persons of one ``pose3d`` message."""
        scene, now = self.server.scene, time.monotonic()
        for person in msg.persons:
            world = person.joints_world
            joints = world if world is not None else person.joints @ CAMERA_TO_DISPLAY.T
            name = f"/persons/{msg.stream}/{person.id}"
            points, colours = bone_segments(joints)
            label = f"{msg.stream} #{person.id}"
            handles = [
                scene.add_line_segments(name + "/bones", points, colours, thickness=6.0, thickness_units="screen"),
                scene.add_label(name + "/label", label, position=joints[10] + [0, 0, 0.15]),
            ]
            if world is not None:
                self.floor.visible = True
            else:
                self.camera.visible = True
            self.shown[name] = (now, handles)
        for name in [n for n, (seen, _) in self.shown.items() if now - seen > self.forget_s]:
            for handle in self.shown.pop(name)[1]:
                handle.remove()

    def run(self, seconds: float | None = None) -> None:
        """Poll and draw (for ``seconds``, or until :meth:`stop` or an interrupt)."""
        end = None if seconds is None else time.monotonic() + seconds
        while not self.stopping and (end is None or time.monotonic() < end):
            if self.socket.poll(50):
                try:
                    self.draw(decode_pose3d(self.socket.recv_multipart()))
                except (WireError, KeyError, ValueError):
                    continue  # not a pose3d message this viewer can draw

    def stop(self) -> None:
        """Ask :meth:`run` to return within one poll (safe from another thread or a signal handler)."""
        self.stopping = True

    def close(self) -> None:
        """Close the socket and the web server (after :meth:`run` has returned)."""
        self.socket.close()
        self.server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pads-stream view", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--from", dest="endpoint", default="tcp://127.0.0.1:5556", help="the node's output")
    parser.add_argument("--host", default="127.0.0.1", help="address the web page is served on")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    add_curve_argument(parser)
    args = parser.parse_args(argv)
    viewer = Viewer(args.endpoint, args.host, args.port, curve=args.curve)
    print(f"pads-stream view: {viewer.url} (poses from {args.endpoint})", flush=True)
    try:
        viewer.run(args.seconds)
    except KeyboardInterrupt:
        pass
    finally:
        viewer.close()
