"""Timing two or more ways of doing the same thing fairly on a shared machine: interleaved in one
process, the order alternating each round, the median kept (this machine's speed drifts, so only
ratios measured together compare)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def interleaved_medians(runs: dict[str, Callable[[], object]], rounds: int, warmup: int = 0) -> dict[str, float]:
    """Median seconds of each of ``runs`` over ``rounds`` rounds, each round calling every run once
    (in reverse order every other round), after ``warmup`` untimed rounds."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    order = list(runs)
    for r in range(warmup + rounds):
        for name in order if r % 2 else order[::-1]:
            start = time.perf_counter()
            runs[name]()
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}
