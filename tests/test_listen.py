"""``pads-stream listen`` as a service manager runs it: stopped by a signal, it keeps what arrived."""

from __future__ import annotations

import time

import numpy as np


def test_listen_writes_its_recording_when_a_service_manager_stops_it(tmp_path):
    """Issue 19: ``listen --record`` stopped by SIGTERM wrote nothing; now what arrived is written,
    and the npz loads without allow_pickle."""
    import signal
    import subprocess
    import sys

    import zmq

    from pads_stream.stream.wire import Pose3d, PosePerson, encode_pose3d

    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    out = tmp_path / "rec.npz"
    proc = subprocess.Popen([sys.executable, "-m", "pads_stream.cli", "listen", "--from", f"tcp://127.0.0.1:{port}",
                             "--record", str(out), "--quiet"], stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        rel = np.zeros((17, 3))
        person = PosePerson(7, rel + [0, 0, 4.0], np.array([0, 0, 4.0]), rel, 1.0, np.ones(17))
        deadline = time.monotonic() + 30
        frame = 0
        while time.monotonic() < deadline:  # until the listener surely has some (a slow joiner loses the first)
            pub.send_multipart(encode_pose3d(Pose3d("cam", frame, time.time_ns(), 0, 0, (person,))))
            frame += 1
            time.sleep(0.02)
            if frame == 100:
                break
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=30)
    finally:
        pub.close(0)
        ctx.term()
    assert proc.returncode == 0
    data = np.load(out)  # no allow_pickle
    assert len(data["frame"]) > 0 and set(data["id"].tolist()) == {7} and "recorded" in stdout


def test_a_recorded_bvh_lasts_as_long_as_the_stream_at_its_own_rate(tmp_path):
    """Issue 19: 16 s at 12.5 Hz with dropped frames was written as a 5.7 s clip at a fixed 25 fps;
    the BVH now runs on the poses' t_ns, gaps filled (and counted)."""
    from pads_stream.apps.listen import Listener, record
    from pads_stream.data.bvh import parse_bvh

    listener = Listener.__new__(Listener)  # its stores only: no socket needed to record
    listener.poses, listener.world, listener.t_ns = {}, {}, {}
    rng = np.random.default_rng(0)
    kept = [f for f in range(200) if f % 7 != 3 or f in (0, 199)]  # 12.5 Hz for 16 s, every 7th frame dropped
    for f in kept:
        rel = rng.normal(0, 0.05, (17, 3))
        listener.poses[("cam0", f, 1)] = (rel - rel[0], np.array([0.0, 0.0, 4.0]))
        listener.t_ns[("cam0", f)] = 1_000_000_000 + f * 80_000_000
    (path,) = record(listener, tmp_path / "take.bvh", fps=25.0)
    bvh = parse_bvh(path.read_text())
    assert abs(bvh.frame_time - 0.08) < 1e-6 and len(bvh.motion) == 200  # 16 s, the missing frames filled


def test_every_command_is_in_the_readme_and_replay_help_shows_its_defaults():
    import subprocess
    import sys

    from pads_stream.cli import COMMANDS

    from .conftest import ROOT

    table = (ROOT / "README.md").read_text().split("## Commands")[1].split("##")[0]
    assert all(f"`{name}`" in table for name in COMMANDS)
    out = subprocess.run([sys.executable, "-m", "pads_stream.cli", "replay", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "(default: runs/truth.npz)" in " ".join(out.stdout.split())


def test_the_accuracy_line_is_one_readable_sentence():
    from pads_stream.apps.listen import accuracy_line

    given = {"persons_expected": 4, "persons_received": 4, "mpjpe": 50.0, "pa_mpjpe": 35.0, "root_error": 0.0,
             "frames": [0, 1], "frame_mpjpe": [49.0, 51.0]}  # fmt: skip
    line = accuracy_line(given)
    assert "root given" in line and "[" not in line and "4 of 4" in line
    assert "root error 120.0 mm" in accuracy_line({**given, "root_error": 120.0})
    rig = accuracy_line({"rig_persons": 6, "rig_association": 1.0, "rig_world_mpjpe": 22.0, "rig_root_error": 15.0})
    assert "association 100.0 %" in rig and "world MPJPE 22.0 mm" in rig


def test_a_node_that_cannot_keep_up_says_what_to_change():
    from pads_stream.stream.node import NodeConfig, Stats, status_line

    stats = Stats()
    stats.busy_s = 1e9  # it estimated the whole period
    status = stats.status("onnxruntime", "hash", 1, 0)
    assert status.busy == 1.0
    quiet = status_line(status, 0, NodeConfig())
    assert "busy 100 %" in quiet and "NOT KEEPING UP" not in quiet
    hint = status_line(status, 12, NodeConfig(steps=10, threads=1))
    assert "12 frames dropped" in hint and "steps (10)" in hint and "threads (1)" in hint


def test_the_summary_says_the_floor_the_node_estimated():
    """A pose3d carrying an estimated floor (a stream without extrinsics): listen's summary gives
    the camera's height with its uncertainty, pitch, roll and confidence, in words."""
    import zmq

    from pads_stream.apps.listen import Listener, summary
    from pads_stream.stream.wire import Pose3d, PosePerson, encode_pose3d

    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    listener = Listener(f"tcp://127.0.0.1:{port}", context=ctx)
    try:
        rel = np.zeros((17, 3))
        person = PosePerson(1, rel + [0, 0, 4.0], np.array([0, 0, 4.0]), rel, 1.0, np.ones(17))
        floor = {"height_m": 1.62, "height_sd_m": 0.08, "pitch_deg": 12.1, "roll_deg": -0.4, "confidence": 0.79}
        deadline, frame = time.monotonic() + 30, 0
        while not listener.floors and time.monotonic() < deadline:  # a slow joiner loses the first
            pub.send_multipart(encode_pose3d(Pose3d("cam", frame, time.time_ns(), 0, 0, (person,), floor=floor)))
            frame += 1
            listener.poll(50)
        text = summary(listener, 1.0)
    finally:
        listener.close()
        pub.close(0)
        ctx.term()
    assert "floor of cam (a guess from the people's feet, no extrinsics): camera 1.62 ± 0.08 m above it, " \
           "pitch 12.1°, roll -0.4°, confidence 0.79" in text  # fmt: skip


def test_the_summary_says_what_each_count_counts():
    """Issue 31, item 4: a rig replay's summary counts pose3d frames per stream and per rig, and the
    member frames the rig fused, instead of one mixed number."""
    from pads_stream.apps.listen import Listener, summary

    listener = Listener("tcp://127.0.0.1:1")
    try:
        listener.published |= {("studio", f) for f in range(10)} | {("solo", f) for f in range(5)}
        listener.fused |= {(f"cam{v}", f) for v in range(4) for f in range(10)}
        listener.rig_names.add("studio")
        first = summary(listener, 1.0).splitlines()[0]
    finally:
        listener.close()
    assert first.startswith("15 pose3d frames received in 1.0 s: 5 of 1 streams (solo); 10 of rig studio, "
                            "fusing 40 member frames"), first  # fmt: skip
