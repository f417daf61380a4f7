"""A cluster over real ZeroMQ sockets: placement, routing, failover and rebalance, the command itself."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import zmq

from pads_stream.api import load_model
from pads_stream.cluster.placement import capacity, owner, preference, route_key, weight
from pads_stream.cluster.router import ClusterConfig, Router
from pads_stream.stream.node import Node, NodeConfig
from pads_stream.stream.sockets import publisher, subscriber
from pads_stream.stream.wire import camera_message, decode, kp2d_message

from .test_node import K, persons_of

HEARTBEAT = 0.05
LIVENESS = 10  # 0.5 s: the test thread runs every process in turn, so a slow loop on a busy machine is no loss


def test_placement_is_stable_balanced_and_moves_only_a_lost_workers_keys():
    keys = [route_key(f"cam{k}", None) for k in range(200)]
    workers = ["w0", "w1", "w2", "w3"]
    # the same in another process (no per-process hash seed) and pinned, so every machine agrees
    script = "from pads_stream.cluster.placement import weight; print(weight('w0', 'stream:cam0'))"
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert int(other.stdout) == weight("w0", "stream:cam0")
    assert preference("stream:cam0", workers) == preference("stream:cam0", workers[::-1])
    before = {k: owner(k, workers) for k in keys}
    after = {k: owner(k, ["w0", "w1", "w3"]) for k in keys}
    assert {k for k in keys if before[k] != after[k]} == {k for k in keys if before[k] == "w2"}
    assert all(after[k] == preference(k, ["w0", "w1", "w3"])[0] for k in keys)
    # bounded loads: placed one by one, 4 keys on 2 workers land 2 + 2, 9 on 4 at most 3 each
    for n, ws in ((4, workers[:2]), (9, workers)):
        loads: collections.Counter[str] = collections.Counter()
        for k in keys[:n]:
            loads[owner(k, ws, loads, capacity(sum(loads.values()) + 1, len(ws)))] += 1
        assert max(loads.values()) == capacity(n, len(ws))
    assert route_key("a", "a") != route_key("a", None)
    assert owner("stream:x", []) is None


class Cluster:
    """A router and worker nodes in this process on loopback/ipc sockets, a sender and a consumer, all
    driven from the test thread (a worker not in ``running`` is hung: it neither reads nor heartbeats)."""

    def __init__(self, model, names=("w0", "w1"), router_cfg: dict | None = None,
                 client: tuple[str, str] | None = None):  # fmt: skip
        self.ctx = zmq.Context()
        cfg = ClusterConfig(inp="tcp://127.0.0.1:*", out="tcp://127.0.0.1:*", heartbeat_s=HEARTBEAT, liveness=LIVENESS,
                            status_period_s=0.05, log_period_s=0, **(router_cfg or {}))  # fmt: skip
        self.router = Router(cfg, self.ctx)
        ep = self.router.endpoints
        self.nodes = {}
        keys = self.router.worker_keys  # with CurveZMQ on, the key pair the router admits for its local workers
        curve = {} if keys is None else {"curve_server_key": keys[0], "curve_client_secret": keys[1]}
        for name in names:
            node_cfg = NodeConfig(router=ep["work"], out=ep["collect"], bind_out=False, worker=name,
                                  heartbeat_s=HEARTBEAT, liveness=LIVENESS, steps=2, warm_steps=2,
                                  status_period_s=0.05, log_period_s=0, **curve)  # fmt: skip
            self.nodes[name] = Node(model, node_cfg, self.ctx)
        self.running = set(names)
        self.pub = publisher(ep["in"], client, context=self.ctx)
        self.sub = subscriber(ep["out"], (b"pose3d/", b"error", b"cluster"), client, hwm=0, context=self.ctx)
        self.received: list[tuple[str, dict]] = []

    def spin(self, n: int = 1) -> list[tuple[str, dict]]:
        out = []
        for _ in range(n):
            self.router.spin_once()
            for name in self.running:
                self.nodes[name].spin_once()
            while self.sub.poll(0):
                out.append(decode(self.sub.recv_multipart()))
        self.received += out
        return out

    def until(self, condition, what: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, f"never: {what}"
            self.spin()

    def owner_of(self, stream: str) -> str | None:
        """The worker the router places ``stream`` on now."""
        return self.router.keys[route_key(stream, None)].owner

    def events(self) -> list[str]:
        last = [p for t, p in self.received if t == "cluster"]
        return list(last[-1]["events"]) if last else []

    def close(self) -> None:
        self.pub.close(0)
        self.sub.close(0)
        for node in self.nodes.values():
            node.close()
        self.router.close()
        self.ctx.destroy(linger=0)


def answered(messages: list[tuple[str, dict]]) -> set[tuple[str, int]]:
    """(stream, frame) of every pose3d, rig views included, and of every drop notice."""
    out = set()
    for topic, p in messages:
        if topic.startswith("pose3d/"):
            out.add((p["stream"], p["frame"]))
            out |= {(v["stream"], v["frame"]) for v in p.get("views", ())}
        elif topic == "error" and p["kind"] in ("superseded", "stale", "late", "no_worker"):
            out.add((p["stream"], p["frame"]))
    return out


def rig_camera(k: int) -> dict:
    """``camera_message`` arguments of a two-camera rig's camera (the second looks from the side)."""
    R = np.eye(3) if k == 0 else np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    return {"R": R, "t": np.array([0.0, 0.0, 5.0]), "rig": "studio"}


