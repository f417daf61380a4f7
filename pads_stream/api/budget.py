"""Steps from the time available: a batch runs as many sampler steps as fit before its next frame.

The sampler's accuracy keeps improving with steps (V-H36M, GT 2D, root given: 10 steps 53.5 mm,
20 steps 46.1, 40 steps 41.2), while a fixed 10-step estimate leaves most of a quiet node's frame
idle. :class:`StepCost` learns a batch's cost online (the time inside the sampler per step, and
the rest of the batch's time, per batch size grouped in powers of two) from the batches the node
runs; :meth:`StepCost.steps` turns a time budget into a step count within [lo, hi]. The step
schedule of n steps is the sampler's own for n (its guidance step scaled as
``SamplerConfig.rho_at``).
"""

from __future__ import annotations

import math


class StepCost:
    """The time of a batch as a fixed part plus a part per sampler step, learned online per
    batch-size group (exponential averages of each group's measurements; an unmeasured group
    borrows its nearest measured neighbour's, the per-step part scaled with the batch)."""

    def __init__(self, smoothing: float = 0.2):
        self.smoothing = smoothing
        self.per_step: dict[int, float] = {}  # log2 group of the batch size -> seconds per step
        self.fixed: dict[int, float] = {}  # ... -> seconds per batch outside the sampler's steps

    @staticmethod
    def group(persons: int) -> int:
        return max(0, math.ceil(math.log2(max(persons, 1))))

    def observe(self, persons: int, steps: int, seconds: float, sampler_s: float) -> None:
        """Count one batch of ``persons`` that ran ``steps`` sampler steps in ``seconds``, of which
        ``sampler_s`` inside the sampler."""
        if persons < 1 or steps < 1 or not (sampler_s > 0 and math.isfinite(seconds) and seconds >= sampler_s):
            return
        g = self.group(persons)
        for table, value in ((self.per_step, sampler_s / steps), (self.fixed, seconds - sampler_s)):
            old = table.get(g)
            table[g] = value if old is None else old + self.smoothing * (value - old)

    def cost(self, persons: int) -> tuple[float, float] | None:
        """(seconds per step, fixed seconds) for a batch of ``persons``; None before any batch was measured."""
        if not self.per_step:
            return None
        g = self.group(persons)
        near = g if g in self.per_step else min(self.per_step, key=lambda k: abs(k - g))
        scale = 2.0 ** (g - near) if g > near else 1.0
        return self.per_step[near] * scale, self.fixed[near] * scale

    def steps(self, persons: int, budget_s: float, lo: int, hi: int) -> int:
        """The most steps in [lo, hi] that fit in ``budget_s`` seconds for ``persons`` (``lo`` while
        nothing was measured: the first batches teach the cost)."""
        cost = self.cost(persons)
        if cost is None or cost[0] <= 0:
            return lo
        per, fixed = cost
        return int(min(hi, max(lo, math.floor((budget_s - fixed) / per))))
