"""A cluster's messages (docs/cluster.md): the router <-> worker envelopes and heartbeats, and the
router's own ``cluster`` summary.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import msgpack

from .framing import (
    VERSION,
    WireError,
    encode,
)
from .outbound import decode_as

# -- a cluster: router <-> workers, and the router's own ``cluster`` message (docs/cluster.md) ----

DATA, HEARTBEAT, BYE = b"D", b"H", b"B"  # the first frame of every router <-> worker message
# a worker's keep-alive, [ALIVE, name]: sent by a thread of its own on a second connection, so a long batch
# never silences it (docs/cluster.md); it keeps a joined worker alive, never makes one join
ALIVE = b"A"


@dataclass(frozen=True)
class WorkerLoad:
    """What a worker says of itself in each heartbeat to its router."""

    pid: int
    streams: int  # streams with state (cameras, tracks)
    tracks: int
    busy: float  # share of the last status period spent estimating, 0-1
    frames_in: int
    frames_out: int


@dataclass(frozen=True)
class WorkerState:
    """One worker as the router sees it (a row of ``cluster``)."""

    name: str
    alive: bool
    keys: int  # streams and rigs the router places on it now
    heard_ms: float  # since its last heartbeat
    joined: int  # times it (re)joined
    lost: int  # times it was lost (heartbeats stopped, or it said goodbye)
    load: WorkerLoad | None  # its last heartbeat's
    placed: tuple[str, ...] = ()  # the keys placed on it (``stream:<name>``, ``rig:<name>``), at most 64 listed


@dataclass(frozen=True)
class ClusterStatus:
    """A ``cluster`` message (about once a second, from the router): its workers, what it routed,
    and its latest events (a worker lost or joined, streams moved), newest last."""

    workers: tuple[WorkerState, ...]
    routed: int  # inbound messages delivered to a worker
    moved: int  # times a stream or rig changed worker (each is a cold start there)
    no_worker: int  # inbound messages with no live worker to take them (answered ``no_worker``)
    restarts: int  # local workers the cluster command restarted
    events: tuple[str, ...]
    uptime_s: float


def encode_heartbeat(load: WorkerLoad | None) -> list[bytes]:
    """A heartbeat: the router's to a worker (no load), or a worker's to its router (its load)."""
    if load is None:
        return [HEARTBEAT]
    return [HEARTBEAT, msgpack.packb(dataclasses.asdict(load))]


def decode_heartbeat(frames: list[bytes]) -> WorkerLoad | None:
    """A worker's heartbeat frames (after ``HEARTBEAT``) as its load; None when it carries none."""
    if len(frames) < 2:
        return None
    try:
        p = msgpack.unpackb(frames[1], raw=False, max_map_len=16, max_array_len=0)
        return WorkerLoad(**{f.name: p[f.name] for f in dataclasses.fields(WorkerLoad)})
    except Exception as err:  # a worker of another version: alive, load unknown
        raise WireError("schema", f"not a heartbeat payload ({type(err).__name__})") from None


def encode_cluster(msg: ClusterStatus) -> list[bytes]:
    """The two frames of a ``cluster`` message."""
    return encode("cluster", {"v": VERSION, **dataclasses.asdict(msg)})


def decode_cluster(frames: list[bytes]) -> ClusterStatus:
    """A ``cluster`` message as a record."""
    p = decode_as(frames, "cluster")
    try:
        workers = tuple(
            WorkerState(**{**w, "load": None if w["load"] is None else WorkerLoad(**w["load"]),
                           "placed": tuple(w.get("placed", ()))})
            for w in p["workers"]
        )  # fmt: skip
        return ClusterStatus(workers, p["routed"], p["moved"], p["no_worker"], p["restarts"], tuple(p["events"]),
                             p["uptime_s"])  # fmt: skip
    except (KeyError, TypeError) as err:
        raise WireError("schema", f"not a cluster payload ({type(err).__name__}: {err})"[:200]) from None
