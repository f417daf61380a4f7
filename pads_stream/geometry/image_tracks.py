"""One camera's 2D joint tracks, read at any time: a zero-delay Gaussian kernel over its frames (so
views captured at different instants can be compared at one), outliers left out against the track
through their neighbours, and the clock lag between two cameras from their joints' image speeds.

Coordinates are normalised image coordinates (K⁻¹[u, v, 1]); times are seconds of the camera's clock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SMOOTH_FRAMES = 1.5  # the zero-delay Gaussian filter of the 2D tracks, σ in frames
MAX_FRAME_MOVE = 0.15  # a motion moves its joints less than this share of the body's image size per frame


@dataclass
class Tracks:
    """One camera's 2D tracks read at any time by Gaussian kernel regression over its frames (a
    zero-delay filter whose noise does not depend on where between two frames it is read; reading
    a linear interpolation instead favours times midway between frames).

    times (F,) s on the camera's clock; y (F, 17, 2) normalised; w (F, 17) confidences (0: unseen);
    sigma_s the kernel's width, seconds.
    """

    times: np.ndarray
    y: np.ndarray
    w: np.ndarray
    sigma_s: float

    def read(self, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The tracks at times ``at`` (T,) s -> (y (T, 17, 2), w (T, 17), rate (T, 17, 2) per s); w is
        the kernel's share of seen frames (0 outside the track)."""
        reach = int(np.ceil(3 * self.sigma_s / np.median(np.diff(self.times))))
        centre = np.searchsorted(self.times, at)
        idx = np.clip(centre[:, None] + np.arange(-reach, reach + 1), 0, len(self.times) - 1)  # (T, n)
        dt = at[:, None] - self.times[idx]
        k = np.exp(-0.5 * (dt / self.sigma_s) ** 2)
        k = np.where(np.diff(idx, axis=1, prepend=-1) > 0, k, 0.0)  # clipped repeats count once
        kw = k[..., None] * self.w[idx]  # (T, n, 17)
        dkw = (-dt / self.sigma_s**2)[..., None] * kw
        d, dd = kw.sum(axis=1), dkw.sum(axis=1)
        n = np.einsum("tnj,tnjc->tjc", kw, self.y[idx])
        dn = np.einsum("tnj,tnjc->tjc", dkw, self.y[idx])
        safe = np.maximum(d, 1e-12)[..., None]
        y = n / safe
        rate = (dn * safe - n * dd[..., None]) / safe**2
        full = np.sqrt(2 * np.pi) * self.sigma_s / np.median(np.diff(self.times))  # the kernel's sum, all seen
        inside = (at >= self.times[0]) & (at <= self.times[-1])
        w = np.where(inside[:, None] & (d > 0.3 * full), np.minimum(d / full, 1.0), 0.0)
        return y, w, rate


def smooth_tracks(times: np.ndarray, y: np.ndarray, w: np.ndarray, outlier: float,
                  sigma: float = SMOOTH_FRAMES) -> Tracks:  # fmt: skip
    """A camera's tracks (times (F,) s, y (F, 17, 2) normalised, w (F, 17)) read with a kernel
    ``sigma`` frames wide, after leaving out the samples farther than ``outlier`` (normalised units)
    from the track through their neighbours (a displaced joint would otherwise smear over its frames)."""
    dt = float(np.median(np.diff(times)))
    y = np.nan_to_num(y)
    tracks = Tracks(times, y, w, sigma * dt)
    for _ in range(3):
        fit, _, _ = tracks.read(times)
        tracks = Tracks(times, 2 * y - fit, tracks.w, sigma * dt)  # twicing: the smoothing's bias removed
        fit, _, _ = tracks.read(times)
        tracks = Tracks(times, y, np.where(np.linalg.norm(y - fit, axis=-1) > outlier, 0.0, w), sigma * dt)
    return tracks


def continuous_motion(y: np.ndarray, w: np.ndarray) -> bool:
    """Whether one camera's frames (y (F, 17, 2), w (F, 17)) follow one motion: the joints' median move
    between consecutive frames is under :data:`MAX_FRAME_MOVE` of the body's extent in the image."""
    both = (w[1:] > 0) & (w[:-1] > 0)
    if not both.any():
        return False
    move = np.median(np.linalg.norm(y[1:] - y[:-1], axis=-1)[both])
    seen = np.where(w[..., None] > 0, y, np.nan)
    extent = np.nanmedian(np.nanmax(seen, axis=1) - np.nanmin(seen, axis=1), axis=0).max()
    return bool(move < MAX_FRAME_MOVE * extent)


def speed_lag(ref: Tracks, other: Tracks, T: np.ndarray, reach_ms: float, step_ms: float) -> float:
    """The clock offset (ms, within ±``reach_ms`` in ``step_ms`` steps) at which camera ``other``'s joint
    image speeds, read at times ``T`` (s) minus it, correlate best with ``ref``'s at T: a foot stands
    still, and swings, at the same instant in every view, so no geometry is needed."""
    _, w0, rate0 = ref.read(T)
    s0 = np.linalg.norm(rate0, axis=-1)
    grid = np.arange(-reach_ms, reach_ms + step_ms / 2, step_ms)
    scores = []
    for o in grid:
        _, wv, rate = other.read(T - o * 1e-3)
        sv, both = np.linalg.norm(rate, axis=-1), (w0 > 0) & (wv > 0)  # (T, 17)
        n = np.maximum(both.sum(axis=0), 1)
        a = np.where(both, s0 - (s0 * both).sum(axis=0) / n, 0.0)
        b = np.where(both, sv - (sv * both).sum(axis=0) / n, 0.0)
        corr = (a * b).sum(axis=0) / np.sqrt(np.maximum((a * a).sum(axis=0) * (b * b).sum(axis=0), 1e-18))
        scores.append(np.sum(corr * both.sum(axis=0)) / max(both.sum(), 1))  # joints weighted by their frames
    return float(grid[int(np.argmax(scores))])
