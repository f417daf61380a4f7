"""Client sockets to a node, made in one place for every command (replay, listen, view, bridge,
fuzz, demo): a PUB connected to the node's input or a SUB connected to its output, configured as
CurveZMQ clients when keys are given (``--curve NODE_KEY CLIENT_SECRET`` on every command). The
node's own server sockets are made and owned by :class:`pads_stream.node.Node`. The caller owns
the returned socket and closes it.
"""

from __future__ import annotations

import argparse

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
