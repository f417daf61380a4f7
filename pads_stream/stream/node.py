"""``pads-stream node``: 2D keypoints in over ZeroMQ, posterior sampling per frame, 3D poses out.

Sockets: one SUB (``kp2d/…``, ``camera/…``) and one PUB (``pose3d/…``, ``status``, ``error``),
both owned by :class:`Node`, polled from one thread, closed on the way out. Units: pixels in;
metres out, camera frame (OpenCV axes). Protocol: ``docs/protocol.md``.

Clocks: ``t_ns`` is the sender's capture time, passed through untouched; ``t_recv_ns`` and
``t_pub_ns`` are this host's ``time.time_ns()``. Each stream's clock is followed by
:class:`pads_stream.stream.clock.SenderClock` (an offset that survives steps); a frame's **age** is its
delay since capture on this host's clock, so time spent queued in ZeroMQ counts even when the
clocks differ. Frames whose age exceeds the latency budget are dropped (``stale``), on arrival or
before sampling; every dropped frame is answered on ``error`` with the reason.

Real time: per stream only the newest unprocessed frame is kept (an older one still waiting is
``superseded``); every person of every ready stream goes into one batched sampler call per
start kind. Tracking (warm starts, the depth and One Euro filters, the plausibility gate) is the
socket-free :mod:`pads_stream.stream.tracker`, one :class:`~pads_stream.stream.tracker.StreamTracks` per
stream. Containment: bad input and failed
estimates are answered on ``error`` and counted, per person where possible; nothing one stream
sends can stop the node or another stream. State (streams, cameras, tracks) is bounded and expires.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import socket
import sys
import time

import numpy as np
import zmq

from ..api import PoseModel, load_model
from ..api.budget import StepCost
from ..common.config import from_dict, load_json, to_dict
from ..common.files import shipped
from ..common.shutdown import DeferredStop, exit_on_stop_signals
from ..data import rig_files
from ..data.rig_files import CameraCalibration
from .admission import Admission
from .batching import Batching
from .calibration import RigCalibrator
from .clock import ClockConfig, SenderClock
from .fusion import RigFrames, RigTracks
from .node_state import NodeConfig, Pending, StreamState
from .publishing import Publishing, Stats, status_line
from .rig_instant import ViewMotion
from .sockets import RateLimit, add_curve_argument, inbound
from .wire import (
    WorkerLoad,
    encode_status,
)
from .worker import RouterLink

DEFAULT_CONFIG = shipped("configs", "node.json")


class Node(Admission, Batching, Publishing):
    """The streaming node: owns its sockets; :meth:`run` until :meth:`stop`, then :meth:`close`."""

    def __init__(self, model: PoseModel, cfg: NodeConfig, context: zmq.Context | None = None):
        self.model, self.cfg = model, cfg
        self.context = context or zmq.Context.instance()
        client = (cfg.curve_server_key, cfg.curve_client_secret) if cfg.curve_server_key else None
        self.link = None  # a cluster worker's link to its router (input), else the input SUB below
        if cfg.router:
            name = cfg.worker or f"{socket.gethostname()}-{os.getpid()}"
            self.link = RouterLink(self.context, cfg.router, name, cfg.heartbeat_s, cfg.liveness, cfg.receive_hwm,
                                   client)  # fmt: skip
            self.sub = self.link.socket
        else:
            self.sub = inbound(self.context, cfg.receive_hwm)
        self.pub = self.context.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 1000)
        self.auth = None
        # CURVE roles: a socket that connects with client keys is a client, any other a server (with the
        # node's key); a worker's link configures itself
        own = [(self.pub, cfg.bind_out)] + ([(self.sub, cfg.bind_in)] if self.link is None else [])
        if cfg.curve_secret_key:
            from .security import serve_curve

            servers = [sock for sock, binds in own if binds or client is None]
            self.auth = serve_curve(self.context, servers, cfg.curve_secret_key, cfg.curve_clients)
        if client is not None:
            from .security import curve_client

            for sock in [sock for sock, binds in own if not binds]:
                curve_client(sock, *client)
        if not cfg.router:
            (self.sub.bind if cfg.bind_in else self.sub.connect)(cfg.inp)
        (self.pub.bind if cfg.bind_out else self.pub.connect)(cfg.out)
        self.busy = 0.0  # the last status's
        self.poller = zmq.Poller()
        self.poller.register(self.sub, zmq.POLLIN)
        self.streams: dict[str, StreamState] = {}
        self.pending: dict[str, Pending] = {}
        self.rigs: dict[str, RigFrames[Pending]] = {}  # rig name -> its member frames waiting to be fused
        self.rig_tracks: dict[str, RigTracks] = {}
        self.rig_motion: dict[str, ViewMotion] = {}  # rig name -> its members' previous frames (views at one instant)
        self.rig_clocks: dict[str, SenderClock] = {}
        # rig members' R, t and clocks from calibration files, by stream
        self.calibrations: dict[str, CameraCalibration] = {}
        for path in filter(None, (p.strip() for p in cfg.rig_calibration.split(","))):
            self.calibrations.update(rig_files.load(path))
        self.calibrator = RigCalibrator(cfg.rig_autocalibrate_s, cfg.rig_calibration_height_m or None, cfg.rig_refine_s)
        for stream, cam in self.calibrations.items():  # a file's cameras are watched for bumps too
            self.calibrator.watch(cam.rig, stream)
        self.rig_frames: dict[str, int] = {}  # rig name -> rig frames published (the rig pose3d's frame)
        self.stats = Stats()
        self.stopping = False
        self.next_status = self.next_log = time.monotonic()
        self.logged_drops = 0  # drops counted at the last log line
        self.step_cost = StepCost()  # seconds per sampler step, learned from the batches run (steps_max)
        self.scaled: dict[int, NodeConfig] = {}  # the config at each step count chosen
        self.last_drop = -1e9  # time.monotonic() of the last drop notice (more steps wait 2 s after one)
        self.error_budget = RateLimit(cfg.max_errors_per_s)
        self.clock_cfg = ClockConfig(cfg.clock_step_s, cfg.clock_confirm)
        model.check_steps(cfg.steps, model.sampler.t_start)  # a bad config fails here, not per frame
        model.check_steps(cfg.warm_steps, cfg.warm_t_start)
        if cfg.rig_warm_t_start > 0:
            model.check_steps(cfg.steps, cfg.rig_warm_t_start)

    @property
    def endpoints(self) -> tuple[str, str]:
        """The bound or connected (input, output) endpoints, with real ports."""
        return (self.sub.getsockopt_string(zmq.LAST_ENDPOINT) or self.cfg.inp,
                self.pub.getsockopt_string(zmq.LAST_ENDPOINT) or self.cfg.out)  # fmt: skip

    def stop(self, *_: object) -> None:
        """Ask :meth:`run` to return after the batch in flight (safe from a signal handler)."""
        self.stopping = True

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
        else:
            self.sub.close()
        self.pub.close()
        if self.auth is not None:
            self.auth.stop()
        self.calibrator.close()

    def run(self) -> None:
        """Poll, process and publish until :meth:`stop`; the batch in flight is finished."""
        while not self.stopping:
            self.spin_once()

    def spin_once(self) -> None:
        """One iteration: wait up to ``poll_ms`` for input, drain it, process, maybe report."""
        if self.poller.poll(self.cfg.poll_ms):
            self.drain()
        started = time.monotonic()
        if self.pending:
            self.process()
        if self.rigs:
            self.process_rigs()
        for _, cams in self.calibrator.finished():  # a rig's calibration walk just calibrated it
            for stream, cam in cams.items():
                self.install(stream, cam)
        now = time.monotonic()
        self.stats.busy_s += now - started
        if self.link is not None:
            self.tend_link()
        if now >= self.next_status:
            self.next_status = now + self.cfg.status_period_s
            self.expire(now)
            status = self.stats.status(self.model.backend.name, self.model.model_hash, len(self.streams),
                                       self.track_count(), self.link.name if self.link else None,
                                       self.calibration_status(), list(self.calibrator.events))  # fmt: skip
            self.busy = status.busy
            self.pub.send_multipart(encode_status(status))
            if self.cfg.log_period_s and now >= self.next_log:
                self.next_log = now + self.cfg.log_period_s
                dropped = sum(n for kind, n in status.dropped.items() if kind != "calibrating")
                say(status_line(status, dropped - self.logged_drops, self.cfg))
                self.logged_drops = dropped

    def install(self, stream: str, cam: CameraCalibration) -> None:
        """Use ``cam`` for ``stream`` from now on: its R, t latched, its clock applied to its frames."""
        self.calibrations[stream] = cam
        state = self.streams.get(stream)
        if state is not None and state.camera is not None and state.camera.rig == cam.rig:
            state.camera = dataclasses.replace(state.camera, R=cam.R, t=cam.t)

    def extrinsics(self, stream: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(R, t) of ``stream``'s latched camera, or (None, None)."""
        state = self.streams.get(stream)
        camera = state.camera if state is not None else None
        return (camera.R, camera.t) if camera is not None else (None, None)

    def calibration_status(self) -> dict[str, dict]:
        """Per self-calibrating rig: its state, walk seconds, failure reason, and once calibrated each
        member's R (9 floats, row-major), t, clock and state (``status.calibration``)."""
        out = self.calibrator.status()
        for rig, entry in out.items():
            entry["cameras"] = {s: {"R": c.R.reshape(-1).tolist(), "t": c.t.tolist(), "offset_ns": c.offset_ns,
                                    "drift_ppm": c.drift_ppm, "state": c.state}
                                for s, c in self.calibrations.items() if c.rig == rig}  # fmt: skip
        return out

    def track_count(self) -> int:
        """Remembered persons over all streams."""
        return sum(len(s.tracks.tracks) for s in self.streams.values())

    def tend_link(self) -> None:
        """A cluster worker: heartbeat to the router, reconnect when it went silent, stop when it
        has been silent for ``router_lost_exit_s``."""
        assert self.link is not None

        def load() -> WorkerLoad:
            return WorkerLoad(os.getpid(), len(self.streams), self.track_count(), self.busy, self.stats.frames_in,
                              self.stats.frames_out)  # fmt: skip

        silent = self.link.silent_s
        if self.link.tick(load):
            self.poller.unregister(self.sub)
            self.sub = self.link.socket
            self.poller.register(self.sub, zmq.POLLIN)
        if self.cfg.router_lost_exit_s and silent > self.cfg.router_lost_exit_s:
            say(f"pads-stream node: router {self.cfg.router} silent for {silent:.1f} s; stopping")
            self.stop()

    # -- input ---------------------------------------------------------------------------

    # -- estimation ----------------------------------------------------------------------

    # -- output --------------------------------------------------------------------------