def announce(c: Cluster, streams: list[str], cameras: dict[str, dict]) -> None:
    """Latch every stream's camera (camera/<stream>, with ``cameras[stream]``'s extrinsics and rig,
    sent until each stream's probe frame is answered)."""
    c.until(lambda: c.router.live() and len(c.router.live()) == len(c.nodes), "every worker joined")

    def all_answered() -> bool:
        for s in streams:
            c.pub.send_multipart(camera_message(s, K, **cameras.get(s, {})))
            c.pub.send_multipart(kp2d_message(s, -1, time.time_ns(), []))
        c.spin(3)
        return all((s, -1) in answered(c.received) for s in streams)

    c.until(all_answered, "each stream's probe answered")


@pytest.fixture
def cluster():
    c = Cluster(load_model(), router_cfg={"busy_limit_s": 1.5})
    yield c
    c.close()


@pytest.mark.parametrize("hops", ["ipc", "tcp"])
def test_every_frame_of_a_stream_reaches_one_worker_and_a_rigs_views_stay_together(hops, test_set):
    """Over ipc (the local default) and TCP (workers on other machines connect by address)."""
    tcp = {"work": "tcp://127.0.0.1:*", "collect": "tcp://127.0.0.1:*"} if hops == "tcp" else {}
    c = Cluster(load_model(), router_cfg=tcp)
    try:
        assert c.router.endpoints["work"].startswith(f"{hops}://")
        check_routing(c, test_set)
    finally:
        c.close()


def check_routing(c: Cluster, test_set) -> None:
    streams = [f"cam{k}" for k in range(6)]
    rig = {"studio0": rig_camera(0), "studio1": rig_camera(1)}
    announce(c, streams + list(rig), rig)
    sent = set()
    for n in range(8):
        t = time.time_ns()
        for s in streams:
            c.pub.send_multipart(kp2d_message(s, n, t, persons_of(test_set, [n])))
            sent.add((s, n))
        for s in rig:  # no persons: this test is about where frames go, not about fusing them
            c.pub.send_multipart(kp2d_message(s, n, t, []))
            sent.add((s, n))
        c.spin(2)
    c.until(lambda: sent <= answered(c.received), "every frame answered")
    holders = {s: [w for w, node in c.nodes.items() if s in node.streams] for s in streams + list(rig)}
    assert all(len(h) == 1 for h in holders.values()), holders
    assert holders["studio0"] == holders["studio1"]
    assert {h[0] for h in holders.values()} == set(c.nodes)  # both workers took streams
    assert any(t == "pose3d/studio" for t, _ in c.received)  # the rig's frames, from its one worker
    assert c.router.moved == 0 or c.events()  # a move is always said


