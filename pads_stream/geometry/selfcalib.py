"""A rig calibrated from people: every camera's pose, clock offset and drift, the scale and the floor
from one person walking before cameras whose intrinsics are known — no board.

The person's joints are the correspondences. Steps: each camera's 2D tracks smoothed by one
zero-delay filter (so they can be read between frames); each clock's offset to camera 0's scanned
(the most epipolar pair); a robust essential matrix per camera pair (:mod:`.epipolar`); each camera
in turn the reference for a start (the others placed by their pairs with it, the pairs' scales made
one by their triangulated depths), the start that a quick adjustment fits best kept; one bundle
adjustment of cameras, clocks and every joint (:mod:`.bundle`); a camera that does not fit, or sees
the person behind it, is re-placed on the others' triangulation (PnP) and adjusted again. The
scale comes from the person's stature when given, else from the prior's mean adult bones (with
that choice's uncertainty: one adult standard deviation, and the spread of the person's bones'
ratios to the mean adult's); the floor from the feet's contacts, when
they are spread enough to fix a plane.

Frames: X_cam = R · X_world + t, metres; the world is Z up with the floor at z = 0 when the floor is
determined, else camera 0's frame (OpenCV axes). Times: integer nanoseconds of each camera's clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .bundle import Bundle, Observations, adjust, robust_cost
from .camera import normalized_rays
from .epipolar import epipolar_cost, essential, pair_poses, pnp, poses_from_reference, triangulate
from .image_tracks import SMOOTH_FRAMES, continuous_motion, smooth_tracks, speed_lag
from .skeleton import MEAN_BONES_M, NUM_JOINTS, STATURE_RANGE_M, bone_lengths, size_from_stature, stature_m

UNTIMED_HZ = 25.0  # frames without times are taken this far apart (for the feet's speeds on the floor)
OUTLIER_PX = 15.0  # a 2D sample this far from its track through the neighbouring frames is left out
MIN_CONF = 0.3  # joints below this confidence are not used as correspondences
OFFSET_SCAN_MS = 200.0  # clocks are searched within ±this of camera 0's (hosts that keep time roughly)
SCAN_STEP_MS = 4.0  # ... first in these steps, by the joints' image speeds
ADULT_SIZE_SD = 0.04  # one adult standard deviation of body size, relative: the prior-size scale's uncertainty
CONTACT_SPEED = 0.25  # a lower ankle slower than this (m/s) stands on the floor
FLOOR_SPREAD_M = 0.3  # the contacts' second spread (std, metres) needed to fix the floor's tilt
DRIFT_MIN_S = 20.0  # clock drifts are solved from walks this long (shorter: offsets only, drift 0)
DRIFT_SD_PPM = 50.0  # ... with this prior spread (a camera's crystal: tens of ppm), so noise reads as no drift
START_STRIDE = 4  # each reference's start is adjusted on every this-th instant, the best then on all
REPLACE_FACTOR = 3.0  # a camera whose median residual exceeds this × the others' (and 10 px) is re-placed
IN_FRONT = 0.9  # ... as is one with fewer than this share of the person's joints it sees in front of it


@dataclass(frozen=True)
class RigCalibration:
    """What :func:`calibrate_rig` found.

    Attributes:
        R: (V, 3, 3), t: (V, 3): X_cam = R · X_world + t, metres.
        world: ``"floor"`` (Z up, the floor z = 0, origin under the walk's centre) or ``"camera0"``.
        offset_ns: (V,) camera v's clock offset to camera 0's at ``epoch_ns[v]`` (its own time);
            drift_ppm: (V,) its rate error: camera 0's time of a stamp t is
            ``t + offset_ns + drift_ppm·1e-6·(t − epoch_ns)`` (:meth:`reference_ns`).
        residual_px: (V,) median reprojection error of the person's joints, pixels.
        state: per camera ``"ok"``, ``"replaced"`` (re-placed by PnP on the others), ``"failed"``.
        scale_source: ``"height"`` (the stature given), ``"baseline"`` (two cameras' distance given) or
            ``"prior"`` (the mean adult's bones);
            scale_sd: the scale's relative uncertainty (1σ); height_m: the person's stature found.
        floor_determined: whether the feet fixed the floor (else ``world`` is ``"camera0"``).
        frames: reference instants used (camera 0's frames with the person).
    """

    R: np.ndarray
    t: np.ndarray
    world: str
    offset_ns: np.ndarray
    epoch_ns: np.ndarray
    drift_ppm: np.ndarray
    residual_px: np.ndarray
    state: tuple[str, ...]
    scale_source: str
    scale_sd: float
    height_m: float
    floor_determined: bool
    frames: int

    @property
    def centres(self) -> np.ndarray:
        """(V, 3) camera centres in the world, metres."""
        return -np.einsum("vji,vj->vi", self.R, self.t)

    def reference_ns(self, camera: int, t_ns: np.ndarray) -> np.ndarray:
        """Camera ``camera``'s stamps ``t_ns`` on camera 0's clock, ns."""
        t = np.asarray(t_ns, dtype=np.float64)
        e = self.epoch_ns[camera]
        return t + self.offset_ns[camera] + self.drift_ppm[camera] * 1e-6 * (t - e)


def _check(kp2d, K, conf, t_ns) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    kp = np.asarray(kp2d, dtype=np.float64)
    if kp.ndim != 4 or kp.shape[2:] != (NUM_JOINTS, 2) or kp.shape[0] < 2:
        raise ValueError(f"kp2d must have shape (V >= 2, F, 17, 2) pixels, got {kp.shape}")
    V, F = kp.shape[:2]
    Ks = np.asarray(K, dtype=np.float64)
    if Ks.shape != (V, 3, 3) or not np.isfinite(Ks).all() or (Ks[:, 0, 0] <= 1).any() or (Ks[:, 1, 1] <= 1).any():
        raise ValueError(f"K must be ({V}, 3, 3) finite pixel intrinsics (fx, fy > 1 px), got {Ks.shape}")
    c = np.ones((V, F, NUM_JOINTS)) if conf is None else np.asarray(conf, dtype=np.float64)
    if c.shape != (V, F, NUM_JOINTS) or not np.isfinite(c).all() or (c < 0).any() or (c > 1).any():
        raise ValueError(f"conf must be ({V}, {F}, 17) in [0, 1]")
    c = np.where(np.isfinite(kp).all(axis=-1), c, 0.0)
    t = None
    if t_ns is not None:
        t = np.asarray(t_ns)
        if t.shape != (V, F) or not np.issubdtype(t.dtype, np.integer) or (np.diff(t, axis=1) <= 0).any():
            raise ValueError(f"t_ns must be ({V}, {F}) integer nanoseconds, increasing per camera")
    return kp, Ks, c, t


def calibrate_rig(kp2d: np.ndarray, K: np.ndarray, conf: np.ndarray | None = None, t_ns: np.ndarray | None = None,
                  height_m: float | None = None, baseline_m: tuple[int, int, float] | None = None,
                  seed: int = 0) -> RigCalibration:  # fmt: skip
    """Calibrate a rig from one person seen by every camera for a while (a calibration walk).

    Args:
        kp2d: (V, F, 17, 2) pixels, H36M-17 order, undistorted: the person in camera v's frame f.
        K: (V, 3, 3) intrinsics, pixels (known).
        conf: (V, F, 17) in [0, 1]; 0 = unseen (default: every finite joint seen).
        t_ns: (V, F) each frame's capture time on its camera's clock, integer ns; frames need not be
            simultaneous, clocks may differ by up to ±0.2 s (found to about a millisecond). None: the
            cameras are synchronised (frame f is one instant in every camera), at :data:`UNTIMED_HZ`.
        height_m: the person's stature, metres (fixes the scale); None: the prior's mean adult.
        baseline_m: ``(i, j, metres)``: the measured distance between cameras i and j's centres (fixes the
            scale instead of ``height_m``; give one of the two).
        seed: the robust estimators' random samples.

    Returns:
        :class:`RigCalibration`.

    Raises:
        ValueError: bad input, or too few correspondences for a camera (the message names it).
    """
    kp, Ks, c, t_ns = _check(kp2d, K, conf, t_ns)
    if height_m is not None and not STATURE_RANGE_M[0] <= float(height_m) <= STATURE_RANGE_M[1]:
        raise ValueError(
            f"height_m is a person's stature in metres ({STATURE_RANGE_M[0]}-{STATURE_RANGE_M[1]}), got {height_m!r}"
        )
    V, F = kp.shape[:2]
    if baseline_m is not None:
        _check_baseline(baseline_m, V, height_m)
    rng = np.random.default_rng(seed)
    rays = np.nan_to_num(normalized_rays(np.nan_to_num(kp), Ks[:, None])[..., :2])
    w = np.where(c >= MIN_CONF, c, 0.0)
    # frames that are no continuous motion (unrelated poses, as a test set's) are read as they are, frame f
    # of every camera one instant; a walk is read along its smoothed tracks, at each camera's own times
    continuous = all(continuous_motion(rays[v], w[v]) for v in range(V))
    timed = t_ns is not None and continuous
    frame_s = float(np.median(np.diff(t_ns[0]))) * 1e-9 if t_ns is not None else 1.0 / UNTIMED_HZ
    times = (t_ns - t_ns[0, 0]).astype(np.float64) * 1e-9 if timed else np.broadcast_to(np.arange(F) * frame_s, (V, F))
    focal = Ks[:, [0, 1], [0, 1]]
    sigma = SMOOTH_FRAMES if continuous else 0.05
    tracks = [smooth_tracks(times[v], rays[v], w[v], OUTLIER_PX / focal[v].mean(), sigma) for v in range(V)]
    T = times[0]  # the reference instants: camera 0's frames
    mid = float(np.median(T))

    def observer(instants: np.ndarray) -> Callable[[np.ndarray, np.ndarray], Observations]:
        """The cameras' observations of the joints at ``instants`` (camera 0's clock, s) for given clocks."""

        def observe(off_ms: np.ndarray, drift_ppm: np.ndarray) -> Observations:
            ys, ws, rates, since = [], [], [], []
            for v in range(V):
                at = instants - off_ms[v] * 1e-3 - drift_ppm[v] * 1e-6 * (instants - mid)
                y, wv, rate = tracks[v].read(at)
                ys.append(y.reshape(-1, 2)), ws.append(wv.reshape(-1)), rates.append(rate.reshape(-1, 2))
                since.append(np.repeat(instants - mid, NUM_JOINTS))
            P = len(instants) * NUM_JOINTS
            return Observations(np.repeat(np.arange(V), P), np.tile(np.arange(P), V), np.concatenate(ys),
                                np.concatenate(ws), np.concatenate(rates), np.concatenate(since))  # fmt: skip

        return observe

    observe = observer(T)

    # -- each camera's clock against camera 0's: the offset that makes the two views most epipolar --
    off = np.zeros(V)
    obs0 = observe(off, np.zeros(V))
    P = len(T) * NUM_JOINTS
    y0, w0 = obs0.y[:P], obs0.w[:P]
    for v in range(1, V):

        def pair(o: float, v: int = v) -> tuple[np.ndarray, np.ndarray]:  # camera v's rows, its clock at o ms
            y, wv, _ = tracks[v].read(T - o * 1e-3)
            return y.reshape(-1, 2), wv.reshape(-1)

        both = np.flatnonzero((w0 > 0) & (pair(0.0)[1] > 0))
        if len(both) < 50:
            raise ValueError(f"camera {v} shares {len(both)} seen joints with camera 0; it needs 50 or more")
        if timed:  # first where the joints' image speeds agree best (stance and swing at the same time in
            # every view: no geometry needed), then the most epipolar offset near it, finer
            off[v] = speed_lag(tracks[0], tracks[v], T, OFFSET_SCAN_MS, SCAN_STEP_MS)
            yv, wv = pair(off[v])
            both = np.flatnonzero((w0 > 0) & (wv > 0))
            E, _ = essential(y0[both], yv[both], focal[v].mean(), rng)
            for step, reach in ((2.0, 16.0), (0.5, 2.0)):
                grid = off[v] + np.arange(-reach, reach + step / 2, step)
                costs = [epipolar_cost(E, y0, w0, *pair(o), focal[v].mean()) for o in grid]
                off[v] = grid[int(np.argmin(costs))]

    # -- each camera in turn the reference for a start; the best fit goes on (joints near one plane, of a
    # slow walk on one line, can mislead the pairs: from camera 0 alone, cameras 8-49° off at 2-3 px) --
    obs = observe(off, np.zeros(V))
    yv, wv = obs.y.reshape(V, P, 2), obs.w.reshape(V, P)
    pairs = pair_poses(yv, wv, focal, rng)
    sparse = observer(T[::START_STRIDE])  # the starts compared on every START_STRIDE-th instant (faster)
    seen = sparse(off, np.zeros(V))
    ys, ws = seen.y.reshape(V, -1, 2), seen.w.reshape(V, -1)
    fit, best = None, np.inf
    for ref in range(V):
        start = poses_from_reference(pairs, ref, yv, wv)
        if start is None:
            continue
        trial = adjust(*start, _filled(triangulate(*start, ys, ws)), focal, sparse, offset_ms=off)
        cost = robust_cost(trial.residual_px, seen.w)
        if cost < best:
            fit, best = trial, cost
    if fit is None:
        raise ValueError("the cameras share too few seen joints with camera 0 (50 or more each) at their clocks")
    b = adjust(fit.R, fit.t, _filled(triangulate(fit.R, fit.t, yv, wv)), focal, observe, offset_ms=off)

    # -- bundle adjustment; a camera that does not fit is re-placed on the others' points ------------
    state = ["ok"] * V
    clock = "fixed" if not timed else "drift" if T[-1] - T[0] >= DRIFT_MIN_S else "offset"
    if timed:  # the offsets, then (over a long enough walk) the drifts
        b = adjust(b.R, b.t, b.X, focal, observe, clock="offset", offset_ms=off)
        if clock == "drift":
            b = adjust(b.R, b.t, b.X, focal, observe, clock="drift", offset_ms=b.offset_ms, drift_sd_ppm=DRIFT_SD_PPM)
    per_cam = _median_residuals(b.residual_px, observe(b.offset_ms, b.drift_ppm), V)
    for v in range(1, V):
        if _misplaced(b, observe(b.offset_ms, b.drift_ppm), v):
            keep = [u for u in range(V) if u != v]
            Xo = triangulate(b.R[keep], b.t[keep], yv[keep], wv[keep])
            Rv, tv = pnp(Xo, yv[v], wv[v], focal[v].mean(), rng)
            R2, t2 = b.R.copy(), b.t.copy()
            R2[v], t2[v] = Rv, tv
            b = adjust(R2, t2, np.where(np.isfinite(Xo), Xo, b.X), focal, observe, clock=clock,
                       offset_ms=b.offset_ms, drift_ppm=b.drift_ppm, drift_sd_ppm=DRIFT_SD_PPM)  # fmt: skip
            seen = observe(b.offset_ms, b.drift_ppm)
            per_cam = _median_residuals(b.residual_px, seen, V)
            state[v] = "failed" if _misplaced(b, seen, v) else "replaced"

    # -- scale, then the floor ---------------------------------------------------------------------
    skel = b.X.reshape(len(T), NUM_JOINTS, 3)
    seen = observe(b.offset_ms, b.drift_ppm).w.reshape(V, len(T), NUM_JOINTS)
    whole = ((seen > 0).sum(axis=0) >= 2).all(axis=1)
    bones = np.median(bone_lengths(skel[whole]), axis=0) if whole.sum() >= 5 else bone_lengths(skel).mean(axis=0)
    if baseline_m is not None:
        i, j, metres = int(baseline_m[0]), int(baseline_m[1]), float(baseline_m[2])
        centres = -np.einsum("vji,vj->vi", b.R, b.t)
        scale, source, sd = metres / float(np.linalg.norm(centres[i] - centres[j])), "baseline", 0.002
    elif height_m is not None:
        scale, source, sd = float(size_from_stature(height_m, bones)), "height", 0.005
    else:
        ratio = MEAN_BONES_M / bones
        scale = float(np.sum(MEAN_BONES_M * bones) / np.sum(bones * bones))
        # a body whose proportions are not the mean adult's is sized as unsurely as they differ (relative
        # spread; one body's difference, not 16 independent errors to average)
        sd = float(np.hypot(ADULT_SIZE_SD, np.std(ratio / scale)))
        source = "prior"
    R_out, t_out, skel = b.R, b.t * scale, skel * scale
    floor = _floor(skel[whole], T[whole])
    if floor is not None:
        A, o = floor  # world axes (columns) and origin in camera 0's frame
        t_out = np.einsum("vij,j->vi", R_out, o) + t_out
        R_out = R_out @ A
    return RigCalibration(
        R=R_out, t=t_out, world="floor" if floor is not None else "camera0",
        offset_ns=np.round(b.offset_ms * 1e6).astype(np.int64),
        epoch_ns=(t_ns[0, 0] + np.round((mid - b.offset_ms * 1e-3) * 1e9)).astype(np.int64)
        if timed else np.zeros(V, np.int64),
        drift_ppm=b.drift_ppm.copy(), residual_px=per_cam, state=tuple(state), scale_source=source, scale_sd=sd,
        height_m=float(stature_m(bones * scale)), floor_determined=floor is not None, frames=int(len(T)),
    )  # fmt: skip


def _check_baseline(baseline_m: tuple[int, int, float], cameras: int, height_m: float | None) -> None:
    """Raise ValueError unless ``baseline_m`` is (i, j, metres) of two cameras of the rig, 0.05-100 m apart."""
    try:
        i, j, metres = baseline_m
        ok = int(i) == i and int(j) == j and 0 <= i < cameras and 0 <= j < cameras and i != j
        ok = ok and np.isfinite(float(metres)) and 0.05 <= float(metres) <= 100.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"baseline_m is (camera i, camera j, metres between their centres) with i != j among "
                         f"{cameras} cameras and 0.05-100 m, got {baseline_m!r}")  # fmt: skip
    if height_m is not None:
        raise ValueError("give height_m or baseline_m, not both: each fixes the scale")


def _filled(X: np.ndarray) -> np.ndarray:
    """Points (N, 3) with those not triangulated (NaN: under two views) at the others' median."""
    return np.where(np.isfinite(X), X, np.nanmedian(X, axis=0))


def _misplaced(b: Bundle, seen: Observations, v: int) -> bool:
    """Whether camera v is not where the others put the person: its median residual over
    :data:`REPLACE_FACTOR` × the others' (and 10 px), or under :data:`IN_FRONT` of the joints it sees
    in front of it (a camera turned half round projects the person behind it to nearly the same
    image points: its residual alone cannot tell, and an essential matrix read wrongly can leave it
    there)."""
    per_cam = _median_residuals(b.residual_px, seen, len(b.R))
    mine = (seen.cam == v) & (seen.w > 0)
    depth = (b.X[seen.point[mine]] @ b.R[v].T + b.t[v])[:, 2]
    in_front = len(depth) > 0 and np.mean(depth > 0) >= IN_FRONT
    return bool(per_cam[v] > max(REPLACE_FACTOR * np.median(np.delete(per_cam, v)), 10.0) or not in_front)


def _median_residuals(residual_px: np.ndarray, obs: Observations, V: int) -> np.ndarray:
    return np.array([np.median(residual_px[(obs.cam == v) & (obs.w > 0)]) for v in range(V)])


def _floor(skel: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The floor from the lower ankle's contacts: (world axes (3, 3) as columns, origin (3,)) in the
    skeleton's frame, or None when the contacts do not fix a plane (too few, or along a line)."""
    if len(skel) < 10:
        return None
    up = np.median(skel[:, 8] - skel[:, 0], axis=0)  # pelvis -> thorax: upright while walking
    n = up / np.linalg.norm(up)
    ankles = skel[:, [3, 6]]
    for _ in range(3):  # the lower ankle by the current normal, its slow frames, a plane through them
        foot = ankles[np.arange(len(skel)), np.argmin(ankles @ n, axis=1)]
        speed = np.linalg.norm(np.gradient(foot, times, axis=0), axis=1)
        contacts = foot[speed < CONTACT_SPEED]
        if len(contacts) < 10:
            return None
        height = (contacts - np.median(contacts, axis=0)) @ n
        near = np.abs(height - np.median(height)) < 3 * 1.4826 * np.median(np.abs(height - np.median(height))) + 1e-3
        contacts = contacts[near]
        centre = contacts.mean(axis=0)
        _, s, vt = np.linalg.svd(contacts - centre, full_matrices=False)
        n = vt[2] * np.sign(vt[2] @ up)
    if s[1] / np.sqrt(len(contacts)) < FLOOR_SPREAD_M or n @ up < np.cos(np.radians(20)) * np.linalg.norm(up):
        return None
    x = np.array([0.0, 0.0, 1.0]) - n[2] * n  # camera 0's optical axis along the floor
    x = x / np.linalg.norm(x) if np.linalg.norm(x) > 1e-6 else vt[0]
    A = np.stack([x, np.cross(n, x), n], axis=1)
    return A, centre
