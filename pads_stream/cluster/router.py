"""``pads-stream cluster``: several node processes behind one input and one output address.

Built from ZeroMQ's own patterns (the zguide's), so senders and consumers change nothing:

- **Router** (:class:`Router`, this process): a SUB bound at the public input takes every sender's
  messages and forwards each, whole, to the worker that owns its stream, over one ROUTER socket
  that the workers' DEALERs connect to. The owner is chosen by rendezvous hashing
  (:mod:`pads_stream.cluster.placement`) of the stream's name, or of its rig's name when its camera names a
  rig (so all views of a rig land on one worker), among the live workers: tracks and warm starts
  stay on one worker, and a worker that leaves moves only its own streams.
- **Output**: one XSUB/XPUB proxy (``zmq.proxy_steerable``, a thread of this process): the workers'
  PUBs connect to its XSUB, consumers subscribe to its XPUB at the public output and see every
  worker's ``pose3d``, ``error`` and ``status``, and the router's own ``cluster`` summary.
- **Supervision** (Paranoid Pirate): workers heartbeat with their load every ``heartbeat_s``; one
  silent for ``liveness`` heartbeats, or whose connection closed, or that said goodbye, is lost: its
  streams move to the survivors (a cold start there, counted as ``moved`` and said in ``events``),
  and come back when it returns. The latest camera of every stream is replayed to its new worker, so
  a moved stream is answered at once. This command also restarts the local workers it started.
- Workers on other machines are plain nodes started with ``--router`` and ``--out-connect`` (see
  ``docs/cluster.md``). With ``--curve`` every hop is CurveZMQ.

Units and messages are the node's (``docs/protocol.md``); ``cluster`` is documented there too.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import zmq

from ..common.shutdown import exit_on_stop_signals
from ..stream.node import say
from ..stream.sockets import RateLimit, inbound
from ..stream.wire import (
    ClusterStatus,
    WorkerState,
    encode_cluster,
    encode_heartbeat,
)
from .routing import Routing
from .state import ClusterConfig, Key, Worker
from .supervision import Supervision


class Router(Supervision, Routing):
    """Owns the cluster's sockets and its proxy thread; :meth:`run` until :meth:`stop`, then :meth:`close`."""

    def __init__(self, cfg: ClusterConfig, context: zmq.Context | None = None):
        if cfg.heartbeat_s <= 0 or cfg.liveness < 1:
            raise ValueError(f"heartbeat_s must be > 0 and liveness >= 1 (got {cfg.heartbeat_s}, {cfg.liveness})")
        self.cfg = cfg
        self.context = context or zmq.Context.instance()
        self.folder = Path(tempfile.mkdtemp(prefix="pads-cluster-"))  # ipc endpoints and local keys
        work = cfg.work or f"ipc://{self.folder}/work"
        collect = cfg.collect or f"ipc://{self.folder}/collect"
        self.inp = inbound(self.context, 100000)  # as a node's input; the workers' queues bound what waits
        self.work = self.context.socket(zmq.ROUTER)
        self.work.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a send to a worker that is gone raises: it is lost
        self.work.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a worker that reconnects under its name takes over
        self.work.setsockopt(zmq.SNDHWM, cfg.send_hwm)
        self.work.setsockopt(zmq.LINGER, 0)
        self.xsub = self.context.socket(zmq.XSUB)
        self.xpub = self.context.socket(zmq.XPUB)
        self.xpub.setsockopt(zmq.LINGER, 1000)
        self.auth = None
        self.worker_keys: tuple[str, str] | None = None  # (router public, worker secret) for local workers
        if cfg.curve_secret_key:
            from ..stream.security import serve_curve

            self.worker_keys = self._worker_keys(cfg)
            allowed = str(self.folder / "workers")
            self.auth = serve_curve(self.context, [self.inp, self.xpub], cfg.curve_secret_key, cfg.curve_clients,
                                    "clients")  # fmt: skip
            self.auth = serve_curve(self.context, [self.work, self.xsub], cfg.curve_secret_key, allowed, "workers",
                                    self.auth)  # fmt: skip
        self.inp.bind(cfg.inp)
        self.xpub.bind(cfg.out)
        self.work.bind(work)
        self.xsub.bind(collect)
        self.collect_endpoint = self.xsub.getsockopt_string(zmq.LAST_ENDPOINT)
        self.xsub.bind(f"inproc://pads-cluster-{id(self)}")  # the router's own messages
        self.pub = self.context.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 1000)
        self.pub.connect(f"inproc://pads-cluster-{id(self)}")
        self.control = self.context.socket(zmq.PAIR)
        self.control.bind(f"inproc://pads-cluster-control-{id(self)}")
        proxy_control = self.context.socket(zmq.PAIR)
        proxy_control.connect(f"inproc://pads-cluster-control-{id(self)}")
        self.proxy = threading.Thread(target=self._proxy, args=(proxy_control,), name="pads-cluster-proxy", daemon=True)
        self.proxy.start()
        self.poller = zmq.Poller()
        self.poller.register(self.work, zmq.POLLIN)
        self.poller.register(self.inp, zmq.POLLIN)
        self.workers: dict[str, Worker] = {}
        self.keys: dict[str, Key] = {}
        self.stream_key: dict[str, str] = {}  # stream -> its placement key
        self.cameras: dict[str, list[bytes]] = {}  # stream -> its latest camera, as a camera/<stream> message
        self.gone: set[str] = set()  # workers a send found disconnected, to be lost (reap)
        self.routed = self.moved = self.no_worker = self.restarts = 0
        self.events: collections.deque[str] = collections.deque(maxlen=16)
        self.started = time.monotonic()
        self.next_beat = self.next_status = self.next_log = self.started
        self.error_budget = RateLimit(cfg.max_errors_per_s)
        self.stopping = False

    def _proxy(self, control: zmq.Socket) -> None:
        """The output proxy's thread: workers' messages to consumers, consumers' subscriptions back."""
        try:
            zmq.proxy_steerable(self.xsub, self.xpub, None, control)
        except zmq.ContextTerminated:
            pass
        control.close(0)

    def _worker_keys(self, cfg: ClusterConfig) -> tuple[str, str]:
        """A key pair for this machine's workers, admitted beside ``curve_workers``' keys."""
        import zmq.auth

        allowed = self.folder / "workers"
        allowed.mkdir()
        if cfg.curve_workers:
            for key in Path(cfg.curve_workers).glob("*.key"):
                shutil.copy(key, allowed / key.name)
        public, secret = zmq.auth.create_certificates(str(self.folder), "local-worker")
        shutil.copy(public, allowed / "local-worker.key")
        router_public = self.folder / "router.key"
        public_key, _ = zmq.auth.load_certificate(cfg.curve_secret_key)
        router_public.write_text(f'curve\n    public-key = "{public_key.decode()}"\n')
        return str(router_public), secret

    @property
    def endpoints(self) -> dict[str, str]:
        """The bound endpoints (real ports): in, out, work, collect."""
        get = lambda s: s.getsockopt_string(zmq.LAST_ENDPOINT)  # noqa: E731
        return {"in": get(self.inp), "out": get(self.xpub), "work": get(self.work), "collect": self.collect_endpoint}

    def stop(self, *_: object) -> None:
        """Ask :meth:`run` to return (safe from a signal handler)."""
        self.stopping = True

    def close(self) -> None:
        self.control.send(b"TERMINATE")
        self.proxy.join(timeout=5)
        for sock in (self.inp, self.work, self.pub, self.control, self.xsub, self.xpub):
            sock.close()
        if self.auth is not None:
            self.auth.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def run(self, tend: Callable[[], None] | None = None) -> None:
        """Route and supervise until :meth:`stop`; ``tend`` is called every iteration (local workers)."""
        while not self.stopping:
            self.spin_once()
            if tend is not None:
                tend()

    def spin_once(self) -> None:
        ready = dict(self.poller.poll(max(1, int(500 * self.cfg.heartbeat_s))))
        if self.work in ready:
            self.hear()
        if self.inp in ready:
            for _ in range(self.cfg.max_drain):
                try:
                    frames = self.inp.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self.route(frames)
        now = time.monotonic()
        deadline = self.cfg.liveness * self.cfg.heartbeat_s
        for w in [w for w in self.workers.values() if w.alive and now - w.heard > deadline]:
            self.lose(w.name, f"no heartbeat for {now - w.heard:.2f} s")
        for w in [w for w in self.workers.values() if w.alive and now - w.heard_loop > self.cfg.busy_limit_s]:
            self.lose(w.name, f"alive but its loop silent for {now - w.heard_loop:.1f} s (hung?)")
        if now >= self.next_beat:
            self.next_beat = now + self.cfg.heartbeat_s
            for w in [w for w in self.workers.values() if w.alive]:
                self.send(w.name, encode_heartbeat(None))
        self.reap()
        if now >= self.next_status:
            self.next_status = now + self.cfg.status_period_s
            self.expire(now)
            status = self.status()
            self.pub.send_multipart(encode_cluster(status))
            if self.cfg.log_period_s and now >= self.next_log:
                self.next_log = now + self.cfg.log_period_s
                say(status_line(status))

    # -- workers -------------------------------------------------------------------------

    # -- inbound -------------------------------------------------------------------------

    def status(self) -> ClusterStatus:
        now = time.monotonic()
        placed = collections.defaultdict(list)
        for name, key in self.keys.items():
            placed[key.owner].append(name)
        workers = []
        for w in sorted(self.workers.values(), key=lambda w: w.name):
            mine = sorted(placed[w.name]) if w.alive else []
            workers.append(WorkerState(w.name, w.alive, len(mine), 1000 * (now - w.heard), w.joined, w.lost, w.load,
                                       tuple(mine[:64])))  # fmt: skip
        return ClusterStatus(tuple(workers), self.routed, self.moved, self.no_worker, self.restarts, tuple(self.events),
                             now - self.started)  # fmt: skip


