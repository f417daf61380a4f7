"""Inbound messages (rigs and detectors -> node): ``kp2d/<stream>`` and ``camera/<stream>``.

:func:`decode_inbound` validates everything it returns and raises
:class:`~pads_stream.stream.wire.framing.WireError` (with a short ``kind`` for counting) otherwise.
Units: pixels in; root and camera t metres; times integer nanoseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...geometry.layout import NAMES as LAYOUTS
from ...geometry.layout import get as get_layout
from ...geometry.skeleton import STATURE_RANGE_M
from .framing import (
    MAX_K,
    MAX_PERSONS,
    MAX_PX,
    MAX_ROOT_DEPTH_M,
    MAX_ROOT_M,
    MAX_STREAM_NAME,
    MIN_FOCAL_PX,
    ROTATION_TOL,
    VERSION,
    WireError,
    decode,
    encode,
    read_floats,
    read_int,
)


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
    """One person of a frame: id, keypoints (17, 2) px, confidences (17,), optional root (3,) m and
    stature (standing height) m."""

    id: int
    kp: np.ndarray
    conf: np.ndarray
    root: np.ndarray | None
    stature_m: float | None = None


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


def _camera(value: Any) -> Camera:
    if not isinstance(value, dict) or "K" not in value:
        raise WireError("schema", "camera must be a map with K")
    K = read_floats(value["K"], (3, 3), "camera.K")
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
        dist = read_floats(value["dist"], (5,), "camera.dist")
        if not np.all(np.isfinite(dist)) or np.any(np.abs(dist) > 1e3):
            raise WireError("camera", "camera.dist must be finite and within 1e3")
    R = t = None
    if value.get("R") is not None or value.get("t") is not None:
        if value.get("R") is None or value.get("t") is None:
            raise WireError("schema", "camera.R and camera.t come together (both or neither)")
        R = read_floats(value["R"], (3, 3), "camera.R")
        t = read_floats(value["t"], (3,), "camera.t")
        if not (np.all(np.isfinite(R)) and np.all(np.isfinite(t))) or np.any(np.abs(t) > MAX_ROOT_M):
            raise WireError("camera", f"camera.R and camera.t must be finite (|t| <= {MAX_ROOT_M:g} m)")
        if np.abs(R @ R.T - np.eye(3)).max() > ROTATION_TOL or np.linalg.det(R) < 0:
            raise WireError("camera", f"camera.R must be a rotation (|R Rᵀ − I| <= {ROTATION_TOL:g}, det +1)")
    rig = value.get("rig")
    if rig is not None:
        if not isinstance(rig, str) or not 0 < len(rig) <= MAX_STREAM_NAME:
            raise WireError("schema", f"camera.rig must be a string of 1-{MAX_STREAM_NAME} characters, or nil")
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
    if read_int(p["v"], "v") != VERSION:
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
        frame = read_int(p["frame"], "frame", nil=True)
        t_ns = read_int(p.get("t_ns"), "t_ns")
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
            pid = read_int(person.get("id"), f"persons[{k}].id")
            if pid in ids or not -(2**63) <= pid < 2**64:
                raise WireError("value", f"persons[{k}].id is repeated or beyond 64 bits")
            ids.add(pid)
            kp = read_floats(person.get("kp"), (joints, 3), f"persons[{k}].kp", nil=True)
            conf = kp[:, 2]
            if not np.all(np.isfinite(conf)) or np.any((conf < 0) | (conf > 1)):
                raise WireError("value", f"persons[{k}].kp confidences must be finite and within [0, 1]")
            if not np.all(np.isfinite(kp[conf > 0, :2])) or np.any(np.abs(kp[conf > 0, :2]) > MAX_PX):
                raise WireError("value", f"persons[{k}].kp must be finite within {MAX_PX:g} px where confidence > 0")
            root = None
            if person.get("root") is not None:
                root = read_floats(person["root"], (3,), f"persons[{k}].root")
                if not np.all(np.isfinite(root)) or root[2] <= 0 or np.any(np.abs(root) > MAX_ROOT_M):
                    raise WireError("value", f"persons[{k}].root must be finite metres, 0 < Z, |X, Y, Z| <= 1e4")
                if root[2] >= MAX_ROOT_DEPTH_M:
                    raise WireError("value", f"persons[{k}].root is {MAX_ROOT_DEPTH_M:g} m or more from the camera: "
                                    "roots are metres (millimetres sent?)")  # fmt: skip
            stature = None
            if person.get("stature_m") is not None:
                stature = float(read_floats(person["stature_m"], (), f"persons[{k}].stature_m"))
                if not STATURE_RANGE_M[0] <= stature <= STATURE_RANGE_M[1]:  # NaN fails too
                    raise WireError("value", f"persons[{k}].stature_m is a standing height in metres, "
                                    f"{STATURE_RANGE_M[0]}-{STATURE_RANGE_M[1]}")  # fmt: skip
            kp = np.where(conf[:, None] > 0, kp[:, :2], 0.0)
            out.append(Person(id=pid, kp=kp, conf=conf, root=root, stature_m=stature))
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