def test_a_lost_worker_s_streams_move_to_the_survivor_and_come_back(cluster, test_set):
    c = cluster
    streams = [f"cam{k}" for k in range(6)]
    announce(c, streams, {})
    home = {s: c.owner_of(s) for s in streams}
    mine = [s for s in streams if home[s] == "w1"]
    theirs = [s for s in streams if home[s] == "w0"]
    assert mine and theirs
    n = 0

    def send_round() -> None:
        nonlocal n
        n += 1
        for s in streams:
            c.pub.send_multipart(kp2d_message(s, n, time.time_ns(), persons_of(test_set, [n % 50])))
        c.spin(2)

    def after(event: str) -> None:
        """Once ``event`` is in the cluster's events, three rounds of frames, the last one answered on every stream."""
        c.until(lambda: any(event in e for e in c.events()), event, 30)
        for _ in range(3):
            send_round()
        last = n
        c.until(lambda: all((s, last) in answered(c.received) for s in streams), f"every stream answered after {event}")

    # w1 hangs: its loop sends no heartbeats and reads nothing (its keep-alive thread goes on); after
    # busy_limit_s its streams move to w0, which gets their cameras from the router (sent only once)
    c.running.discard("w1")
    after("w1 lost (alive but its loop silent")
    assert all(c.owner_of(s) == "w0" for s in mine)
    assert not [e for t, e in c.received if t == "error" and e["kind"] == "no_camera"]
    status = [p for t, p in c.received if t == "cluster"][-1]
    assert status["moved"] >= len(mine) and not next(w for w in status["workers"] if w["name"] == "w1")["alive"]
    # w0's own streams lost nothing while w1 was hung: every frame answered
    assert all((s, k) in answered(c.received) for s in theirs for k in range(1, n + 1))
    # w1 comes back: its streams return to it (a rebalance), w0 keeps its own
    c.running.add("w1")
    after("w1 joined")
    assert {s: c.owner_of(s) for s in streams} == home
    assert all((s, k) in answered(c.received) for s in theirs for k in range(1, n + 1))


def crash(c: Cluster, names: list[str], streams: list[str], test_set) -> None:
    """Workers ``names`` crash (their connections close: no goodbye, heartbeats just stop). Frames go
    on until the router has lost each one because a send to it failed (ROUTER_MANDATORY), long before
    the heartbeat timeout; those sent before it noticed went down with them, so one more frame per
    stream is sent and must be answered by the survivors."""
    for name in names:
        c.running.discard(name)
        c.nodes[name].link.socket.close(0)
    deadline = time.monotonic() + 30
    while not all(any(f"{n} lost (its connection closed" in e for e in c.events()) for n in names):
        assert time.monotonic() < deadline, c.events()
        for s in streams:
            c.pub.send_multipart(kp2d_message(s, 99, time.time_ns(), persons_of(test_set, [0])))
        c.spin(2)
    for s in streams:
        c.pub.send_multipart(kp2d_message(s, 100, time.time_ns(), persons_of(test_set, [0])))
    c.until(lambda: all((s, 100) in answered(c.received) for s in streams), "all streams answered by the survivors")


def test_a_worker_whose_connection_closes_is_lost_at_once(cluster, test_set):
    c = cluster
    streams = [f"cam{k}" for k in range(4)]
    announce(c, streams, {})
    crash(c, ["w1"], streams, test_set)
    assert all(c.owner_of(s) == "w0" for s in streams)


def test_curve_on_every_hop(tmp_path, test_set):
    """Senders, consumers and workers all reach the router over CurveZMQ; a client without its key gets nothing."""
    import zmq.auth

    router_public, router_secret = zmq.auth.create_certificates(tmp_path, "router")
    _, client_secret = zmq.auth.create_certificates(tmp_path, "client")
    c = Cluster(load_model(), names=("w0",), router_cfg={"curve_secret_key": str(router_secret)},
                client=(str(router_public), str(client_secret)))  # fmt: skip
    try:
        announce(c, ["cam0"], {})  # sender -> router -> worker -> proxy -> consumer, each hop encrypted
        plain = subscriber(c.router.endpoints["out"], (b"",), context=c.ctx)
        c.spin(10)
        assert not plain.poll(100)
        plain.close(0)
    finally:
        c.close()


