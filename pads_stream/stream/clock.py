"""A sender's clock as the node sees it: capture times placed on this host's clock.

Each stream stamps ``t_ns`` with its own clock. The node keeps per stream the smallest
``t_recv − t_ns`` seen (the clocks' offset plus the fastest transit), so a frame's capture time
on this host is ``t_ns + offset`` and its age ``t_recv − (t_ns + offset)`` includes time queued
before the node read it, whatever the offset.

Real clocks step (NTP, a restarted camera, one corrupt stamp). A change of the offset by more
than ``step_s`` is a **step**, not transit: the frame is timed by its arrival (age 0 on arrival)
and the step is taken as the new offset once ``confirm`` consecutive frames agree on it (within
``step_s``). One stray stamp therefore never silences a stream, and a stepped clock is followed
within ``confirm`` frames. A ``t_ns`` ≤ 0 is no capture time: such a frame is timed by arrival.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ClockConfig:
    """How a stream's clock is followed."""

    step_s: float = 1.0  # a change of offset beyond this is a clock step, not transit
    confirm: int = 3  # consecutive frames that agree on a stepped offset before it is taken


@dataclass
class SenderClock:
    """One stream's clock offset (ns): the smallest ``t_recv − t_ns`` since the last step."""

    offset_ns: int | None = None
    steps: list[int] = field(default_factory=list)  # offsets of the consecutive frames beyond a step

    def place(self, t_ns: int, t_recv: int, cfg: ClockConfig) -> tuple[int, int, str | None]:
        """Place a frame's capture time.

        Args:
            t_ns: the sender's capture time, ns on its clock. t_recv: arrival, ns on this host.

        Returns:
            (capture time on this host's clock, ns; capture time on the sender's clock, ns (the
            sender's own stamp where usable, else its arrival mapped back); why ``t_ns`` was not
            used, or None).
        """
        if t_ns <= 0:
            back = t_recv - self.offset_ns if self.offset_ns is not None else t_recv
            return t_recv, back, "t_ns is not a capture time (must be > 0 ns); the frame is timed by its arrival"
        transit = t_recv - t_ns
        if self.offset_ns is None:
            self.offset_ns = transit
        jump = transit - self.offset_ns
        step = int(cfg.step_s * 1e9)
        if abs(jump) <= step:
            self.steps.clear()
            self.offset_ns = min(self.offset_ns, transit)
            return t_ns + self.offset_ns, t_ns, None
        self.steps = [*self.steps[-(cfg.confirm - 1) :], transit] if cfg.confirm > 1 else [transit]
        if len(self.steps) >= cfg.confirm and max(self.steps) - min(self.steps) <= step:
            self.offset_ns = min(self.steps)
            self.steps.clear()
            return t_ns + self.offset_ns, t_ns, None
        move = -jump / 1e9  # how far the stamp moved from where the stream's clock puts this arrival, s
        way = "ahead (later)" if move > 0 else "back (earlier)"
        reason = f"t_ns jumped {abs(move):.3g} s {way} of the stream's clock; timed by arrival until it settles"
        return t_recv, t_recv - self.offset_ns, reason