def status_line(s: ClusterStatus) -> str:
    """A one-line human summary of a ``cluster`` message."""
    workers = ", ".join(
        f"{w.name} {'up' if w.alive else 'LOST'} {w.keys} streams"
        + (f" busy {100 * w.load.busy:.0f} % out {w.load.frames_out}" if w.load and w.alive else "")
        for w in s.workers
    )
    return (f"pads-stream cluster: {sum(w.alive for w in s.workers)} of {len(s.workers)} workers up ({workers}); "
            f"routed {s.routed}, moved {s.moved}, no_worker {s.no_worker}, restarts {s.restarts}")  # fmt: skip


class LocalWorkers:
    """The node processes this command starts on this machine, restarted when they exit."""

    def __init__(self, n: int, work: str, collect: str, node_args: list[str], keys: tuple[str, str] | None,
                 quiet: bool = True, restart_s: float = 1.0):  # fmt: skip
        self.work, self.collect, self.node_args, self.keys = work, collect, node_args, keys
        self.quiet, self.restart_s = quiet, restart_s
        self.procs: dict[str, subprocess.Popen] = {}
        self.exited: dict[str, float] = {}  # name -> when it exited, until restarted
        for k in range(n):
            self.start(f"w{k}")

    def start(self, name: str) -> None:
        cmd = [sys.executable, "-m", "pads_stream.cli", "node", "--router", self.work, "--out-connect", self.collect,
               "--worker", name, "--router-lost-exit", "10", *self.node_args]  # fmt: skip
        if self.keys is not None:
            cmd += ["--curve", *self.keys]
        out = subprocess.DEVNULL if self.quiet else None
        self.procs[name] = subprocess.Popen(cmd, stdout=out, stdin=subprocess.DEVNULL)

    def tend(self, router: Router) -> None:
        """Restart workers that exited, ``restart_s`` after they did."""
        now = time.monotonic()
        for name, proc in self.procs.items():
            if name not in self.exited and proc.poll() is not None:
                self.exited[name] = now
                router.event(f"{name} (pid {proc.pid}) exited with code {proc.returncode}; restarting")
        for name, when in list(self.exited.items()):
            if now - when >= self.restart_s:
                del self.exited[name]
                self.start(name)
                router.restarts += 1

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def local_endpoint(endpoint: str) -> str:
    """Where a worker on this machine connects to a bound endpoint (``*`` and ``0.0.0.0`` are loopback)."""
    return endpoint.replace("://*:", "://127.0.0.1:").replace("://0.0.0.0:", "://127.0.0.1:")