def test_the_cluster_command_restarts_a_killed_worker_and_moves_its_streams_back(tmp_path, test_set):
    """``pads-stream cluster`` as a user starts it: a worker killed with SIGKILL is lost, its streams are
    answered by the other, it is restarted, it takes its streams back; ``cluster`` says each step."""
    ctx = zmq.Context()
    with ctx.socket(zmq.PUB) as s:
        inp = f"tcp://127.0.0.1:{s.bind_to_random_port('tcp://127.0.0.1')}"
    with ctx.socket(zmq.PUB) as s:
        out = f"tcp://127.0.0.1:{s.bind_to_random_port('tcp://127.0.0.1')}"
    cmd = [sys.executable, "-m", "pads_stream.cli", "cluster", "--workers", "2", "--in", inp, "--out", out,
           "--heartbeat", "0.1", "--steps", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pub = publisher(inp, context=ctx)
    sub = subscriber(out, (b"pose3d/", b"cluster"), hwm=0, context=ctx)
    streams = [f"cam{k}" for k in range(6)]
    got: list[tuple[str, dict]] = []
    n = 0

    def send_and_read(seconds: float) -> None:
        nonlocal n
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            n += 1
            for s in streams:
                pub.send_multipart(kp2d_message(s, n, time.time_ns(), persons_of(test_set, [n % 50]),
                                                camera={"K": K.tolist()}))  # fmt: skip
            while sub.poll(50):
                got.append(decode(sub.recv_multipart()))

    def latest() -> dict:
        return next((p for t, p in reversed(got) if t == "cluster"), {"workers": [], "events": []})

    def wait(condition, what: str) -> None:
        deadline = time.monotonic() + 90
        while not condition():
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, f"never: {what}; last cluster message {latest()}"
            send_and_read(0.2)

    try:
        wait(lambda: sum(w["alive"] for w in latest()["workers"]) == 2 and all(w["load"] for w in latest()["workers"]),
             "two workers up")  # fmt: skip
        wait(lambda: {p["stream"] for t, p in got[-200:] if t.startswith("pose3d/")} >= set(streams), "all answered")
        victim = next(w for w in latest()["workers"] if w["name"] == "w1")
        assert victim["keys"] > 0
        os.kill(victim["load"]["pid"], signal.SIGKILL)
        killed_at = n
        wait(lambda: any("w1 lost" in e for e in latest()["events"]), "w1 lost")
        wait(lambda: {p["stream"] for t, p in got if t.startswith("pose3d/") and p["frame"] > killed_at + 2}
             >= set(streams), "every stream answered again")  # fmt: skip
        wait(lambda: sum("w1 joined" in e for e in latest()["events"]) == 2 and latest()["restarts"] == 1,
             "w1 restarted and rejoined")  # fmt: skip
        back = next(w for w in latest()["workers"] if w["name"] == "w1")
        assert back["alive"] and back["keys"] > 0 and back["joined"] == 2 and back["lost"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out_text = proc.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            out_text = proc.communicate()[0]
        pub.close(0)
        sub.close(0)
        ctx.term()
    assert proc.returncode == 0, out_text
    assert "pads-stream cluster: stopped" in out_text


def test_two_workers_that_crash_together_leave_their_streams_to_the_third(test_set):
    """Losing one worker re-places its streams; a send there may find the other gone too. Each loss
    is handled on its own: every stream ends on the survivor, and no event says none is left."""
    c = Cluster(load_model(), names=("w0", "w1", "w2"))
    try:
        streams = [f"cam{k}" for k in range(6)]
        announce(c, streams, {})
        crash(c, ["w0", "w1"], streams, test_set)
        assert all(c.owner_of(s) == "w2" for s in streams)
        assert not any("no worker left" in e for e in c.events())
    finally:
        c.close()


def test_a_slow_worker_is_slow_not_lost_and_a_killed_one_is_lost(test_set):
    """Issue 28, item 5: w1's batches take 2 s (longer than liveness x heartbeat): its keep-alive
    thread keeps it in the cluster and every frame is answered; killed (both connections closed,
    no goodbye), it is lost by the liveness timeout as before."""
    c = Cluster(load_model())
    try:
        streams = [f"cam{k}" for k in range(4)]
        announce(c, streams, {})
        node = c.nodes["w1"]
        estimate = node.estimate

        def slow(batch, steps=None):  # 2 s; the router runs on meanwhile (in a real cluster it is another process)
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                c.router.spin_once()
            return estimate(batch, steps)

        node.estimate = slow
        for n in range(1, 4):
            for s in streams:
                c.pub.send_multipart(kp2d_message(s, n, time.time_ns(), persons_of(test_set, [n])))
            c.spin(3)
        c.until(lambda: all((s, 3) in answered(c.received) for s in streams), "every stream answered")
        assert not [e for e in c.events() if "lost" in e], c.events()
        assert node.link.reconnects == 0  # the router's heartbeats waited behind each batch: no silence
        assert all(w["alive"] for w in [p for t, p in c.received if t == "cluster"][-1]["workers"])
        c.running.discard("w1")  # killed: neither connection says goodbye
        node.link._stop.set()
        node.link.socket.close(0)
        c.until(lambda: any("w1 lost" in e for e in c.events()), "w1 lost", 10)
        # by the liveness timeout (0.5 s here) or a failed send, not by the 30 s limit on a silent loop
        (event,) = [e for e in c.events() if "w1 lost" in e]
        assert "no heartbeat" in event or "connection closed" in event, event
    finally:
        c.close()


def test_cluster_help_lists_the_node_options_its_docs_use(capsys):
    """Issue 31, item 4: ``cluster --help`` shows the node options passed to its workers."""
    from pads_stream.cluster.router import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert all(option in text for option in ("--steps", "--config", "--backend", "--model", "node options"))
