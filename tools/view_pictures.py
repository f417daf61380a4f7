"""The README's pictures of ``pads-stream view``: the live viewer, fed V-H36M poses, photographed by
headless Chromium (Debian's ``chromium``).

- ``docs/view_camera_frame.png``: one stream without extrinsics, two persons in its camera's frame;
- ``docs/view_world.png``: the same stream with its camera placed in a world (floor grid, camera);
- ``docs/view_rig.png``: a rig of the four S9 cameras, two persons fused, every camera where it is.

Usage: python tools/view_pictures.py [--data DIR] [--out docs]
"""

import argparse
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import zmq

from pads_stream.apps.view import Viewer
from pads_stream.data.datasets import DEFAULT_DATA, data_file, test_path
from pads_stream.data.virtual_rig import load_rig
from pads_stream.stream.wire import Pose3d, PosePerson, RigView, encode_pose3d

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--data", default=DEFAULT_DATA)
parser.add_argument("--out", default="docs")
args = parser.parse_args()
chromium = shutil.which("chromium") or shutil.which("chromium-browser")
if chromium is None:
    raise SystemExit("headless Chromium is needed: apt-get install chromium")
test = np.load(test_path(args.data))
rig = load_rig(str(data_file(args.data, "h36m", "cameras_s9_s11.json")), "S9")
Y_UP_TO_Z_UP = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])  # camera-frame pose (y down) stood up, roughly
LEVEL = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # a level camera looking along the world's +y
LEVEL_T = -LEVEL @ np.array([0.0, 0.0, 1.5])  # ... 1.5 m up


def message(kind: str, k: int) -> Pose3d:
    persons = []
    for m in range(2):
        rel = test["gt"][(2 * k + m) % 400].astype(float)
        if kind == "rig":
            world = rel @ Y_UP_TO_Z_UP.T + [0.8 * m - 0.4, 0.0, 1.0]
            cam = world @ rig.R[0].T + rig.t[0]
        else:
            cam = rel + [0.8 * m - 0.4, 0.0, 3.0]
            world = (cam - LEVEL_T) @ LEVEL if kind == "world" else None
        persons.append(PosePerson(m if kind != "rig" else 1000 * k + m, cam, cam[0], cam - cam[0], 1.0,
                                  np.ones(17), world))  # fmt: skip
    if kind == "rig":
        views = tuple(RigView(f"cam{v}", k, True, rig.R[v], rig.t[v]) for v in range(4))
        return Pose3d("studio", k, 0, 0, 0, tuple(persons), views, "cam0")
    return Pose3d("cam0", k, 0, 0, 0, tuple(persons))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


for kind, name in (("camera", "view_camera_frame.png"), ("world", "view_world.png"), ("rig", "view_rig.png")):
    pub = zmq.Context.instance().socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    viewer = Viewer(f"tcp://127.0.0.1:{port}", port=free_port())
    stop = threading.Event()

    def feed(kind: str = kind, pub: zmq.Socket = pub, stop: threading.Event = stop) -> None:
        k = 0
        while not stop.is_set():
            pub.send_multipart(encode_pose3d(message(kind, k)))
            k += 1
            time.sleep(0.1)

    threads = [threading.Thread(target=feed), threading.Thread(target=viewer.run, args=(120.0,))]
    for t in threads:
        t.start()
    try:
        time.sleep(2.0)
        shot = Path(args.out, name)
        flags = ["--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                 "--window-size=1000,700", "--virtual-time-budget=8000", f"--screenshot={shot.resolve()}"]  # fmt: skip
        subprocess.run([chromium, *flags, viewer.url], capture_output=True, timeout=90)
        print(f"wrote {shot}", flush=True)
    finally:
        stop.set()
        viewer.stop()
        for t in threads:
            t.join()
        viewer.close()
        pub.close(0)
