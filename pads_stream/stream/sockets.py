"""Sockets made in one place: for every command (replay, listen, view, bridge, fuzz, demo) a PUB
connected to the node's input or a SUB connected to its output, configured as CurveZMQ clients
when keys are given (``--curve NODE_KEY CLIENT_SECRET`` on every command); and the input SUB that
a node or a cluster's router takes senders' messages on (:func:`inbound`, bound or connected by
its owner, :class:`pads_stream.stream.node.Node` or :class:`pads_stream.cluster.router.Router`). The caller owns
the returned socket and closes it.
"""

from __future__ import annotations

import argparse
import time

import zmq

Curve = tuple[str, str]  # (the node's public .key file, this client's .key_secret file)


def add_curve_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--curve NODE_KEY CLIENT_SECRET`` option, the same on every command."""
    parser.add_argument(
        "--curve",
        nargs=2,
        metavar=("NODE_KEY", "CLIENT_SECRET"),
        help="CurveZMQ: the node's public .key file and this client's .key_secret file",
    )


def publisher(endpoint: str, curve: Curve | None = None, hwm: int = 1000, linger_ms: int = 0,
              context: zmq.Context | None = None) -> zmq.Socket:  # fmt: skip
    """A PUB socket connected to a node's input (``endpoint``); ``hwm`` 0 = unbounded queue."""
    sock = (context or zmq.Context.instance()).socket(zmq.PUB)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.LINGER, linger_ms)
    return _connect(sock, endpoint, curve)


def subscriber(endpoint: str, topics: tuple[bytes, ...] = (b"",), curve: Curve | None = None, hwm: int = 1000,
               context: zmq.Context | None = None) -> zmq.Socket:  # fmt: skip
    """A SUB socket connected to a node's output (``endpoint``), subscribed to ``topics``
    (byte prefixes; the default every topic)."""
    sock = (context or zmq.Context.instance()).socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.LINGER, 0)
    for topic in topics:
        sock.setsockopt(zmq.SUBSCRIBE, topic)
    return _connect(sock, endpoint, curve)


def inbound(context: zmq.Context, hwm: int) -> zmq.Socket:
    """The SUB that takes senders' messages: every topic (a wrong one is answered ``topic``), at most
    ``hwm`` queued, and no message over 2 MiB (ZeroMQ drops the sender's connection unread)."""
    sock = context.socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, 2 * (1 << 20))
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    return sock


class RateLimit:
    """At most ``per_s`` events a second on average, in bursts of up to ``per_s`` (a token bucket):
    the node's and the router's budget for the ``error`` messages they publish."""

    def __init__(self, per_s: float):
        self.per_s, self.tokens, self.refilled = per_s, per_s, time.monotonic()

    def take(self) -> bool:
        """Whether one more event fits now (then it is counted)."""
        now = time.monotonic()
        self.tokens = min(self.per_s, self.tokens + (now - self.refilled) * self.per_s)
        self.refilled = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def _connect(sock: zmq.Socket, endpoint: str, curve: Curve | None) -> zmq.Socket:
    try:
        if curve:
            from .security import curve_client

            curve_client(sock, *curve)
        sock.connect(endpoint)
    except (zmq.ZMQError, ValueError, OSError):
        sock.close(0)
        raise
    return sock
