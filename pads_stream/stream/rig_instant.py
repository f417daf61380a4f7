"""A rig frame at one instant: each view's 2D moved to the rig frame's capture time.

Cameras that are not triggered together capture a moment at different times: a rig frame groups the
member frames within its capture window (``fusion.RigFrames``), up to half a frame interval apart, and
a walking person moves about 3 cm in 20 ms (a hand far more). Fusing those views as if they were one
instant puts each joint where no view saw it. :class:`ViewMotion` keeps each member's previous frame and
moves every person's keypoints along their image motion since then, linearly, to the rig frame's
instant (the newest capture of the group, on the rig's clock after each camera's offset is applied),
so every view is read at the same moment. A person is followed in a view by the id its sender gives
(a detector's tracker), or, with one person in both frames, as that person; one not followed, a
previous frame too old, or a joint unseen in either frame stays as captured.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .fusion import ViewPerson

MAX_GAP_NS = 150_000_000  # a previous frame older than this (ns) gives no motion: it may belong to another walk
MIN_SHIFT_NS = 500_000  # a view within this of the instant is left as captured


@dataclass
class ViewMotion:
    """Each member stream's previous frame: its capture time (ns, the rig's clock) and its persons'
    keypoints (id -> (17, 2) px, undistorted; NaN where unseen)."""

    previous: dict[str, tuple[int, dict[int, np.ndarray]]] = field(default_factory=dict)

    def at_instant(self, stream: str, t_capture: int, persons: list[ViewPerson], instant: int) -> list[ViewPerson]:
        """``persons`` of ``stream``'s frame captured at ``t_capture`` (ns), their keypoints and rays
        moved to ``instant`` (ns) along their motion since the stream's previous frame; that frame is
        then this one (as captured)."""
        before = self.previous.get(stream)
        self.previous[stream] = (t_capture, {p.id: np.where(p.conf[:, None] > 0, p.kp, np.nan) for p in persons})
        shift = instant - t_capture
        if before is None or abs(shift) < MIN_SHIFT_NS or not 0 < t_capture - before[0] <= MAX_GAP_NS:
            return persons
        step = min(shift / (t_capture - before[0]), 1.0)  # frames of motion to add (at most one)
        known = before[1]
        out = []
        for p in persons:
            old = known.get(p.id)
            if old is None and len(persons) == 1 and len(known) == 1:
                (old,) = known.values()
            if old is None:
                out.append(p)
                continue
            move = np.where(np.isfinite(old) & (p.conf[:, None] > 0), step * (p.kp - old), 0.0)
            focal = p.K[[0, 1], [0, 1]]
            out.append(dataclasses.replace(p, kp=p.kp + move, rays=p.rays + move / focal))
        return out

    def forget(self, stream: str) -> None:
        """A member whose stream expired."""
        self.previous.pop(stream, None)