def main(argv: list[str] | None = None) -> None:
    exit_on_stop_signals()
    parser = argparse.ArgumentParser(prog="pads-stream cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--workers", type=int, default=2, help="node processes on this machine (0: only the router; "
                        "workers elsewhere connect to --work and --collect) (default: %(default)s)")  # fmt: skip
    parser.add_argument("--in", dest="inp", default=ClusterConfig.inp, help="senders connect here (default: "
                        "%(default)s)")  # fmt: skip
    parser.add_argument("--out", default=ClusterConfig.out, help="consumers connect here (default: %(default)s)")
    parser.add_argument("--work", default="", help="bind the workers' input here, e.g. tcp://*:5557 for workers on "
                        "other machines (default: ipc in a private folder)")  # fmt: skip
    parser.add_argument("--collect", default="", help="bind the workers' output here, e.g. tcp://*:5558 "
                        "(default: ipc in a private folder)")  # fmt: skip
    parser.add_argument("--heartbeat", type=float, default=ClusterConfig.heartbeat_s, help="seconds between "
                        "heartbeats, both ways (default: %(default)s)")  # fmt: skip
    parser.add_argument("--liveness", type=int, default=ClusterConfig.liveness,
                        help="heartbeats a worker may miss before its streams move (default: %(default)s)")  # fmt: skip
    parser.add_argument("--curve-secret-key", default="", help="CurveZMQ on every hop: the router's .key_secret file")
    parser.add_argument("--curve-clients", default="", help="CurveZMQ: folder of authorised sender/consumer keys")
    parser.add_argument("--curve-workers", default="", help="CurveZMQ: folder of authorised remote worker keys")
    parser.add_argument("--worker-output", action="store_true", help="show the local workers' log lines")
    node = parser.add_argument_group("node options", "passed to every local worker (pads-stream node --help lists "
                                     "every other, and they are passed on as well)")  # fmt: skip
    node.add_argument("--config", help="node config JSON (default: the package's configs/node.json)")
    node.add_argument("--steps", type=int, help="sampler steps per estimate (the fewest, with steps_max)")
    node.add_argument("--backend", help="auto, onnxruntime, torch or tensorrt")
    node.add_argument("--model", help="checkpoint (default: the shipped model)")
    args, node_args = parser.parse_known_args(argv)
    for name in ("config", "steps", "backend", "model"):
        if getattr(args, name) is not None:
            node_args += [f"--{name}", str(getattr(args, name))]
    if args.workers < 0:
        parser.error("--workers must be >= 0")
    node_args += ["--heartbeat", str(args.heartbeat), "--liveness", str(args.liveness)]
    cfg = ClusterConfig(inp=args.inp, out=args.out, work=args.work, collect=args.collect, heartbeat_s=args.heartbeat,
                        liveness=args.liveness, curve_secret_key=args.curve_secret_key,
                        curve_clients=args.curve_clients, curve_workers=args.curve_workers)  # fmt: skip
    router = Router(cfg)
    signal.signal(signal.SIGINT, router.stop)
    signal.signal(signal.SIGTERM, router.stop)
    ep = router.endpoints
    local = LocalWorkers(args.workers, local_endpoint(ep["work"]), local_endpoint(ep["collect"]), node_args,
                         router.worker_keys, quiet=not args.worker_output)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while len(router.live()) < args.workers and time.monotonic() < deadline and not router.stopping:
            router.spin_once()  # the local workers load their models; what arrives meanwhile is routed as ever
            local.tend(router)
        say(f"pads-stream cluster: in {ep['in']}, out {ep['out']}, workers connect to {ep['work']} and "
            f"{ep['collect']}; {len(router.live())} of {args.workers} local workers up, pid {os.getpid()}")  # fmt: skip
        router.run(lambda: local.tend(router))
    finally:
        local.stop()
        router.close()
    say(f"pads-stream cluster: stopped; routed {router.routed}, moved {router.moved}")
