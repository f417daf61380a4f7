"""``pads-stream cluster``: several node processes behind one input and one output address.

Built from ZeroMQ's own patterns (the zguide's), so senders and consumers change nothing:

- **Router** (:class:`Router`, this process): a SUB bound at the public input takes every sender's
  messages and forwards each, whole, to the worker that owns its stream, over one ROUTER socket
  that the workers' DEALERs connect to. The owner is chosen by rendezvous hashing
  (:mod:`pads_stream.placement`) of the stream's name, or of its rig's name when its camera names a
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
import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from .node import say
from .placement import capacity, owner, preference, route_key
from .shutdown import exit_on_stop_signals
from .sockets import RateLimit, inbound
from .wire import (
    ALIVE,
    BYE,
    DATA,
    HEARTBEAT,
    ROUTER_KINDS,
    VERSION,
    ClusterStatus,
    ErrorMessage,
    WireError,
    WorkerLoad,
    WorkerState,
    decode,
    decode_heartbeat,
    encode,
    encode_cluster,
    encode_error,
    encode_heartbeat,
)


@dataclass(frozen=True)
class ClusterConfig:
    """The router's settings: public endpoints (bound), the workers' endpoints (bound), supervision."""

    inp: str = "tcp://*:5555"  # senders connect here (as to a node)
    out: str = "tcp://*:5556"  # consumers connect here (as to a node)
    work: str = ""  # workers' DEALERs connect here ("" = an ipc endpoint in a private folder)
    collect: str = ""  # workers' PUBs connect here ("" = an ipc endpoint in a private folder)
    heartbeat_s: float = 0.25
    liveness: int = 3  # heartbeats a worker may miss before its streams move
    busy_limit_s: float = 30.0  # a worker whose loop sent no heartbeat this long is lost, keep-alives or not
    balance: float = 1.0  # a worker takes at most ⌈balance · keys / workers⌉ streams and rigs (pads_stream.placement)
    max_keys: int = 4096  # streams and rigs with routing state (beyond it: routed, not remembered)
    key_ttl_s: float = 60.0  # a stream silent this long is forgotten (as a node forgets it)
    send_hwm: int = 1000  # messages queued per worker
    max_drain: int = 2000
    status_period_s: float = 1.0
    log_period_s: float = 5.0
    max_errors_per_s: float = 2000.0
    curve_secret_key: str = ""  # CurveZMQ: the router's .key_secret file (every hop encrypted)
    curve_clients: str = ""  # ... folder of authorised sender and consumer public keys ("" = any)
    curve_workers: str = ""  # ... folder of authorised worker public keys ("" = any that knows the router's key)


@dataclass
class Worker:
    """A worker as the router knows it."""

    name: str
    alive: bool = False
    heard: float = 0.0  # time.monotonic() of its last heartbeat or keep-alive
    heard_loop: float = 0.0  # time.monotonic() of its last heartbeat from its loop (a batch delays it)
    joined: int = 0
    lost: int = 0
    load: WorkerLoad | None = None


@dataclass
class Key:
    """A placement key (a stream, or a rig) and where its messages go."""

    owner: str | None  # the live worker its messages go to now (None: no worker is alive)
    home: str | None = None  # where it was placed: it returns there when that worker is back after a loss
    streams: set[str] = field(default_factory=set)
    last_seen: float = 0.0


def peek(frames: list[bytes]) -> tuple[str | None, dict | None]:
    """The stream an inbound message is for (from its topic; None when the topic names none) and the
    camera map it carries (decoded only when the payload has a ``camera`` key; None otherwise or
    when it cannot be decoded: the worker answers that)."""
    if len(frames) != 2:
        return None, None
    kind, slash, rest = frames[0].partition(b"/")
    if kind not in (b"kp2d", b"camera") or not slash or not rest:
        return None, None
    try:
        stream = rest.decode()
    except UnicodeDecodeError:
        return None, None
    camera = None
    if b"\xa6camera" in frames[1]:  # msgpack's "camera" key: a message that may name a rig
        try:
            _, payload = decode(frames)
        except WireError:
            return stream, None
        camera = payload.get("camera") if isinstance(payload.get("camera"), dict) else None
    return stream, camera


class Router:
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
            from .security import serve_curve

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

    def hear(self) -> None:
        """Workers' heartbeats and goodbyes."""
        while True:
            try:
                identity, *frames = self.work.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            name = identity.decode(errors="replace")
            if not frames or frames[0] == BYE:
                if name in self.workers and self.workers[name].alive:
                    self.lose(name, "it said goodbye")
                continue
            if frames[0] == ALIVE and len(frames) == 2:  # a keep-alive: a joined worker's loop may be busy
                known = self.workers.get(frames[1].decode(errors="replace"))
                if known is not None and known.alive:
                    known.heard = time.monotonic()
                continue
            if frames[0] != HEARTBEAT:
                continue
            w = self.workers.setdefault(name, Worker(name))
            w.heard = w.heard_loop = time.monotonic()
            try:
                w.load = decode_heartbeat(frames) or w.load
            except WireError:
                pass
            if not w.alive:
                w.alive, w.joined = True, w.joined + 1
                self.replace(f"{name} joined", name)

    def lose(self, name: str, why: str) -> None:
        w = self.workers[name]
        w.alive, w.lost = False, w.lost + 1
        self.replace(f"{name} lost ({why})", None)

    def live(self) -> list[str]:
        return [w.name for w in self.workers.values() if w.alive]

    def replace(self, what: str, joined: str | None) -> None:
        """Re-place keys after the live workers changed: a lost worker's keys go to the next on their
        preference lists with room (their home stays the lost worker); a worker that joins takes back
        the keys whose home it is, then, while it has room, keys from workers over capacity. Every
        other key stays where it is. A moved stream gets its camera."""
        live = self.live()
        loads = collections.Counter(k.owner for k in self.keys.values() if k.owner in live)
        cap = capacity(len(self.keys), len(live), self.cfg.balance)
        moves: collections.Counter[str] = collections.Counter()
        for name in sorted(self.keys):
            if self.keys[name].owner not in live:
                self.move(name, owner(name, live, loads, cap), loads, moves)
        if joined is not None:
            for name in sorted(self.keys):
                if self.keys[name].home == joined and self.keys[name].owner != joined:
                    self.move(name, joined, loads, moves)
            rank = lambda name: preference(name, live).index(joined)  # noqa: E731
            for name in sorted(self.keys, key=rank):
                key = self.keys[name]
                if loads[joined] < cap and key.owner != joined and loads[key.owner] > cap:
                    self.move(name, joined, loads, moves)
                    key.home = joined
        self.moved += sum(moves.values())
        if not live:
            text = f"{what}: no worker left, frames are answered no_worker"
        elif moves:
            text = f"{what}: {sum(moves.values())} streams/rigs moved to " + ", ".join(
                f"{w} ({n})" for w, n in sorted(moves.items())
            )
        else:
            text = what
        self.event(text)

    def move(self, name: str, new: str | None, loads: collections.Counter[str],
             moves: collections.Counter[str]) -> None:  # fmt: skip
        """Place key ``name`` on ``new`` (a move, counted, when it had a live owner before) and send
        its streams' cameras there."""
        key = self.keys[name]
        if key.owner in loads:
            loads[key.owner] -= 1
        if key.owner is not None and new is not None:
            moves[new] += 1
        key.owner = new
        if new is None:
            return
        if key.home is None:
            key.home = new
        loads[new] += 1
        for stream in key.streams:
            if stream in self.cameras:
                self.send(new, self.cameras[stream], data=True)

    def event(self, text: str) -> None:
        line = f"t+{time.monotonic() - self.started:.1f} s {text}"
        self.events.append(line)
        say(f"pads-stream cluster: {line}")

    def send(self, name: str, frames: list[bytes], data: bool = False) -> bool:
        """Send to worker ``name`` (a data message gets the DATA envelope); False when it cannot take it:
        its queue is full, or it is gone (then it is put in :attr:`gone`, and :meth:`reap` loses it, long
        before its heartbeats would time out)."""
        try:
            self.work.send_multipart([name.encode(), *([DATA] if data else []), *frames], zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False
        except zmq.ZMQError as err:
            if err.errno != errno.EHOSTUNREACH:
                raise
            self.gone.add(name)
            return False

    def reap(self) -> None:
        """Lose the workers whose connection was found closed (one at a time: losing one re-places its
        streams, and a send there may find another gone)."""
        while self.gone:
            name = self.gone.pop()
            if name in self.workers and self.workers[name].alive:
                self.lose(name, "its connection closed")

    # -- inbound -------------------------------------------------------------------------

    def route(self, frames: list[bytes]) -> None:
        """Forward one inbound message to its owner (a message naming no stream goes to one worker,
        which answers its error)."""
        stream, camera = peek(frames)
        now = time.monotonic()
        if stream is None:
            name, key = "other", None
        else:
            if camera is not None and (stream in self.stream_key or len(self.stream_key) < self.cfg.max_keys):
                self.remember_camera(stream, camera)
            name = self.stream_key.get(stream) or route_key(stream, None)
            key = self.keys.get(name)
            if key is None and len(self.keys) < self.cfg.max_keys:
                live = self.live()
                loads = collections.Counter(k.owner for k in self.keys.values())
                placed = owner(name, live, loads, capacity(len(self.keys) + 1, len(live), self.cfg.balance))
                key = self.keys[name] = Key(placed, placed)
            if key is not None:
                key.streams.add(stream)
                key.last_seen = now
        for _ in range(2):  # a worker found gone on this send is lost; the next owner gets it
            target = key.owner if key is not None else owner(name, self.live())
            if target is None:
                break
            if self.send(target, frames, data=True):
                self.routed += 1
                return
            if target not in self.gone:  # alive, queue full
                break
            self.reap()
        self.no_worker += 1
        self.answer_no_worker(stream, frames)

    def remember_camera(self, stream: str, camera: dict) -> None:
        """Keep ``stream``'s latest camera (replayed to its next worker) and the key its rig gives it."""
        self.cameras[stream] = encode(f"camera/{stream}", {"v": VERSION, "stream": stream, "camera": camera})
        rig = camera.get("rig") if isinstance(camera.get("rig"), str) else None
        new, old = route_key(stream, rig), self.stream_key.get(stream)
        if old is not None and old != new and old in self.keys:  # it joined or left a rig
            self.keys[old].streams.discard(stream)
        self.stream_key[stream] = new

    def answer_no_worker(self, stream: str | None, frames: list[bytes]) -> None:
        if stream is None or not self.error_budget.take():
            return
        frame = None
        try:
            _, payload = decode(frames)
            frame = payload.get("frame") if isinstance(payload.get("frame"), int) else None
        except WireError:
            pass
        self.pub.send_multipart(encode_error(ErrorMessage(stream, frame, None, "no_worker", ROUTER_KINDS["no_worker"])))

    def expire(self, now: float) -> None:
        """Forget streams silent for ``key_ttl_s`` (their cameras with them) and keys left without streams."""
        for name, key in list(self.keys.items()):
            if now - key.last_seen > self.cfg.key_ttl_s:
                for stream in key.streams:
                    if self.stream_key.get(stream, route_key(stream, None)) == name:
                        self.cameras.pop(stream, None)
                        self.stream_key.pop(stream, None)
                del self.keys[name]

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