def say(line: str) -> None:
    """Print a log line; a closed or full stdout (a parent that went away) never stops the node."""
    try:
        print(line, flush=True)
    except OSError:  # from now on to nowhere, so that the exit's own flush cannot fail either
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115


def warm_up(model: PoseModel, cfg: NodeConfig) -> None:
    """Small estimates (one camera, a rig of two) so the first real frames do not pay for session creation."""
    rays = np.tile(np.linspace(-0.1, 0.1, 17)[:, None], (1, 1, 2))
    model.lift(rays, np.ones((1, 17)), np.array([[0.0, 0.0, 5.0]]), steps=min(cfg.steps, 2))
    side = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # a camera on the x axis, facing back
    R = np.stack([np.eye(3), side])[:, None]
    t = np.array([[0.0, 0.0, 5.0], [0.0, 0.0, 5.0]])[:, None]
    model.lift_rig(np.stack([rays, rays]), np.ones((2, 1, 17)), R, t, steps=min(cfg.steps, 2))


def main(argv: list[str] | None = None) -> None:
    exit_on_stop_signals()  # while it imports: stop = exit 0 (the CLI sets it even earlier); then DeferredStop
    parser = argparse.ArgumentParser(prog="pads-stream node", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="node config JSON (default: %(default)s)")
    parser.add_argument("--in", dest="inp", help="bind the input here (default tcp://*:5555)")
    parser.add_argument("--out", help="bind the output here (default tcp://*:5556)")
    parser.add_argument("--in-connect", help="connect the input to this endpoint instead of binding")
    parser.add_argument("--out-connect", help="connect the output to this endpoint instead of binding")
    parser.add_argument("--model", help="checkpoint (default: the shipped model)")
    parser.add_argument("--backend", choices=("auto", "torch", "onnxruntime", "tensorrt"))
    parser.add_argument("--steps", type=int, help="cold-start sampler steps (default from the config: 10)")
    parser.add_argument("--rig-calibration", help="rig files from `pads-stream calibrate` (comma-separated): the "
                        "member streams' R, t and clocks for rig cameras sent without extrinsics")  # fmt: skip
    cluster = parser.add_argument_group("as a cluster's worker (docs/cluster.md)")
    cluster.add_argument("--router", help="take input from this cluster router endpoint (with --out-connect to its "
                         "collect endpoint)")  # fmt: skip
    cluster.add_argument("--worker", help="this worker's name (default <host>-<pid>)")
    cluster.add_argument("--heartbeat", type=float, help="seconds between heartbeats (default from the config: 0.25)")
    cluster.add_argument("--liveness", type=int, help="heartbeats the router may miss before a reconnect (default 3)")
    cluster.add_argument("--router-lost-exit", type=float, help="stop when the router is silent this long, s")
    add_curve_argument(cluster)
    args = parser.parse_args(argv)
    values = to_dict(load_json(NodeConfig, args.config))
    for key, value in (("router", args.router), ("worker", args.worker), ("heartbeat_s", args.heartbeat),
                       ("liveness", args.liveness), ("router_lost_exit_s", args.router_lost_exit)):  # fmt: skip
        if value is not None:
            values[key] = value
    if args.curve:
        values.update(curve_server_key=args.curve[0], curve_client_secret=args.curve[1])
    for key, value in (("inp", args.inp), ("out", args.out), ("model", args.model), ("backend", args.backend),
                       ("steps", args.steps), ("rig_calibration", args.rig_calibration)):  # fmt: skip
        if value is not None:
            values[key] = value
    if args.in_connect:
        values.update(inp=args.in_connect, bind_in=False)
    if args.out_connect:
        values.update(out=args.out_connect, bind_out=False)
    cfg = from_dict(NodeConfig, values, "node config")
    stop = DeferredStop()  # a stop while the model loads ends the node after the load, never inside it
    model = load_model(cfg.model, backend=cfg.backend, threads=cfg.threads)
    warm_up(model, cfg)
    if stop.requested:
        return
    node = Node(model, cfg)
    signal.signal(signal.SIGINT, node.stop)
    signal.signal(signal.SIGTERM, node.stop)
    if stop.requested:  # between the check above and the handlers
        node.stop()
    inp, out = node.endpoints
    say(f"pads-stream node: in {inp}, out {out}, backend {model.backend.name}, model {model.model_hash}")
    try:
        node.run()
    finally:
        node.close()
    say(f"pads-stream node: stopped after {node.stats.frames_out} frames")
