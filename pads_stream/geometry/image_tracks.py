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
    """One camera's 2D tracks read at any time by local linear regression under a Gaussian kernel
    over its frames (a zero-delay filter whose noise barely depends on where between two frames it
    is read — reading a linear interpolation instead favours times midway between frames — and,
    unlike the kernel's weighted mean, not pulled towards the frames on one side where the other
    side's are missing: beside a dropped joint, or near a track's end, a mean reads as a clock shift).

    times (F,) s on the camera's clock; y (F, 17, 2) normalised; w (F, 17) confidences (0: unseen);
    sigma_s the kernel's width, seconds.
    """

    times: np.ndarray
    y: np.ndarray
    w: np.ndarray
    sigma_s: float

    def read(self, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The tracks at times ``at`` (T,) s -> (y (T, 17, 2), w (T, 17), rate (T, 17, 2) per s); w is
        the kernel's share of seen frames, fading to 0 over one kernel width at the track's ends
        and from 0.6 to 0.3 of a full share (so a cost summed with it changes continuously with
        ``at``); rate is dy/d``at`` of the reading itself."""
        reach = int(np.ceil(3 * self.sigma_s / np.median(np.diff(self.times))))
        centre = np.searchsorted(self.times, at)
        idx = np.clip(centre[:, None] + np.arange(-reach, reach + 1), 0, len(self.times) - 1)  # (T, n)
        dt = at[:, None] - self.times[idx]
        k = np.exp(-0.5 * (dt / self.sigma_s) ** 2)
        k = np.where(np.diff(idx, axis=1, prepend=-1) > 0, k, 0.0)  # clipped repeats count once
        kw = k[..., None] * self.w[idx]  # (T, n, 17)
        # a line through the frames near the read, weighted by the kernel (unbiased where frames are
        # missing on one side, unlike the kernel's mean), read there; the rate is that reading's exact
        # derivative in time (the bundle adjustment's clock terms need the derivative of what it reads)
        d = -dt[..., None]  # (T, n, 1) each frame's time from the read's, s
        s2 = self.sigma_s**2
        S = [(kw * d**p).sum(axis=1)[..., None] for p in range(4)]  # (T, 17, 1) Σ k w dᵖ
        M = [np.einsum("tnj,tnjc->tjc", kw * d**p, self.y[idx]) for p in range(3)]  # (T, 17, 2) Σ k w dᵖ y
        dS = [S[p + 1] / s2 - p * S[p - 1] for p in range(3)]  # d/dt: dk/dt = k d / σ², dd/dt = -1
        dM = [M[p + 1] / s2 - p * M[p - 1] for p in range(2)]
        num, den = S[2] * M[0] - S[1] * M[1], S[0] * S[2] - S[1] ** 2
        dnum = dS[2] * M[0] + S[2] * dM[0] - dS[1] * M[1] - S[1] * dM[1]
        dden = dS[0] * S[2] + S[0] * dS[2] - 2 * S[1] * dS[1]
        line = den > 1e-9 * np.maximum(S[0] * S[2], 1e-300)  # frames at two times or more
        safe = np.where(line, den, 1.0)
        y = np.where(line, num / safe, M[0] / np.maximum(S[0], 1e-12))
        rate = np.where(line, (dnum * safe - num * dden) / safe**2, 0.0)
        full = np.sqrt(2 * np.pi) * self.sigma_s / np.median(np.diff(self.times))  # the kernel's sum, all seen
        # weights that fade (not jump) to 0 towards the track's ends and where few frames were seen, so
        # that what a bundle adjustment's cost counts changes continuously with the clock it reads at
        ends = np.clip(np.minimum(at - self.times[0], self.times[-1] - at) / self.sigma_s, 0.0, 1.0)
        share = np.minimum(S[0][..., 0] / full, 1.0)
        w = ends[:, None] * share * np.clip((share - 0.3) / 0.3, 0.0, 1.0)
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
