"""``pads-stream node``: 2D keypoints in over ZeroMQ, posterior sampling per frame, 3D poses out.

Sockets: one SUB (``kp2d/…``, ``camera/…``) and one PUB (``pose3d/…``, ``status``, ``error``),
both owned by :class:`Node`, polled from one thread, closed on the way out. Clocks: ``t_ns`` is
the sender's capture time, passed through untouched; ``t_recv_ns`` and ``t_pub_ns`` are this
host's ``time.time_ns()``; latency is t_pub − t_recv. Units: pixels in; metres out, camera
frame (OpenCV axes). Protocol: ``docs/protocol.md``.

Real time: per stream only the newest unprocessed frame is kept (an older one still waiting is
counted as ``superseded``); frames that waited longer than the latency budget are dropped
(``stale``); every person of every ready stream goes into one sampler call. Each person seen
in the previous frame of its stream starts from that frame's 3D pose at a lower noise level
with fewer steps (warm start). Bad input is answered on ``error`` and counted, never raised.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zmq

from .api import PoseModel, load_model
from .camera import normalized_rays, project, undistort_points
from .config import load_json, to_dict
from .rootfind import initial_root, solve_root
from .skeleton import to_h36m
from .wire import VERSION, Camera, CameraUpdate, Kp2dFrame, WireError, decode_inbound, encode

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "node.json"


@dataclass(frozen=True)
class NodeConfig:
    """Node settings (``configs/node.json`` overrides these defaults)."""

    inp: str = "tcp://*:5555"  # where rigs publish 2D keypoints
    out: str = "tcp://*:5556"  # where consumers subscribe to 3D poses
    bind_in: bool = True  # bind the input (rigs connect), else connect to it
    bind_out: bool = True  # bind the output (consumers connect), else connect to it
    model: str | None = None  # checkpoint; None = the shipped default
    backend: str = "auto"
    steps: int = 10  # cold start: DDIM steps from the sampler's t_start
    hypotheses: int | None = None  # samples averaged per person; None = the model's sampler setting
    warm_start: bool = True
    warm_steps: int = 5  # warm start: steps from warm_t_start
    warm_t_start: int = 200
    warm_max_gap_ms: float = 250.0  # a person's previous pose older than this is not reused
    root_passes: int = 2  # unknown root: sampler passes (the 2nd re-estimates with the solved root)
    latency_budget_ms: float = 100.0  # frames waiting longer than this are dropped
    poll_ms: int = 5
    status_period_s: float = 1.0
    max_streams: int = 256
    max_batch: int = 512  # persons per sampler call
    receive_hwm: int = 1000  # ZeroMQ queue bound, messages
    seed: int = 0


@dataclass
class _Ready:
    """One person of a frame, ready for the sampler (arrays in H36M order, pixels/metres)."""

    frame: Kp2dFrame
    t_recv: int
    person_id: int
    kp: np.ndarray  # (17, 2) undistorted px
    conf: np.ndarray  # (17,)
    K: np.ndarray  # (3, 3)
    root: np.ndarray | None  # (3,) m or None (unknown)


class Stats:
    """Counters and the latency window reported on ``status``."""

    def __init__(self) -> None:
        self.frames_in = self.frames_out = self.persons_out = 0
        self.dropped: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.latency_ms: collections.deque[float] = collections.deque(maxlen=2000)
        self.started = time.monotonic()

    def payload(self, backend: str, model_hash: str) -> dict:
        lat = np.asarray(self.latency_ms) if self.latency_ms else np.zeros(1)
        return {
            "v": VERSION, "frames_in": self.frames_in, "frames_out": self.frames_out, "persons_out": self.persons_out,
            "dropped": dict(self.dropped), "errors": dict(self.errors),
            "latency_ms": {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99))},
            "backend": backend, "model_hash": model_hash, "uptime_s": time.monotonic() - self.started,
        }  # fmt: skip


class Node:
    """The streaming node: owns its sockets; :meth:`run` until :meth:`stop`, then :meth:`close`."""

    def __init__(self, model: PoseModel, cfg: NodeConfig, context: zmq.Context | None = None):
        self.model, self.cfg = model, cfg
        self.context = context or zmq.Context.instance()
        self.sub = self.context.socket(zmq.SUB)
        self.sub.setsockopt(zmq.RCVHWM, cfg.receive_hwm)
        self.sub.setsockopt(zmq.LINGER, 0)
        for prefix in (b"kp2d/", b"camera/"):
            self.sub.setsockopt(zmq.SUBSCRIBE, prefix)
        self.pub = self.context.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 1000)
        (self.sub.bind if cfg.bind_in else self.sub.connect)(cfg.inp)
        (self.pub.bind if cfg.bind_out else self.pub.connect)(cfg.out)
        self.poller = zmq.Poller()
        self.poller.register(self.sub, zmq.POLLIN)
        self.cameras: dict[str, Camera] = {}
        self.pending: dict[str, tuple[Kp2dFrame, int]] = {}
        self.previous: dict[tuple[str, int], tuple[int, np.ndarray, np.ndarray]] = {}  # t_recv, rel, root
        self.stats = Stats()
        self.stopping = False
        self.next_status = time.monotonic()
        self.batches = 0

    @property
    def endpoints(self) -> tuple[str, str]:
        """The bound or connected (input, output) endpoints, with real ports."""
        return (self.sub.getsockopt_string(zmq.LAST_ENDPOINT) or self.cfg.inp,
                self.pub.getsockopt_string(zmq.LAST_ENDPOINT) or self.cfg.out)  # fmt: skip

    def stop(self, *_: object) -> None:
        """Ask :meth:`run` to return after the batch in flight (safe from a signal handler)."""
        self.stopping = True

    def close(self) -> None:
        self.sub.close()
        self.pub.close()

    def run(self) -> None:
        """Poll, process and publish until :meth:`stop`; the batch in flight is finished."""
        while not self.stopping:
            self.spin_once()

    def spin_once(self) -> None:
        """One iteration: wait up to ``poll_ms`` for input, drain it, process, maybe report."""
        if self.poller.poll(self.cfg.poll_ms):
            self.drain()
        if self.pending:
            self.process()
        if time.monotonic() >= self.next_status:
            self.next_status = time.monotonic() + self.cfg.status_period_s
            self.pub.send_multipart(
                encode("status", self.stats.payload(self.model.backend.name, self.model.model_hash))
            )

    # -- input ---------------------------------------------------------------------------

    def drain(self, limit: int = 10000) -> None:
        """Receive everything queued (up to ``limit``), keeping the newest frame per stream."""
        for _ in range(limit):
            try:
                frames = self.sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            t_recv = time.time_ns()
            try:
                msg = decode_inbound(frames)
            except WireError as err:
                self.reject(err)
                continue
            if (
                msg.stream not in self.cameras
                and msg.stream not in self.pending
                and len(self.cameras) >= self.cfg.max_streams
            ):
                limit = f"more than {self.cfg.max_streams} streams"
                self.reject(WireError("too_many_streams", limit, msg.stream, getattr(msg, "frame", None)))
                continue
            if isinstance(msg, CameraUpdate):
                self.cameras[msg.stream] = msg.camera
                continue
            self.stats.frames_in += 1
            if msg.camera is not None:
                self.cameras[msg.stream] = msg.camera
            if msg.stream in self.pending:
                self.stats.dropped["superseded"] += 1
            self.pending[msg.stream] = (msg, t_recv)

    def reject(self, err: WireError) -> None:
        self.stats.errors[err.kind] += 1
        payload = {"v": VERSION, "stream": err.stream, "frame": err.frame, "kind": err.kind, "reason": err.reason}
        self.pub.send_multipart(encode("error", payload))

    def ready_persons(self) -> list[_Ready]:
        """Pending frames within the latency budget, as per-person records (H36M, undistorted)."""
        now = time.time_ns()
        budget = self.cfg.latency_budget_ms * 1e6
        ready: list[_Ready] = []
        for stream, (frame, t_recv) in self.pending.items():
            if now - t_recv > budget:
                self.stats.dropped["stale"] += 1
                continue
            camera = self.cameras.get(stream)
            if camera is None:
                self.reject(WireError("no_camera", "no camera latched for this stream: send camera/<stream> or "
                                      "include camera in kp2d", stream, frame.frame))  # fmt: skip
                continue
            if not frame.persons:
                self.publish(frame, t_recv, [])
                continue
            kp = np.stack([p.kp for p in frame.persons])
            conf = np.stack([p.conf for p in frame.persons])
            kp, conf = to_h36m(kp, conf, frame.layout)
            if camera.dist is not None:
                kp = undistort_points(kp, camera.K, camera.dist)
            for k, person in enumerate(frame.persons):
                if not np.any(conf[k] > 0):
                    self.reject(
                        WireError("value", f"person {person.id} has no joint with confidence > 0", stream, frame.frame)
                    )
                    continue
                ready.append(_Ready(frame, t_recv, person.id, kp[k], conf[k], camera.K, person.root))
        self.pending.clear()
        return ready

    # -- estimation ----------------------------------------------------------------------

    def process(self) -> None:
        """Estimate every ready person in batched sampler calls and publish per stream."""
        ready = self.ready_persons()
        by_stream: dict[str, list[tuple[_Ready, np.ndarray, np.ndarray]]] = {}  # one frame per stream
        for lo in range(0, len(ready), self.cfg.max_batch):
            batch = ready[lo : lo + self.cfg.max_batch]
            for r, (rel, root) in zip(batch, self.estimate(batch), strict=True):
                by_stream.setdefault(r.frame.stream, []).append((r, rel, root))
        for items in by_stream.values():
            self.publish(items[0][0].frame, items[0][0].t_recv, items)

    def estimate(self, batch: list[_Ready]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(rel (17, 3), root (3,)) per person of ``batch``; one sampler call per start kind."""
        cfg = self.cfg
        kp = np.stack([r.kp for r in batch])
        conf = np.stack([r.conf for r in batch])
        K = np.stack([r.K for r in batch])
        rays = normalized_rays(kp, K)[..., :2]
        root = np.stack([r.root if r.root is not None else np.zeros(3) for r in batch])
        unknown = np.array([r.root is None for r in batch])
        warm_init = np.zeros((len(batch), 17, 3))
        warm = np.zeros(len(batch), bool)
        if cfg.warm_start:
            for k, r in enumerate(batch):
                prev = self.previous.get((r.frame.stream, r.person_id))
                if prev is not None and r.t_recv - prev[0] <= cfg.warm_max_gap_ms * 1e6:
                    warm[k], warm_init[k] = True, prev[1]
                    if unknown[k]:
                        root[k] = prev[2]
        guess = unknown & ~warm
        if guess.any():
            root[guess] = initial_root(rays[guess], conf[guess])
        rel = np.zeros((len(batch), 17, 3))
        self.batches += 1
        seed = cfg.seed + self.batches
        starts = ((~warm, None, cfg.steps, None), (warm, warm_init, cfg.warm_steps, cfg.warm_t_start))
        for group, init, steps, t_start in starts:
            if group.any():
                start = None if init is None else init[group]
                rel[group] = self.model.estimate(
                    kp[group], K[group], root[group], conf[group], steps=steps, seed=seed, init=start, t_start=t_start
                )
        passes = cfg.root_passes if unknown.any() else 0
        for p in range(passes):
            solved = solve_root(rel[unknown], rays[unknown], conf[unknown])
            # keep the previous root where the solve left the plausible range (a poor pose early on)
            ratio = solved[:, 2] / root[unknown, 2]
            root[unknown] = np.where(((ratio > 0.5) & (ratio < 2.0))[:, None], solved, root[unknown])
            if p + 1 < passes:
                rel[unknown] = self.model.estimate(kp[unknown], K[unknown], root[unknown], conf[unknown],
                                                   steps=cfg.warm_steps, seed=seed, init=rel[unknown],
                                                   t_start=cfg.warm_t_start)  # fmt: skip
        for k, r in enumerate(batch):
            self.previous[(r.frame.stream, r.person_id)] = (r.t_recv, rel[k], root[k])
        return list(zip(rel, root, strict=True))

    # -- output --------------------------------------------------------------------------

    def publish(self, frame: Kp2dFrame, t_recv: int, items: list[tuple[_Ready, np.ndarray, np.ndarray]]) -> None:
        persons = []
        for r, rel, root in items:
            joints = rel + root
            err = np.linalg.norm(project(joints[None], r.K[None])[0] - r.kp, axis=-1)
            w = r.conf > 0
            persons.append({
                "id": r.person_id, "joints": joints.tolist(), "root": root.tolist(), "rel": rel.tolist(),
                "reproj_px": float(err[w].mean()), "conf": r.conf.tolist(),
            })  # fmt: skip
        t_pub = time.time_ns()
        payload = {"v": VERSION, "stream": frame.stream, "frame": frame.frame, "t_ns": frame.t_ns,
                   "t_recv_ns": t_recv, "t_pub_ns": t_pub, "layout": "h36m17", "persons": persons}  # fmt: skip
        self.pub.send_multipart(encode(f"pose3d/{frame.stream}", payload))
        self.stats.frames_out += 1
        self.stats.persons_out += len(persons)
        self.stats.latency_ms.append((t_pub - t_recv) / 1e6)


