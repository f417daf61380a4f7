"""Outbound messages (node -> consumers): ``pose3d/<stream>``, ``error``, ``status``, each an
encode/decode pair over its record. Units: metres out, camera frame OpenCV (world where said).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from .framing import (
    VERSION,
    WireError,
    decode,
    encode,
    read_floats,
    read_int,
)


@dataclass(frozen=True)
class PosePerson:
    """One estimated person: joints = root + rel (17, 3) and root (3,), metres, camera frame;
    rel pelvis-relative; reproj_px the mean reprojection error of the seen joints (undistorted
    pixels); conf (17,) H36M order; joints_world (17, 3) metres, world frame (Z up, floor z = 0),
    or None without extrinsics."""

    id: int
    joints: np.ndarray
    root: np.ndarray
    rel: np.ndarray
    reproj_px: float
    conf: np.ndarray
    joints_world: np.ndarray | None = None
    views: tuple[PersonView, ...] = ()  # a rig's person: the detections fused into it, one per view
    # (16,) the track's skeleton, metres, H36M parent order (bone j ends at joint j + 1)
    bones: np.ndarray | None = None
    bones_weight: float = 0.0  # how sure that skeleton is, in [0, 1] (1: learned, held)


@dataclass(frozen=True)
class PersonView:
    """One view's detection fused into a rig's person: the member ``stream``, the person ``id`` as
    that stream sent it, and the fused pose's mean reprojection error there (undistorted px)."""

    stream: str
    id: int
    reproj_px: float


@dataclass(frozen=True)
class RigView:
    """One member frame of a rig's frame: its ``stream`` and ``frame``, whether it was fused
    (False: it carried no person, or none of its persons could be fused), and that camera's
    extrinsics in the rig's world (X_cam = R · X_world + t, metres) where the node has them."""

    stream: str
    frame: int | None
    used: bool
    R: np.ndarray | None = None  # (3, 3)
    t: np.ndarray | None = None  # (3,) m


@dataclass(frozen=True)
class Pose3d:
    """A ``pose3d`` message: the 3D poses of one frame (``t_ns`` the sender's capture time;
    ``t_recv_ns``, ``t_pub_ns`` the node's clock), always in ``h36m17``."""

    stream: str
    frame: int | None
    t_ns: int
    t_recv_ns: int
    t_pub_ns: int
    persons: tuple[PosePerson, ...]
    views: tuple[RigView, ...] = ()  # a rig's frame: its member frames (empty for a single stream)
    camera: str | None = None  # a rig's frame: the member stream whose camera frame joints, root and rel use
    # a floor the node estimated: height_m, height_sd_m, pitch_deg, roll_deg, confidence
    floor: dict[str, float] | None = None
    steps: int | None = None  # the sampler steps its persons got (a node choosing them per batch: steps_max)


@dataclass(frozen=True)
class ErrorMessage:
    """An ``error`` message: a rejection (``ERROR_KINDS``) or a drop notice (``DROP_KINDS``);
    ``id`` is the person's when the error is about one person."""

    stream: str | None
    frame: int | None
    id: int | None
    kind: str
    reason: str


@dataclass(frozen=True)
class Status:
    """A ``status`` message (about once a second): counters since start and recent latencies."""

    frames_in: int
    frames_out: int
    persons_out: int
    dropped: dict[str, int]
    errors: dict[str, int]
    errors_unsent: int
    latency_ms: dict[str, float]  # p50, p99 of t_pub − t_recv
    age_ms: dict[str, float]  # p50, p99 of publish time − capture time
    streams: int
    tracks: int
    backend: str
    model_hash: str
    uptime_s: float
    busy: float = 0.0  # share of the last status period the node spent estimating (1: it cannot take more)
    worker: str | None = None  # in a cluster: the worker that sent it (``docs/cluster.md``); None for a lone node
    # per rig, per member stream: the median reprojection error (px) of the fused persons there, over the last
    # 500; one camera far above the others is off its calibration (bumped)
    rigs: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    steps: dict[str, int] = dataclasses.field(default_factory=dict)  # p50, min, max of the last 2000 batches' steps
    # per rig calibrating itself from its people: state, walk seconds, reason; calibrated: each member's R, t, clock
    calibration: dict[str, dict] = dataclasses.field(default_factory=dict)
    events: list[str] = dataclasses.field(default_factory=list)  # the last 20 calibration events, oldest first


def decode_as(frames: list[bytes], topic: str) -> dict[str, Any]:
    """The payload of a message on ``topic`` (a topic ending in "/" is a prefix: ``pose3d/``);
    raises WireError ``topic`` for a message on another."""
    got, payload = decode(frames)
    if got != topic and not (topic.endswith("/") and got.startswith(topic)):
        raise WireError("topic", f"expected a {topic!r} message, got topic {got!r}")
    return payload


