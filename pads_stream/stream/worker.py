"""A worker's link to its cluster router: the worker side of the zguide's Paranoid Pirate.

In a cluster (``docs/cluster.md``) a node takes its input from the router instead of a SUB
socket: one DEALER, named for the worker, connected to the router's ROUTER socket. Every message
on it starts with one envelope frame (:data:`pads_stream.stream.wire.DATA`, ``HEARTBEAT`` or ``BYE``).
The worker sends a heartbeat with its load every ``heartbeat_s`` from its loop; the router sends
its own. A thread of the link's own sends a keep-alive (``ALIVE``) on a second connection at the
same rate, whatever the loop is doing: a batch that takes longer than the router's liveness
timeout leaves a worker slow, not lost. When the router has been silent for ``liveness``
heartbeats the link drops its socket and connects a new one (the router may have restarted, or
moved); a clean stop says goodbye, so the router moves the worker's streams at once instead of
after the liveness timeout. The node owns this link and closes it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import zmq

from .sockets import Curve
from .wire import ALIVE, BYE, DATA, WorkerLoad, encode_heartbeat


class RouterLink:
    """The DEALER to a router at ``endpoint``, named ``name``; :attr:`socket` is replaced on reconnect."""

    def __init__(self, context: zmq.Context, endpoint: str, name: str, heartbeat_s: float, liveness: int,
                 receive_hwm: int = 1000, curve: Curve | None = None):  # fmt: skip
        if heartbeat_s <= 0 or liveness < 1:
            raise ValueError(f"heartbeat_s must be > 0 and liveness >= 1 (got {heartbeat_s}, {liveness})")
        self.context, self.endpoint, self.name = context, endpoint, name
        self.heartbeat_s, self.liveness, self.receive_hwm, self.curve = heartbeat_s, liveness, receive_hwm, curve
        self.heard = self.next_beat = time.monotonic()  # the router counts as heard at the start
        self.reconnects = 0
        self.socket = self._connect()
        self._stop = threading.Event()
        self._alive = threading.Thread(target=self._keep_alive, name=f"{name}-alive", daemon=True)
        self._alive.start()

    def _connect(self, identity: bytes | None = None) -> zmq.Socket:
        sock = self.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, self.name.encode() if identity is None else identity)
        sock.setsockopt(zmq.RCVHWM, self.receive_hwm)
        sock.setsockopt(zmq.SNDHWM, 16)  # heartbeats only; a stale one is worth nothing
        sock.setsockopt(zmq.LINGER, 0)
        if self.curve:
            from .security import curve_client

            curve_client(sock, *self.curve)
        sock.connect(self.endpoint)
        return sock

    @property
    def silent_s(self) -> float:
        """Seconds since the router was last heard."""
        return time.monotonic() - self.heard

    def unwrap(self, frames: list[bytes]) -> list[bytes] | None:
        """A message from the router: the sender's frames for a data message, None for a heartbeat."""
        self.heard = time.monotonic()
        if frames and frames[0] == DATA:
            return frames[1:]
        return None

    def tick(self, load: Callable[[], WorkerLoad]) -> bool:
        """Heartbeat (with ``load()``, called only then) when due; reconnect when the router has been
        silent for ``liveness`` heartbeats (messages waiting unread count as heard: a batch longer than
        the liveness timeout is no silence). True when :attr:`socket` was replaced (the caller
        re-registers it with its poller)."""
        now = time.monotonic()
        if now - self.heard > self.liveness * self.heartbeat_s and self.socket.poll(0, zmq.POLLIN):
            self.heard = now  # its messages wait unread behind a long batch: the router is there
        if now - self.heard > self.liveness * self.heartbeat_s:
            self.socket.close(0)
            self.socket = self._connect()
            self.heard = self.next_beat = now  # one liveness period for the new connection
            self.reconnects += 1
            return True
        if now >= self.next_beat:
            self.next_beat = now + self.heartbeat_s
            try:
                self.socket.send_multipart(encode_heartbeat(load()), zmq.NOBLOCK)
            except zmq.Again:  # the router is not reading; liveness decides
                pass
        return False

    def _keep_alive(self) -> None:
        """The keep-alive thread: its own DEALER (this thread alone uses it), ``[ALIVE, name]``
        every ``heartbeat_s`` until :meth:`close`."""
        sock = self._connect(self.name.encode() + b"\x00alive")
        try:
            while not self._stop.wait(self.heartbeat_s):
                try:
                    sock.send_multipart([ALIVE, self.name.encode()], zmq.NOBLOCK)
                except zmq.Again:  # the router is not reading; liveness decides
                    pass
        finally:
            sock.close(0)

    def close(self) -> None:
        """Stop the keep-alive, say goodbye (the router moves this worker's streams now) and close."""
        self._stop.set()
        self._alive.join(timeout=5)
        try:
            self.socket.send(BYE, zmq.NOBLOCK)
        except zmq.ZMQError:
            pass
        self.socket.close(linger=200)
