"""Robust statistics on masked arrays, in plain numpy (faster than numpy's masked-array median on the
small axes pads-stream takes them over: joints, bones)."""

from __future__ import annotations

import numpy as np


def masked_median(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The median over the last axis of the entries where ``mask`` is True.

    Returns:
        (medians, counts): NaN where no entry is masked in; counts of the entries taken.
    """
    count = mask.sum(axis=-1)
    ordered = np.sort(np.where(mask, values, np.inf), axis=-1)  # the masked-in values first
    lo = np.take_along_axis(ordered, (np.maximum(count - 1, 0) // 2)[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(ordered, (count // 2)[..., None], axis=-1)[..., 0]
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, 0.5 * (lo + hi), np.nan), count
