"""``pads-stream view``: a live 3D view of a node's output in a web page (viser).

Subscribes to ``pose3d/`` on the node's output and draws every person as a skeleton (the
person's left limbs red, right limbs blue, trunk grey) with a ``stream #id`` label above its
head. Persons with ``joints_world`` (the stream's camera has extrinsics, the node estimated its
floor, or a rig fused it) stand on a floor grid in the world frame (Z up), and each stream's
camera is drawn where it is (recovered from the person's camera-frame and world joints; every
view's camera of a rig, from the extrinsics its frame carries); the
others are drawn in their camera's frame turned Z-up (x right, z forward → y, up → z), each
stream beside the last, with its camera at its own origin. The view frames the people when they
first appear and on the "Frame the people" button. A person or camera not seen for a second
disappears. Open the printed address in a browser. Needs ``pip install 'pads-stream[view]'``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ..geometry.skeleton import H36M_LEFT, H36M_PARENTS, H36M_RIGHT
from ..stream.sockets import Curve, add_curve_argument, subscriber
from ..stream.wire import Pose3d, WireError, decode_pose3d

COLOURS = {"left": (220, 20, 20), "right": (20, 60, 230), "trunk": (90, 90, 90)}
STREAM_SPACING_M = 3.0  # streams without a world are drawn this far apart
BONES = [(j, p) for j, p in enumerate(H36M_PARENTS) if p >= 0]
# camera frame (x right, y down, z forward) -> a Z-up display frame (x right, y forward, z up)
CAMERA_TO_DISPLAY = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])


def bone_segments(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(16, 2, 3) bone end points and (16, 2, 3) uint8 colours of (17, 3) H36M-17 joints."""
    points = np.stack([[joints[j], joints[p]] for j, p in BONES])
    side = ["left" if j in H36M_LEFT else "right" if j in H36M_RIGHT else "trunk" for j, _ in BONES]
    colours = np.array([[COLOURS[s], COLOURS[s]] for s in side], dtype=np.uint8)
    return points, colours


