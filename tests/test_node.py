"""The node over real ZeroMQ sockets on loopback, driven from the test thread."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import msgpack
import numpy as np
import pytest
import zmq

from pads_stream.api import load_model
from pads_stream.node import Node, NodeConfig
from pads_stream.skeleton import COCO_JOINTS
from pads_stream.wire import camera_message, decode, kp2d_message

from .test_wire_and_root import MALFORMED


class Harness:
    """A node on random loopback ports, a rig PUB and a consumer SUB, all in this thread."""

    def __init__(self, model, **cfg):
        self.ctx = zmq.Context()
        self.node = Node(model, NodeConfig(inp="tcp://127.0.0.1:*", out="tcp://127.0.0.1:*", **cfg), self.ctx)
        inp, out = self.node.endpoints
        self.rig = self.ctx.socket(zmq.PUB)
        self.rig.connect(inp)
        self.sub = self.ctx.socket(zmq.SUB)
        for t in (b"pose3d/", b"error", b"status"):
            self.sub.setsockopt(zmq.SUBSCRIBE, t)
        self.sub.connect(out)
        deadline = time.monotonic() + 10
        while not any(t == "pose3d/probe" for t, _ in self.exchange(self.frame("probe", -1, [], camera=True))):
            assert time.monotonic() < deadline, "node never answered the probe"

    def frame(self, stream, n, persons, camera=False, layout="h36m17"):
        return kp2d_message(
            stream, n, time.time_ns(), persons, camera={"K": K.tolist()} if camera else None, layout=layout
        )

    def exchange(self, *messages, spins=3):
        for m in messages:
            self.rig.send_multipart(m)
        out = []
        for _ in range(spins):
            self.node.spin_once()
            while self.sub.poll(20):
                out.append(decode(self.sub.recv_multipart()))
        return out

    def close(self):
        for s in (self.rig, self.sub):
            s.close(0)
        self.node.close()
        self.ctx.term()


K = np.array([[1145.0, 0.0, 512.0], [0.0, 1145.0, 515.0], [0.0, 0.0, 1.0]])


@pytest.fixture
def harness(tiny_checkpoint):
    h = Harness(load_model(tiny_checkpoint, backend="torch"), steps=3, warm_steps=2, status_period_s=0.05)
    yield h
    h.close()


def persons_of(test_set, idx, root=True):
    out = []
    for m, i in enumerate(idx):
        kp = np.concatenate([test_set["kp2d"][i], np.ones((17, 1))], -1)
        p = {"id": m, "kp": kp.tolist()}
        if root:
            p["root"] = test_set["root"][i].tolist()
        out.append(p)
    return out


def poses(messages, stream):
    return [p for t, p in messages if t == f"pose3d/{stream}"]


def test_latched_camera_and_missing_camera(harness, test_set):
    out = harness.exchange(harness.frame("a", 0, persons_of(test_set, [0, 1])))
    errors = [p for t, p in out if t == "error"]
    assert errors and errors[0]["kind"] == "no_camera" and errors[0]["stream"] == "a"
    out = harness.exchange(camera_message("a", K), harness.frame("a", 1, persons_of(test_set, [0, 1])))
    (msg,) = poses(out, "a")
    assert msg["frame"] == 1 and len(msg["persons"]) == 2 and msg["layout"] == "h36m17"
    p = msg["persons"][0]
    np.testing.assert_allclose(np.array(p["joints"]), np.array(p["rel"]) + np.array(p["root"]))
    np.testing.assert_allclose(p["root"], test_set["root"][0], rtol=1e-6)
    assert msg["t_recv_ns"] <= msg["t_pub_ns"] and p["reproj_px"] >= 0


def test_coco_input_maps_confidence(harness):
    kp = np.zeros((17, 3))
    kp[:, :2] = np.random.default_rng(0).uniform(400, 600, (17, 2))
    kp[:, 2] = 0.9
    kp[COCO_JOINTS.index("l_hip"), 2] = 0.3
    person = {"id": 5, "kp": kp.tolist(), "root": [0.0, 0.0, 5.0]}
    out = harness.exchange(harness.frame("c", 0, [person], camera=True, layout="coco17"))
    (msg,) = poses(out, "c")
    conf = msg["persons"][0]["conf"]
    assert conf[0] == pytest.approx(0.3) and conf[4] == pytest.approx(0.3) and conf[1] == pytest.approx(0.9)


def test_unknown_root_is_estimated(harness, test_set):
    out = harness.exchange(harness.frame("u", 0, persons_of(test_set, [3], root=False), camera=True))
    (msg,) = poses(out, "u")
    root = np.array(msg["persons"][0]["root"])
    assert root[2] > 0 and abs(root[2] / test_set["root"][3][2] - 1) < 0.5


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_input_is_reported_and_the_node_carries_on(harness, test_set, kind):
    bad = MALFORMED[kind]
    out = harness.exchange(
        bad if len(bad) == 2 else bad + [b""] * 0, harness.frame("ok", 0, persons_of(test_set, [0]), camera=True)
    )
    errors = [p for t, p in out if t == "error"]
    assert kind in {e["kind"] for e in errors}
    assert errors[0]["reason"]
    assert len(poses(out, "ok")) == 1  # the good stream is still answered
    out = harness.exchange(harness.frame("ok", 1, persons_of(test_set, [1])), spins=25)
    status = [p for t, p in out if t == "status"][-1]
    assert status["errors"].get(kind, 0) >= 1 and status["frames_out"] >= 2


def test_stale_frames_are_dropped_under_a_slow_sampler(tiny_checkpoint, test_set):
    model = load_model(tiny_checkpoint, backend="torch")
    estimate = model.estimate

    def slow(*args, **kwargs):
        time.sleep(0.15)
        return estimate(*args, **kwargs)

    model.estimate = slow
    h = Harness(model, steps=2, warm_steps=2, latency_budget_ms=100.0, status_period_s=0.05)
    try:
        h.exchange(camera_message("s0", K), camera_message("s1", K))
        published = []
        for n in range(12):  # 12 frames per stream at ~100 Hz while each batch takes 150 ms
            for s in ("s0", "s1"):
                h.rig.send_multipart(h.frame(s, n, persons_of(test_set, [n])))
            time.sleep(0.01)
            if n % 4 == 3:
                published += h.exchange(spins=1)
        published += h.exchange(spins=5)
        frames = [p["frame"] for p in poses(published, "s0")]
        assert frames == sorted(frames) and len(frames) < 12  # newest only, in order
        status = [p for t, p in published if t == "status"][-1]
        assert status["dropped"].get("superseded", 0) > 0
        assert len(h.node.pending) == 0
        # a frame that waited beyond the budget is dropped as stale, not processed
        h.rig.send_multipart(h.frame("s0", 99, persons_of(test_set, [0])))
        time.sleep(0.05)
        h.node.drain()
        time.sleep(0.15)
        before = h.node.stats.dropped["stale"]
        h.node.process()
        assert h.node.stats.dropped["stale"] == before + 1
    finally:
        h.close()


def test_sigterm_finishes_and_exits_cleanly_over_ipc(tiny_checkpoint, tmp_path, test_set):
    inp, out = f"ipc://{tmp_path}/in", f"ipc://{tmp_path}/out"
    cmd = [sys.executable, "-m", "pads_stream.cli", "node", "--in", inp, "--out", out,
           "--model", str(tiny_checkpoint), "--backend", "torch", "--steps", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout.readline().startswith("pads-stream node: in ipc://")
        ctx = zmq.Context()
        rig, sub = ctx.socket(zmq.PUB), ctx.socket(zmq.SUB)
        rig.connect(inp)
        sub.setsockopt(zmq.SUBSCRIBE, b"pose3d/")
        sub.connect(out)
        got, deadline = None, time.monotonic() + 20
        while got is None and time.monotonic() < deadline:
            rig.send_multipart(
                kp2d_message("x", 0, time.time_ns(), persons_of(test_set, [0]), camera={"K": K.tolist()})
            )
            if sub.poll(200):
                got = msgpack.unpackb(sub.recv_multipart()[1])
        assert got is not None and got["stream"] == "x"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert "stopped after" in proc.stdout.read()
        rig.close(0)
        sub.close(0)
        ctx.term()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_stream_count_is_bounded(tiny_checkpoint):
    h = Harness(load_model(tiny_checkpoint, backend="torch"), steps=2, max_streams=3, status_period_s=0.05)
    try:
        out = h.exchange(*[camera_message(f"s{k}", K) for k in range(5)])
        errors = [p for t, p in out if t == "error"]
        assert {e["kind"] for e in errors} == {"too_many_streams"} and len(errors) == 3  # probe, s0, s1 fit; s2-s4 not
        assert len(h.node.cameras) == 3
    finally:
        h.close()
