"""Wire protocol v1: two ZeroMQ frames per message, a UTF-8 topic and a msgpack map.

Inbound (rigs and detectors -> node): ``kp2d/<stream>`` and ``camera/<stream>``.
Outbound (node -> consumers): ``pose3d/<stream>``, ``status``, ``error``.
The full specification is ``docs/protocol.md``. :func:`decode_inbound` validates everything
it returns and raises :class:`WireError` (with a short ``kind`` for counting) otherwise;
nothing from the network is ever unpickled or evaluated.
Units: pixels in, metres out; times in integer nanoseconds; camera frame OpenCV.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

from .layout import NAMES as LAYOUTS
from .layout import get as get_layout

VERSION = 1
MAX_MESSAGE_BYTES = 1 << 20  # larger messages are rejected unread
MAX_TOPIC_BYTES = 256
MAX_PERSONS = 64
MAX_STREAM_NAME = 128
MAX_ARRAY = 1024  # msgpack array length limit (the longest legitimate array has 64 persons)
MAX_DEPTH = 6  # nesting of maps and lists in a payload (a kp2d message needs 5)
MAX_PX = 1e6  # |pixel coordinate| bound
MAX_ROOT_M = 1e4  # |root coordinate| and |camera t| bound, metres
MAX_ROOT_DEPTH_M = 1e3  # a root's Z bound, metres: beyond it no pose is published (millimetres sent?)
MIN_FOCAL_PX = 1.0  # fx, fy bound, pixels: below it K is no pixel camera (a normalised K?)
MAX_K = 1e7  # |intrinsics entry| bound, pixels
ROTATION_TOL = 1e-3  # largest |R Rᵀ − I| entry accepted as a rotation
ERROR_KINDS = {
    "frames": "not exactly two frames (topic, payload)",
    "too_large": f"payload over {MAX_MESSAGE_BYTES} bytes, topic over {MAX_TOPIC_BYTES} bytes, or over "
    f"{MAX_PERSONS} persons",
    "topic": "topic not UTF-8, unknown, not matching the stream, or not matching the payload's message type",
    "not_msgpack": "payload is not one msgpack map within the limits (nesting, lengths)",
    "schema": "a key missing or of the wrong msgpack type (v missing included)",
    "version": "v is not 1",
    "shape": "an array of the wrong shape or byte length",
    "value": "a number out of range: NaN or infinite where used, confidence outside [0, 1], |px| > 1e6, "
    "root not 0 < Z and |X, Y, Z| <= 1e4 m",
    "layout": "unknown layout",
    "camera": "K not finite and invertible with positive focal lengths (or entries beyond 1e7), bad dist",
    "no_camera": "no intrinsics latched for the stream and none in the frame",
    "too_many_streams": "the stream limit is reached and no idle stream can be evicted",
    "no_joints": "a person with no joint of confidence > 0 (the person is dropped, the frame goes on)",
    "no_root": "root not sent and not estimable: no bone with both ends observed (person dropped)",
    "estimate_failed": "the estimate was non-finite or implausible (person dropped, never remembered)",
    "clock": "t_ns unusable (<= 0, or stepped by over 1 s and not yet confirmed): the frame is still estimated, "
    "timed by its arrival",
}
# Frames accepted but not estimated, answered on ``error`` with this kind and counted in status ``dropped``.
DROP_KINDS = {
    "superseded": "a newer frame of the stream arrived before this one was estimated",
    "stale": "older than the latency budget (from capture time) on arrival or before estimation",
    "late": "a rig's view that arrived after the rig frame of its capture time was fused without it",
}
ROUTER_KINDS = {  # a cluster's router answers these (docs/cluster.md), counted in ``cluster``, never in a node's status
    "no_worker": "a cluster's router had no live worker that could take it (all lost, or the owner's queue full)",
}


class WireError(ValueError):
    """A rejected message (or, with ``person``, one person of it): ``kind`` is a short counter key,
    the message says why."""

    def __init__(self, kind: str, reason: str, stream: str | None = None, frame: int | None = None,
                 person: int | None = None):  # fmt: skip
        super().__init__(reason)
        self.kind, self.reason, self.stream, self.frame, self.person = kind, reason, stream, frame, person


@dataclass(frozen=True)
class Camera:
    """Intrinsics K (3, 3) px, optional OpenCV distortion (5,) (k1, k2, p1, p2, k3), and optional
    extrinsics R (3, 3), t (3,) m: X_cam = R · X_world + t, world Z up with the floor at z = 0."""

    K: np.ndarray
    dist: np.ndarray | None = None
    R: np.ndarray | None = None
    t: np.ndarray | None = None
    rig: str | None = None  # the rig this stream's camera belongs to (its frames are fused with the rig's other views)
    rig_ids: bool = False  # person ids are the rig's (one multi-camera tracker), not this camera's own


@dataclass(frozen=True)
class Person:
    """One person of a frame: id, keypoints (17, 2) px, confidences (17,), optional root (3,) m."""

    id: int
    kp: np.ndarray
    conf: np.ndarray
    root: np.ndarray | None


@dataclass(frozen=True)
class Kp2dFrame:
    """A validated ``kp2d`` message (keypoints still in the sender's ``layout``)."""

    stream: str
    frame: int | None  # the sender's frame number (nil allowed), echoed in the output
    t_ns: int
    layout: str
    camera: Camera | None
    persons: tuple[Person, ...]


@dataclass(frozen=True)
class CameraUpdate:
    """A validated ``camera`` message: latched for ``stream`` until replaced."""

    stream: str
    camera: Camera


def encode(topic: str, payload: dict[str, Any]) -> list[bytes]:
    """The two frames of a message."""
    return [topic.encode(), msgpack.packb(payload, use_bin_type=True)]


def _too_deep(obj: Any, limit: int) -> bool:
    """Whether maps and lists nest deeper than ``limit`` (iterative: no recursion on hostile input)."""
    stack = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return False


def decode(frames: list[bytes]) -> tuple[str, dict[str, Any]]:
    """(topic, payload) of two frames; raises WireError on anything else. Reasons never echo input."""
    if len(frames) != 2:
        raise WireError("frames", f"expected 2 frames (topic, msgpack map), got {min(len(frames), 99)}")
    size = len(frames[1])
    if size > MAX_MESSAGE_BYTES or len(frames[0]) > MAX_TOPIC_BYTES:
        raise WireError("too_large", f"topic or payload too large ({len(frames[0])} / {size} bytes)")
    try:
        topic = frames[0].decode()
    except UnicodeDecodeError as err:
        raise WireError("topic", "topic is not UTF-8") from err
    try:
        payload = msgpack.unpackb(frames[1], raw=False, strict_map_key=True, max_map_len=64, max_array_len=MAX_ARRAY)
    except ValueError as err:
        if "max_array_len" in str(err):  # refused inside msgpack, before building the objects
            raise WireError("too_large", f"an array longer than {MAX_ARRAY} (at most {MAX_PERSONS} persons)") from err
        if "map key" in str(err):  # one msgpack object, with a key that is no string
            raise WireError("schema", "a map key is not a string (every key must be a msgpack str)") from err
        raise WireError("not_msgpack", f"payload is not one msgpack object ({type(err).__name__})") from err
    except Exception as err:  # msgpack raises several unrelated types on bad input
        raise WireError("not_msgpack", f"payload is not one msgpack object ({type(err).__name__})") from err
    if not isinstance(payload, dict):
        raise WireError("schema", f"payload must be a map, got {type(payload).__name__}")
    if _too_deep(payload, MAX_DEPTH):
        raise WireError("not_msgpack", f"payload nests deeper than {MAX_DEPTH} levels")
    return topic, payload


def _int(value: Any, name: str, nil: bool = False) -> int | None:
    if value is None and nil:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise WireError("schema", f"{name} must be an integer{' or nil' if nil else ''}")
    return value


def _floats(value: Any, shape: tuple[int, ...], name: str, nil: bool = False) -> np.ndarray:
    """A float64 array of ``shape`` from nested arrays of numbers or raw little-endian float32 bytes.

    A number is a msgpack int or float, never a bool; with ``nil`` a nil number reads as NaN.
    Arrays nested or sized other than ``shape`` (a number where an array belongs, or the reverse)
    raise ``shape``; any other type (str, map, bool, a missing value) raises ``schema``.
    """
    if isinstance(value, bytes):
        if len(value) != 4 * int(np.prod(shape)):
            raise WireError("shape", f"{name}: {len(value)} bytes, expected float32 {shape}")
        return np.frombuffer(value, dtype="<f4").astype(np.float64).reshape(shape)
    flat: list[float] = []

    def walk(item: Any, level: int) -> None:
        if level == len(shape):
            if isinstance(item, list):
                raise WireError("shape", f"{name} must have shape {shape} (an array where a number belongs)")
            if isinstance(item, int | float) and not isinstance(item, bool):
                flat.append(float(item))
            elif item is None and nil:
                flat.append(np.nan)
            else:
                raise WireError("schema", f"{name} must hold numbers (int or float, not bool)")
        elif not isinstance(item, list):
            if isinstance(item, int | float) and not isinstance(item, bool):
                raise WireError("shape", f"{name} must have shape {shape} (a number where an array belongs)")
            raise WireError("schema", f"{name} must be an array of shape {shape} or float32 bytes")
        elif len(item) != shape[level]:
            raise WireError("shape", f"{name} must have shape {shape} (an array of {len(item)} at depth {level})")
        else:
            for sub in item:
                walk(sub, level + 1)

    walk(value, 0)
    return np.array(flat, dtype=np.float64).reshape(shape)


def _camera(value: Any) -> Camera:
    if not isinstance(value, dict) or "K" not in value:
        raise WireError("schema", "camera must be a map with K")
    K = _floats(value["K"], (3, 3), "camera.K")
    if not np.all(np.isfinite(K)) or np.any(np.abs(K) > MAX_K):
        raise WireError("camera", f"camera.K must be finite with entries within {MAX_K:g}")
    if K[0, 0] < MIN_FOCAL_PX or K[1, 1] < MIN_FOCAL_PX:
        raise WireError(
            "camera", f"camera.K's focal lengths must be >= {MIN_FOCAL_PX:g} px (a normalised K? K is pixels)"
        )
    if abs(np.linalg.det(K)) < 1e-9:
        raise WireError("camera", "camera.K must be invertible")
    if np.abs(K[2] - [0.0, 0.0, 1.0]).max() > 1e-6:
        raise WireError("camera", "camera.K's bottom row must be [0, 0, 1] (a transposed K?)")
    dist = None
    if value.get("dist") is not None:
        dist = _floats(value["dist"], (5,), "camera.dist")
        if not np.all(np.isfinite(dist)) or np.any(np.abs(dist) > 1e3):
            raise WireError("camera", "camera.dist must be finite and within 1e3")
    R = t = None
    if value.get("R") is not None or value.get("t") is not None:
        if value.get("R") is None or value.get("t") is None:
            raise WireError("schema", "camera.R and camera.t come together (both or neither)")
        R = _floats(value["R"], (3, 3), "camera.R")
        t = _floats(value["t"], (3,), "camera.t")
        if not (np.all(np.isfinite(R)) and np.all(np.isfinite(t))) or np.any(np.abs(t) > MAX_ROOT_M):
            raise WireError("camera", f"camera.R and camera.t must be finite (|t| <= {MAX_ROOT_M:g} m)")
        if np.abs(R @ R.T - np.eye(3)).max() > ROTATION_TOL or np.linalg.det(R) < 0:
            raise WireError("camera", f"camera.R must be a rotation (|R Rᵀ − I| <= {ROTATION_TOL:g}, det +1)")
    rig = value.get("rig")
    if rig is not None:
        if not isinstance(rig, str) or not 0 < len(rig) <= MAX_STREAM_NAME:
            raise WireError("schema", f"camera.rig must be a string of 1-{MAX_STREAM_NAME} characters, or nil")
        if R is None:
            raise WireError("camera", "a rig's camera needs its extrinsics (R and t in the rig's world)")
    rig_ids = value.get("rig_ids", False)
    if rig_ids is None:
        rig_ids = False
    if not isinstance(rig_ids, bool):
        raise WireError("schema", "camera.rig_ids must be true, false or nil")
    return Camera(K=K, dist=dist, R=R, t=t, rig=rig, rig_ids=rig_ids)


def _stream(payload: dict, topic: str, prefix: str) -> str:
    stream = payload.get("stream")
    if not isinstance(stream, str) or not 0 < len(stream) <= MAX_STREAM_NAME:
        raise WireError("schema", f"stream must be a string of 1-{MAX_STREAM_NAME} characters")
    if topic != f"{prefix}/{stream}":
        raise WireError("topic", "topic does not match the payload's stream", stream)
    return stream


def decode_inbound(frames: list[bytes]) -> Kp2dFrame | CameraUpdate:
    """Decode and validate one inbound message (``kp2d/…`` or ``camera/…``)."""
    topic, p = decode(frames)
    kind, slash, _ = topic.partition("/")
    if kind not in ("kp2d", "camera") or not slash:
        raise WireError("topic", "unknown topic: inbound topics are kp2d/<stream> and camera/<stream>")
    if "v" not in p:
        raise WireError("schema", "v (the protocol version) is required")
    if _int(p["v"], "v") != VERSION:
        raise WireError("version", f"unsupported protocol version; this node speaks {VERSION}")
    if kind == "camera":
        if "persons" in p or "frame" in p:
            raise WireError("topic", "a kp2d payload on a camera/ topic")
        stream = _stream(p, topic, "camera")
        try:
            return CameraUpdate(stream=stream, camera=_camera(p.get("camera")))
        except WireError as err:
            err.stream = stream
            raise
    stream = _stream(p, topic, "kp2d")
    frame = None
    try:
        if "frame" not in p:
            raise WireError("schema", "frame is required (an integer, or nil)")
        frame = _int(p["frame"], "frame", nil=True)
        t_ns = _int(p.get("t_ns"), "t_ns")
        layout = p.get("layout")
        if not isinstance(layout, str):
            raise WireError("schema", "layout must be a string")
        if layout not in LAYOUTS:
            raise WireError("layout", f"unknown layout; supported {list(LAYOUTS)}")
        joints = get_layout(layout).count
        camera = _camera(p["camera"]) if p.get("camera") is not None else None
        persons = p.get("persons")
        if not isinstance(persons, list):
            raise WireError("schema", "persons must be a list")
        if len(persons) > MAX_PERSONS:
            raise WireError("too_large", f"{len(persons)} persons exceed the limit of {MAX_PERSONS}")
        out, ids = [], set()
        for k, person in enumerate(persons):
            if not isinstance(person, dict):
                raise WireError("schema", f"persons[{k}] must be a map")
            pid = _int(person.get("id"), f"persons[{k}].id")
            if pid in ids or not -(2**63) <= pid < 2**64:
                raise WireError("value", f"persons[{k}].id is repeated or beyond 64 bits")
            ids.add(pid)
            kp = _floats(person.get("kp"), (joints, 3), f"persons[{k}].kp", nil=True)
            conf = kp[:, 2]
            if not np.all(np.isfinite(conf)) or np.any((conf < 0) | (conf > 1)):
                raise WireError("value", f"persons[{k}].kp confidences must be finite and within [0, 1]")
            if not np.all(np.isfinite(kp[conf > 0, :2])) or np.any(np.abs(kp[conf > 0, :2]) > MAX_PX):
                raise WireError("value", f"persons[{k}].kp must be finite within {MAX_PX:g} px where confidence > 0")
            root = None
            if person.get("root") is not None:
                root = _floats(person["root"], (3,), f"persons[{k}].root")
                if not np.all(np.isfinite(root)) or root[2] <= 0 or np.any(np.abs(root) > MAX_ROOT_M):
                    raise WireError("value", f"persons[{k}].root must be finite metres, 0 < Z, |X, Y, Z| <= 1e4")
                if root[2] >= MAX_ROOT_DEPTH_M:
                    raise WireError("value", f"persons[{k}].root is {MAX_ROOT_DEPTH_M:g} m or more from the camera: "
                                    "roots are metres (millimetres sent?)")  # fmt: skip
            out.append(Person(id=pid, kp=np.where(conf[:, None] > 0, kp[:, :2], 0.0), conf=conf, root=root))
    except WireError as err:
        err.stream, err.frame = stream, frame
        raise
    return Kp2dFrame(stream=stream, frame=frame, t_ns=t_ns, layout=layout, camera=camera, persons=tuple(out))


def kp2d_message(
    stream: str, frame: int, t_ns: int, persons: list[dict], camera: dict | None = None, layout: str = "h36m17"
) -> list[bytes]:
    """Encode a ``kp2d`` message (what a rig sends); ``persons`` as in the protocol."""
    payload: dict[str, Any] = {"v": VERSION, "stream": stream, "frame": frame, "t_ns": t_ns, "layout": layout,
                               "persons": persons}  # fmt: skip
    if camera is not None:
        payload["camera"] = camera
    return encode(f"kp2d/{stream}", payload)


def camera_map(K: np.ndarray, dist: np.ndarray | None = None, R: np.ndarray | None = None, t: np.ndarray | None = None,
               rig: str | None = None, rig_ids: bool = False) -> dict[str, Any]:  # fmt: skip
    """The ``camera`` map of a ``camera`` or ``kp2d`` message (see the protocol)."""
    camera: dict[str, Any] = {"K": np.asarray(K, float).tolist()}
    if dist is not None:
        camera["dist"] = np.asarray(dist, float).tolist()
    if R is not None and t is not None:
        camera["R"], camera["t"] = np.asarray(R, float).tolist(), np.asarray(t, float).reshape(3).tolist()
    if rig is not None:
        camera["rig"] = rig
        if rig_ids:
            camera["rig_ids"] = True
    return camera


def camera_message(stream: str, K: np.ndarray, dist: np.ndarray | None = None, R: np.ndarray | None = None,
                   t: np.ndarray | None = None, rig: str | None = None,
                   rig_ids: bool = False) -> list[bytes]:  # fmt: skip
    """Encode a ``camera`` message that latches intrinsics (and optionally extrinsics, and the rig
    the camera belongs to) for ``stream``."""
    return encode(
        f"camera/{stream}", {"v": VERSION, "stream": stream, "camera": camera_map(K, dist, R, t, rig, rig_ids)}
    )


# -- outbound: node -> consumers ----------------------------------------------------------


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
    return {k: float(_floats(v, (), f"floor.{k}")) for k, v in value.items()}


def decode_pose3d(frames: list[bytes]) -> Pose3d:
    """A ``pose3d`` message as a record, arrays as float64 numpy (for consumers)."""
    p = decode_as(frames, "pose3d/")
    try:
        persons = tuple(
            PosePerson(
                id=q["id"], joints=_floats(q["joints"], (17, 3), "joints"), root=_floats(q["root"], (3,), "root"),
                rel=_floats(q["rel"], (17, 3), "rel"), reproj_px=float(q["reproj_px"]),
                conf=_floats(q["conf"], (17,), "conf"),
                joints_world=None if q.get("joints_world") is None else _floats(q["joints_world"], (17, 3), "world"),
                views=tuple(PersonView(v["stream"], v["id"], float(v["reproj_px"])) for v in q.get("views", ())),
                bones=None if q.get("bones") is None else _floats(q["bones"], (16,), "bones"),
                bones_weight=float(q.get("bones_weight", 0.0)),
            )
            for q in p["persons"]
        )  # fmt: skip
        views = tuple(
            RigView(v["stream"], v["frame"], bool(v["used"]),
                    None if v.get("R") is None else _floats(v["R"], (3, 3), "R"),
                    None if v.get("t") is None else _floats(v["t"], (3,), "t"))
            for v in p.get("views", ())
        )  # fmt: skip
        steps = None if p.get("steps") is None else _int(p["steps"], "steps")
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
    optional = {"busy", "worker", "rigs", "steps"}  # later additions: a status without them is still one
    try:
        fields = [f.name for f in dataclasses.fields(Status) if f.name in p or f.name not in optional]
        return Status(**{name: p[name] for name in fields})
    except KeyError as err:
        raise WireError("schema", f"not a status payload (missing {err})") from None


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