def camera_pose(camera: np.ndarray, world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The camera's (centre (3,), world-from-camera rotation (3, 3)) from one person's joints in
    its frame (17, 3) and in the world (17, 3): the rigid fit X_world = Q X_cam + C (Kabsch)."""
    a, b = camera - camera.mean(axis=0), world - world.mean(axis=0)
    u, _, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    q = u @ np.diag([1.0, 1.0, d]) @ vt
    return world.mean(axis=0) - q @ camera.mean(axis=0), q


def rotation_wxyz(q: np.ndarray) -> tuple[float, float, float, float]:
    """A rotation matrix as a unit quaternion (w, x, y, z)."""
    w = np.sqrt(max(1e-12, 1.0 + np.trace(q))) / 2
    return (float(w), float((q[2, 1] - q[1, 2]) / (4 * w)), float((q[0, 2] - q[2, 0]) / (4 * w)),
            float((q[1, 0] - q[0, 1]) / (4 * w)))  # fmt: skip


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
        self.server.gui.add_button("Frame the people").on_click(lambda _: self.frame())
        self.floor_note = self.server.gui.add_markdown("")  # says when the floor is the node's guess
        self.socket = subscriber(endpoint, (b"pose3d/",), curve)
        self.forget_s = forget_s
        self.shown: dict[str, tuple[float, list, np.ndarray]] = {}  # scene name -> (last seen, handles, joints)
        self.lanes: dict[str, int] = {}  # stream without a world -> its place in the row of streams
        self.framed = False
        self.url = f"http://{host}:{port}"
        self.stopping = False

    def frame(self) -> None:
        """Point the view (every open page, and the next ones) at the people shown."""
        people = [j for name, (_, _, j) in self.shown.items() if name.startswith("/persons/")]
        if not people:
            return
        # the people, and every camera when several are shown (a rig's cameras stand around its people); a
        # lone camera is seen over its shoulder, in front of its people (framing it too would push them into
        # a corner)
        cameras = [j for name, (_, _, j) in self.shown.items() if name.startswith("/cameras/")]
        joints = np.concatenate(people + (cameras if len(cameras) > 1 else []))
        lo, hi = joints.min(axis=0), joints.max(axis=0)
        centre = (lo + hi) / 2
        distance = 1.1 * max(1.8, float(np.linalg.norm(hi - lo)))  # the people fill most of the view
        position = centre + distance * np.array([0.0, -0.9, 0.45])
        if len(cameras) == 1:
            eye = cameras[0].mean(axis=0)
            back = (eye - centre) * np.array([1.0, 1.0, 0.0])
            if np.linalg.norm(back) > 0.5:  # beside the camera, a little behind and above: it stands at the side
                back /= np.linalg.norm(back)
                right = np.array([-back[1], back[0], 0.0])
                position = eye + 0.7 * back + 0.8 * right + np.array([0.0, 0.0, 0.5])
        self.server.initial_camera.position, self.server.initial_camera.look_at = position, centre
        for client in self.server.get_clients().values():
            client.camera.position, client.camera.look_at = position, centre
        self.framed = True

    def draw(self, msg: Pose3d) -> None:
        """Draw the persons of one ``pose3d`` message, and the camera that saw them."""
        scene, now = self.server.scene, time.monotonic()
        # camera name -> (centre, world-from-camera rotation): a rig's frame carries each view's extrinsics;
        # a stream's camera is recovered from its first person below
        cameras = {v.stream: (-v.R.T @ v.t, v.R.T) for v in msg.views if v.R is not None and v.t is not None}
        own = msg.camera or msg.stream
        if msg.floor is not None:  # no extrinsics: the node's estimate from the people's feet
            fl = {k: msg.floor.get(k, float("nan")) for k in ("confidence", "height_m", "height_sd_m")}
            self.floor_note.content = (
                f"Floor of {msg.stream}: a guess from the people's feet (confidence {fl['confidence']:.2f}, "
                f"camera {fl['height_m']:.2f} ± {fl['height_sd_m']:.2f} m above it), not a calibration"
            )
        for person in msg.persons:
            world = person.joints_world
            if world is not None:
                joints = world
                self.floor.visible = True
                if not cameras:
                    cameras[own] = camera_pose(person.joints, world)
            else:  # in its camera's frame, turned Z-up, each stream beside the last
                lane = self.lanes.setdefault(msg.stream, len(self.lanes))
                joints = person.joints @ CAMERA_TO_DISPLAY.T + [STREAM_SPACING_M * lane, 0.0, 0.0]
                cameras.setdefault(own, (np.array([STREAM_SPACING_M * lane, 0.0, 0.0]), CAMERA_TO_DISPLAY))
            name = f"/persons/{msg.stream}/{person.id}"
            points, colours = bone_segments(joints)
            handles = [
                scene.add_line_segments(name + "/bones", points, colours, thickness=8.0, thickness_units="screen"),
                scene.add_label(name + "/label", f"{msg.stream} #{person.id}", position=joints[10] + [0, 0, 0.2]),
            ]
            self.shown[name] = (now, handles, joints)
        # a person not in its stream's (or rig's) latest frame is gone: its stream has moved on
        drawn = {f"/persons/{msg.stream}/{person.id}" for person in msg.persons}
        for name in [n for n in self.shown if n.startswith(f"/persons/{msg.stream}/") and n not in drawn]:
            for handle in self.shown.pop(name)[1]:
                handle.remove()
        for stream, (centre, rotation) in cameras.items():
            name = f"/cameras/{stream}"
            frustum = scene.add_camera_frustum(name, fov=1.0, aspect=4 / 3, scale=0.2, position=centre,
                                               wxyz=rotation_wxyz(rotation), color=(60, 60, 60))  # fmt: skip
            scene.add_label(name + "/label", stream, position=(0.0, 0.0, 0.0))  # removed with its frustum
            self.shown[name] = (now, [frustum], centre[None])
        if not self.framed and msg.persons:
            self.frame()
        self.forget(now)

    def forget(self, now: float) -> None:
        """Remove the persons and cameras not seen for ``forget_s``."""
        for name in [n for n, (seen, _, _) in self.shown.items() if now - seen > self.forget_s]:
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
            else:
                self.forget(time.monotonic())  # a stream that stopped: its persons go too

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
