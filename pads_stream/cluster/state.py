"""What the router holds: its settings, each worker it has heard (liveness, load) and each routing
key (a stream, or a rig's streams together) with its owner and home.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..stream.wire import (
    WorkerLoad,
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
    balance: float = 1.0  # a worker takes at most ⌈balance · keys / workers⌉ streams and rigs (cluster.placement)
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
