"""Steps from the time available: a batch runs as many sampler steps as fit before its next frame.

The sampler's accuracy keeps improving with steps (V-H36M, GT 2D, root given: 10 steps 53.5 mm,
20 steps 46.1, 40 steps 41.2), while a fixed 10-step estimate leaves most of a quiet node's frame
idle. :class:`StepCost` learns the cost of one person-step online, per backend and batch size
(the batch sizes grouped in powers of two), from the batches the node runs; :meth:`StepCost.steps`
turns a time budget into a step count within [lo, hi]. The step schedule of n steps is the
sampler's own for n (its guidance step scaled as ``SamplerConfig.rho_at``).
"""

from __future__ import annotations

import math


class StepCost:
    """Seconds per sampler step of a batch, learned online per batch-size group (an exponential
    average of each group's measured cost; an unmeasured group borrows its nearest measured
    neighbour's per-person cost)."""

    def __init__(self, smoothing: float = 0.2):
        self.smoothing = smoothing
        self.per_step: dict[int, float] = {}  # log2 group of the batch size -> seconds per step

    @staticmethod
    def group(persons: int) -> int:
        return max(0, math.ceil(math.log2(max(persons, 1))))

    def observe(self, persons: int, steps: int, seconds: float) -> None:
        """Count one batch of ``persons`` that ran ``steps`` sampler steps in ``seconds``."""
        if persons < 1 or steps < 1 or not (seconds > 0 and math.isfinite(seconds)):
            return
        g, cost = self.group(persons), seconds / steps
        old = self.per_step.get(g)
        self.per_step[g] = cost if old is None else old + self.smoothing * (cost - old)

    def step_s(self, persons: int) -> float | None:
        """Estimated seconds per step for a batch of ``persons`` (None before any batch was measured)."""
        if not self.per_step:
            return None
        g = self.group(persons)
        if g in self.per_step:
            return self.per_step[g]
        near = min(self.per_step, key=lambda k: abs(k - g))
        return self.per_step[near] * 2.0 ** (g - near) if g > near else self.per_step[near]

    def steps(self, persons: int, budget_s: float, lo: int, hi: int) -> int:
        """The most steps in [lo, hi] that fit in ``budget_s`` seconds for ``persons`` (``lo`` while
        nothing was measured: the first batches teach the cost)."""
        per = self.step_s(persons)
        if per is None or per <= 0:
            return lo
        return int(min(hi, max(lo, math.floor(budget_s / per))))
