"""The router's supervision of its workers (the zguide's Paranoid Pirate): heartbeats, keep-alives and
goodbyes heard, a worker lost when silent or gone, and the keys re-placed when the live workers change.

A part of :class:`pads_stream.cluster.router.Router`; the choice of owner is
:mod:`pads_stream.cluster.placement`'s (pure functions).
"""

from __future__ import annotations

import collections
import errno
import time

import zmq

from ..stream.node import say
from ..stream.wire import (
    ALIVE,
    BYE,
    DATA,
    HEARTBEAT,
    WireError,
    decode_heartbeat,
)
from .placement import capacity, owner, preference
from .state import Worker


class Supervision:
    """The router's supervision of its workers (the zguide's Paranoid Pirate): heartbeats, keep-alives and
    goodbyes heard, a worker lost when silent or gone, and the keys re-placed when the live workers change."""

    def hear(self) -> None:
        """Workers' heartbeats and goodbyes."""
        while True:
            try:
                identity, *frames = self.work.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            name = identity.decode(errors="replace")
            if not frames or frames[0] == BYE:
                if name in self.workers and self.workers[name].alive:
                    self.lose(name, "it said goodbye")
                continue
            if frames[0] == ALIVE and len(frames) == 2:  # a keep-alive: a joined worker's loop may be busy
                known = self.workers.get(frames[1].decode(errors="replace"))
                if known is not None and known.alive:
                    known.heard = time.monotonic()
                continue
            if frames[0] != HEARTBEAT:
                continue
            w = self.workers.setdefault(name, Worker(name))
            w.heard = w.heard_loop = time.monotonic()
            try:
                w.load = decode_heartbeat(frames) or w.load
            except WireError:
                pass
            if not w.alive:
                w.alive, w.joined = True, w.joined + 1
                self.replace(f"{name} joined", name)

    def lose(self, name: str, why: str) -> None:
        w = self.workers[name]
        w.alive, w.lost = False, w.lost + 1
        self.replace(f"{name} lost ({why})", None)

    def live(self) -> list[str]:
        return [w.name for w in self.workers.values() if w.alive]

    def replace(self, what: str, joined: str | None) -> None:
        """Re-place keys after the live workers changed: a lost worker's keys go to the next on their
        preference lists with room (their home stays the lost worker); a worker that joins takes back
        the keys whose home it is, then, while it has room, keys from workers over capacity. Every
        other key stays where it is. A moved stream gets its camera."""
        live = self.live()
        loads = collections.Counter(k.owner for k in self.keys.values() if k.owner in live)
        cap = capacity(len(self.keys), len(live), self.cfg.balance)
        moves: collections.Counter[str] = collections.Counter()
        for name in sorted(self.keys):
            if self.keys[name].owner not in live:
                self.move(name, owner(name, live, loads, cap), loads, moves)
        if joined is not None:
            for name in sorted(self.keys):
                if self.keys[name].home == joined and self.keys[name].owner != joined:
                    self.move(name, joined, loads, moves)
            rank = lambda name: preference(name, live).index(joined)  # noqa: E731
            for name in sorted(self.keys, key=rank):
                key = self.keys[name]
                if loads[joined] < cap and key.owner != joined and loads[key.owner] > cap:
                    self.move(name, joined, loads, moves)
                    key.home = joined
        self.moved += sum(moves.values())
        if not live:
            text = f"{what}: no worker left, frames are answered no_worker"
        elif moves:
            text = f"{what}: {sum(moves.values())} streams/rigs moved to " + ", ".join(
                f"{w} ({n})" for w, n in sorted(moves.items())
            )
        else:
            text = what
        self.event(text)

    def move(self, name: str, new: str | None, loads: collections.Counter[str],
             moves: collections.Counter[str]) -> None:  # fmt: skip
        """Place key ``name`` on ``new`` (a move, counted, when it had a live owner before) and send
        its streams' cameras there."""
        key = self.keys[name]
        if key.owner in loads:
            loads[key.owner] -= 1
        if key.owner is not None and new is not None:
            moves[new] += 1
        key.owner = new
        if new is None:
            return
        if key.home is None:
            key.home = new
        loads[new] += 1
        for stream in key.streams:
            if stream in self.cameras:
                self.send(new, self.cameras[stream], data=True)

    def event(self, text: str) -> None:
        line = f"t+{time.monotonic() - self.started:.1f} s {text}"
        self.events.append(line)
        say(f"pads-stream cluster: {line}")

    def send(self, name: str, frames: list[bytes], data: bool = False) -> bool:
        """Send to worker ``name`` (a data message gets the DATA envelope); False when it cannot take it:
        its queue is full, or it is gone (then it is put in :attr:`gone`, and :meth:`reap` loses it, long
        before its heartbeats would time out)."""
        try:
            self.work.send_multipart([name.encode(), *([DATA] if data else []), *frames], zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False
        except zmq.ZMQError as err:
            if err.errno != errno.EHOSTUNREACH:
                raise
            self.gone.add(name)
            return False

    def reap(self) -> None:
        """Lose the workers whose connection was found closed (one at a time: losing one re-places its
        streams, and a send there may find another gone)."""
        while self.gone:
            name = self.gone.pop()
            if name in self.workers and self.workers[name].alive:
                self.lose(name, "its connection closed")