def warm_up(model: PoseModel, cfg: NodeConfig) -> None:
    """One small estimate so the first real frame does not pay for session creation."""
    K = np.array([[1000.0, 0, 500], [0, 1000, 500], [0, 0, 1]])
    kp = np.tile(np.linspace(400, 600, 17)[:, None], (1, 1, 2))
    model.estimate(kp, K, np.array([[0.0, 0.0, 5.0]]), steps=min(cfg.steps, 2))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pads-stream node", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--config", default=str(DEFAULT_CONFIG) if DEFAULT_CONFIG.exists() else None)
    parser.add_argument("--in", dest="inp", help="bind the input here (default tcp://*:5555)")
    parser.add_argument("--out", help="bind the output here (default tcp://*:5556)")
    parser.add_argument("--in-connect", help="connect the input to this endpoint instead of binding")
    parser.add_argument("--out-connect", help="connect the output to this endpoint instead of binding")
    parser.add_argument("--model", help="checkpoint (default: the shipped model)")
    parser.add_argument("--backend", choices=("auto", "torch", "onnxruntime", "tensorrt"))
    parser.add_argument("--steps", type=int)
    args = parser.parse_args(argv)
    values = to_dict(load_json(NodeConfig, args.config))
    for key, value in (("inp", args.inp), ("out", args.out), ("model", args.model), ("backend", args.backend),
                       ("steps", args.steps)):  # fmt: skip
        if value is not None:
            values[key] = value
    if args.in_connect:
        values.update(inp=args.in_connect, bind_in=False)
    if args.out_connect:
        values.update(out=args.out_connect, bind_out=False)
    cfg = NodeConfig(**values)
    model = load_model(cfg.model, backend=cfg.backend)
    if cfg.hypotheses is not None:
        model.sampler = dataclasses.replace(model.sampler, hypotheses=cfg.hypotheses)
    warm_up(model, cfg)
    node = Node(model, cfg)
    signal.signal(signal.SIGINT, node.stop)
    signal.signal(signal.SIGTERM, node.stop)
    inp, out = node.endpoints
    print(f"pads-stream node: in {inp}, out {out}, backend {model.backend.name}, model {model.model_hash}", flush=True)
    try:
        node.run()
    finally:
        node.close()
    print(f"pads-stream node: stopped after {node.stats.frames_out} frames", flush=True)
