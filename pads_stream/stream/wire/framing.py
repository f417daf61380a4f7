"""Wire protocol v1's framing: two ZeroMQ frames per message (a UTF-8 topic, a msgpack map), the
limits every payload is held to, the error and drop kinds, and the checked number readers.

Nothing from the network is ever unpickled or evaluated.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

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
    "intrinsics": "the stream's K does not fit its keypoints (a normalised K, or fx, fy, cx, cy in another order), "
    "said once per latched camera after its first frames: the frames are still estimated",
}
# Frames accepted but not estimated, answered on ``error`` with this kind and counted in status ``dropped``.
DROP_KINDS = {
    "superseded": "a newer frame of the stream arrived before this one was estimated",
    "stale": "older than the latency budget (from capture time) on arrival or before estimation",
    "late": "a rig's view that arrived after the rig frame of its capture time was fused without it",
    "calibrating": "a view of a rig sent without R, t that the node is calibrating from its people (status "
    "calibration): estimated once the rig is calibrated",
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


def read_int(value: Any, name: str, nil: bool = False) -> int | None:
    if value is None and nil:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise WireError("schema", f"{name} must be an integer{' or nil' if nil else ''}")
    return value


def read_floats(value: Any, shape: tuple[int, ...], name: str, nil: bool = False) -> np.ndarray:
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