def encode_pose3d(msg: Pose3d) -> list[bytes]:
    """The two frames of a ``pose3d`` message."""
    persons = []
    for p in msg.persons:
        as_list = lambda a: np.asarray(a, float).tolist()  # noqa: E731
        person = {"id": p.id, "joints": as_list(p.joints), "root": as_list(p.root), "rel": as_list(p.rel),
                  "reproj_px": float(p.reproj_px), "conf": as_list(p.conf)}  # fmt: skip
        if p.joints_world is not None:
            person["joints_world"] = as_list(p.joints_world)
        if p.views:
            person["views"] = [{"stream": v.stream, "id": v.id, "reproj_px": float(v.reproj_px)} for v in p.views]
        if p.bones is not None:
            person["bones"] = as_list(p.bones)
            person["bones_weight"] = float(p.bones_weight)
        persons.append(person)
    payload = {"v": VERSION, "stream": msg.stream, "frame": msg.frame, "t_ns": msg.t_ns, "t_recv_ns": msg.t_recv_ns,
               "t_pub_ns": msg.t_pub_ns, "layout": "h36m17", "persons": persons}  # fmt: skip
    if msg.floor is not None:
        payload["floor"] = {k: float(v) for k, v in msg.floor.items()}
    if msg.steps is not None:
        payload["steps"] = int(msg.steps)
    if msg.views:
        payload["rig"] = True
        payload["camera"] = msg.camera
        payload["views"] = [_rig_view(v) for v in msg.views]
    return encode(f"pose3d/{msg.stream}", payload)


def _rig_view(v: RigView) -> dict:
    view = {"stream": v.stream, "frame": v.frame, "used": v.used}
    if v.R is not None and v.t is not None:
        view["R"], view["t"] = np.asarray(v.R, float).tolist(), np.asarray(v.t, float).tolist()
    return view


def _floor(value: Any) -> dict[str, float] | None:
    """A pose3d's ``floor``: nil, or a map of names to numbers (``docs/protocol.md``)."""
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise WireError("schema", "floor must be a map of names to numbers")
    return {k: float(read_floats(v, (), f"floor.{k}")) for k, v in value.items()}


def decode_pose3d(frames: list[bytes]) -> Pose3d:
    """A ``pose3d`` message as a record, arrays as float64 numpy (for consumers)."""
    p = decode_as(frames, "pose3d/")
    try:
        persons = tuple(
            PosePerson(
                id=q["id"], joints=read_floats(q["joints"], (17, 3), "joints"),
                root=read_floats(q["root"], (3,), "root"),
                rel=read_floats(q["rel"], (17, 3), "rel"), reproj_px=float(q["reproj_px"]),
                conf=read_floats(q["conf"], (17,), "conf"),
                joints_world=None if q.get("joints_world") is None
                else read_floats(q["joints_world"], (17, 3), "world"),
                views=tuple(PersonView(v["stream"], v["id"], float(v["reproj_px"])) for v in q.get("views", ())),
                bones=None if q.get("bones") is None else read_floats(q["bones"], (16,), "bones"),
                bones_weight=float(q.get("bones_weight", 0.0)),
            )
            for q in p["persons"]
        )  # fmt: skip
        views = tuple(
            RigView(v["stream"], v["frame"], bool(v["used"]),
                    None if v.get("R") is None else read_floats(v["R"], (3, 3), "R"),
                    None if v.get("t") is None else read_floats(v["t"], (3,), "t"))
            for v in p.get("views", ())
        )  # fmt: skip
        steps = None if p.get("steps") is None else read_int(p["steps"], "steps")
        return Pose3d(p["stream"], p["frame"], p["t_ns"], p["t_recv_ns"], p["t_pub_ns"], persons, views,
                      p.get("camera"), _floor(p.get("floor")), steps)  # fmt: skip
    except (KeyError, TypeError) as err:
        raise WireError("schema", f"not a pose3d payload ({type(err).__name__}: {err})"[:200]) from None


def encode_error(msg: ErrorMessage) -> list[bytes]:
    """The two frames of an ``error`` message (the reason cut to 200 characters)."""
    return encode("error", {"v": VERSION, "stream": msg.stream, "frame": msg.frame, "id": msg.id, "kind": msg.kind,
                            "reason": msg.reason[:200]})  # fmt: skip


def decode_error(frames: list[bytes]) -> ErrorMessage:
    """An ``error`` message as a record."""
    p = decode_as(frames, "error")
    try:
        return ErrorMessage(p["stream"], p["frame"], p.get("id"), p["kind"], p["reason"])
    except KeyError as err:
        raise WireError("schema", f"not an error payload (missing {err})") from None


def encode_status(msg: Status) -> list[bytes]:
    """The two frames of a ``status`` message."""
    return encode("status", {"v": VERSION, **dataclasses.asdict(msg)})


def decode_status(frames: list[bytes]) -> Status:
    """A ``status`` message as a record."""
    p = decode_as(frames, "status")
    # later additions: a status without them is still one
    optional = {"busy", "worker", "rigs", "steps", "calibration", "events"}
    try:
        fields = [f.name for f in dataclasses.fields(Status) if f.name in p or f.name not in optional]
        return Status(**{name: p[name] for name in fields})
    except KeyError as err:
        raise WireError("schema", f"not a status payload (missing {err})") from None
