"""The router's inbound path: each sender's message forwarded whole to the worker that owns its
stream (or its rig), cameras remembered for a stream's next worker, ``no_worker`` answered when
none can take it, silent streams forgotten. A part of :class:`pads_stream.cluster.router.Router`.
"""

from __future__ import annotations

import collections
import time

from ..stream.wire import (
    ROUTER_KINDS,
    VERSION,
    ErrorMessage,
    WireError,
    decode,
    encode,
    encode_error,
)
from .placement import capacity, owner, route_key
from .state import Key


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


class Routing:
    """The router's inbound path: each sender's message forwarded whole to the worker that owns its
    stream (or its rig), cameras remembered for a stream's next worker, ``no_worker`` answered when
    none can take it, silent streams forgotten. A part of :class:`pads_stream.cluster.router.Router`."""

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
