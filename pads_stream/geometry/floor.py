"""A camera's floor without calibration: the plane the tracked people's feet stand on.

Without extrinsics a stream still shows people standing and walking; where a foot rests (the lowest
joint of a pose, moving slowly) it is on the floor. The plane through those contacts, in the
camera frame, gives the camera's height above the floor, its pitch and roll, and so a world frame
(Z up, floor z = 0, the camera above the origin) in which the bridges, the viewer and recordings
can place people. The contacts are camera-frame points of estimated poses, so the plane is as good
as their depth: with the root estimated from body size it inherits that estimate's scale.

Conventions: camera frame OpenCV (x right, y down, z forward), metres. A floor is a unit normal
``up`` (camera frame, pointing from the floor to the camera's side) and the camera's ``height``
above it; the floor's points X satisfy up · X = −height. Pitch: the optical axis's angle below the
horizon (degrees, positive looking down); roll: the image's rotation about the optical axis
(degrees, positive clockwise as seen by the camera).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from math import erf

import numpy as np

ANKLES = (3, 6)  # H36M-17: the joints a standing person's lowest point is


@dataclass(frozen=True)
class FloorConfig:
    """Which poses give contacts, and how the plane is fitted."""

    contact_speed: float = 0.4  # m/s: a lowest joint moving slower than this rests on the floor
    contact_window_s: float = 0.2  # the speed is taken over this long
    inlier_m: float = 0.05  # a contact this close to the plane counts as on it (robust fit)
    min_contacts: int = 30  # fewer contacts: no estimate
    min_spread_m: float = 0.5  # contacts must span this much floor (else the tilt is unknown)
    # a person's body-size depth is this share off (adults' statures vary by about 4 %): the floor's
    # height_sd is what that does to the camera's height, person by person
    person_size_sd: float = 0.04
    tolerance_m: float = 0.10  # confidence: the chance that the camera's height is within this
    walk_sd_m: float = 0.25  # a person whose contacts spread this much (sd, m) walked: their size may be freed


@dataclass(frozen=True)
class Floor:
    """A floor in a camera's frame (see the module docstring).

    Attributes:
        up: (3,) unit normal, camera frame. height: camera above the floor, metres.
        contacts: contacts the fit used. rms: their RMS distance from the plane, metres.
        confidence: in [0, 1], the chance that ``height`` is within ``FloorConfig.tolerance_m``
            of the truth, were its error normal with ``height_sd``.
        height_sd: metres, how far ``height`` may be off because each person's body size (and so
            the depth of their contacts) is uncertain (:func:`height_sd`).
    """

    up: np.ndarray
    height: float
    contacts: int
    rms: float
    confidence: float
    height_sd: float = 0.0

    @property
    def pitch_deg(self) -> float:
        return float(np.degrees(np.arcsin(np.clip(-self.up[2], -1.0, 1.0))))

    @property
    def roll_deg(self) -> float:
        return float(np.degrees(np.arctan2(self.up[0], -self.up[1])))

    def extrinsics(self) -> tuple[np.ndarray, np.ndarray]:
        """(R (3, 3), t (3,)) of a world implied by this floor: X_cam = R · X_world + t, Z up along
        ``up``, the floor at z = 0, the camera above the world origin, the world's y axis along
        the optical axis's horizontal direction."""
        forward = np.array([0.0, 0.0, 1.0]) - self.up[2] * self.up  # the optical axis on the floor's plane
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, self.up)  # world x, so that (x, y, z) = (right, forward, up) is right-handed
        R = np.stack([right, forward, self.up], axis=1)  # columns: the world axes in the camera frame
        return R, -R @ np.array([0.0, 0.0, self.height])


def contacts(
    joints: np.ndarray, times_s: np.ndarray, cfg: FloorConfig, up: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Foot contacts of one person's track: the lowest joint of each pose where it moved slower than
    ``contact_speed`` since the previous pose.

    Args:
        joints: (F, 17, 3) a track's joints, camera frame, metres (NaN rows: not seen).
        times_s: (F,) their capture times, seconds, increasing.
        up: (3,) the up direction to call "lowest" along; default the camera's −y (an upright camera).

    Returns:
        ((M, 3) contact points, camera frame, metres; (M,) their times, seconds).
    """
    up = np.array([0.0, -1.0, 0.0]) if up is None else up
    ok = np.isfinite(joints).all(axis=(1, 2))
    joints, times_s = joints[ok], times_s[ok]
    if len(joints) < 2:
        return np.zeros((0, 3)), np.zeros(0)
    lowest = joints[np.arange(len(joints)), np.argmin(joints @ up, axis=1)]  # (F, 3)
    # speed over about contact_window_s (one frame's step is mostly the 2D noise's: 2 cm at 25 Hz is 0.7 m/s)
    lag = np.searchsorted(times_s, times_s - cfg.contact_window_s, side="right") - 1
    idx = np.flatnonzero(lag >= 0)
    speed = np.linalg.norm(lowest[idx] - lowest[lag[idx]], axis=-1) / np.maximum(times_s[idx] - times_s[lag[idx]], 1e-6)
    slow = idx[speed < cfg.contact_speed]
    return lowest[slow], times_s[slow]


# How strongly each walker's size is held to the mean skeleton's, as a share of their contacts' own
# weight (inf: held; 0.01: nearly free), chosen per fit (`choose_kappa`).
KAPPAS = (np.inf, 0.3, 0.1, 0.03, 0.01)


def fit_floor(
    points: np.ndarray,
    cfg: FloorConfig,
    persons: np.ndarray | None = None,
    times_s: np.ndarray | None = None,
    iters: int = 10,
) -> Floor | None:
    """The plane through foot contacts (M, 3) camera frame metres, robust to the lifted ones.

    A contact's error is mostly its depth, a share of its distance along its own ray (the body-size
    depth is a few per cent off, and wanders along a track). So each contact's height above the
    plane is weighed against the camera's height, up · X / height + 1 = 0: linear in up / height,
    solved by least squares. An orthogonal fit instead can tilt the plane towards the camera, where a
    person's depth wander (contacts along one ray) costs nothing (held-out S8 walks,
    ``tools/floor_eval.py``: 4.8 cm off on average against 2.5).

    People differ in size, and a body-size depth takes each for the mean skeleton: a person 4 %
    taller stands 4 % further away than their contacts say, on a plane of their own parallel to the
    floor (adults' statures vary by about 4 %; held to one size, four people tilt the plane: 20 cm
    off on average on held-out S8 walks with sizes spread by 4 %, ``tools/floor_eval.py``). So each
    person p's contacts are scaled by a_p, their size as a share of the mean skeleton's,
    a_p (up · X) / height + 1 = 0. Only people who walked (:func:`walked`) have a_p fitted, held to 1
    by ``kappa`` × their contacts' count (a ridge); a freed person's own contacts tilt the plane,
    a held one's size is part of the uncertainty (:func:`height_sd`). ``kappa`` is the entry of
    ``KAPPAS`` with the least ``height_sd`` (:func:`choose_kappa`). Then refitted to the contacts
    within ``inlier_m`` of it (or twice the median distance), on their person's scale.

    Args:
        persons: (M,) whose each contact is (default: all one person's).
        times_s: (M,) when, seconds (default: all at 0, one block).

    Returns:
        The floor, or None without enough contacts or spread, or for a plane above the camera.
    """
    if len(points) < cfg.min_contacts:
        return None
    who = np.zeros(len(points), int) if persons is None else np.unique(persons, return_inverse=True)[1]
    when = np.zeros(len(points)) if times_s is None else np.asarray(times_s, float)
    keep = np.ones(len(points), bool)
    free = walked(points, who, who.max() + 1, cfg.walk_sd_m)
    kappa, (v, a) = choose_kappa(points, who, when, free, cfg.person_size_sd)  # and its fit to all
    for _ in range(iters):
        height = 1.0 / max(float(np.linalg.norm(v)), 1e-12)
        above = height * (a[who] * (points @ v) + 1.0)  # each contact's height above the plane, on its person's scale
        new = np.abs(above) < max(cfg.inlier_m, 2.0 * np.median(np.abs(above[keep])))
        if new.sum() < cfg.min_contacts or np.array_equal(new, keep):
            break
        keep = new
        v, a = _scaled_plane(points[keep], who[keep], kappa, free)
    height = 1.0 / max(float(np.linalg.norm(v)), 1e-12)
    up = v * height
    above = a[who] * (points @ up) + height
    if up[1] > 0:  # the plane's up points down the image: a ceiling, not a floor
        return None
    flat = points[keep] - (points[keep] @ up)[:, None] * up
    spread = float(np.sqrt(np.linalg.eigvalsh(np.cov(flat.T))[-2:]).min() * 2) if keep.sum() > 3 else 0.0
    if spread < cfg.min_spread_m / 4:
        return None
    rms = float(np.sqrt(np.mean(above[keep] ** 2)))
    sd = height_sd(points[keep], who[keep], when[keep], kappa, free, cfg.person_size_sd, (v, a))
    confidence = float(erf(cfg.tolerance_m / (np.sqrt(2.0) * sd))) if sd > 0 else 1.0
    return Floor(up=up, height=height, contacts=int(keep.sum()), rms=rms, confidence=confidence, height_sd=sd)


def _scaled_plane(
    points: np.ndarray, persons: np.ndarray, kappa: float, free: np.ndarray, iters: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """(v = up / height (3,), a (P,)) minimising Σ (a_p v · X + 1)² + kappa Σ_p n_p (a_p − 1)²
    over contacts X (M, 3) of ``persons`` (M,) ints below P, by Gauss-Newton from the fit with a = 1.
    Only the ``free`` (P,) persons' a_p are fitted, none with kappa inf (then one linear least
    squares); the others' stay 1."""
    n_persons = len(free)
    v = np.linalg.lstsq(points, -np.ones(len(points)), rcond=None)[0]
    a = np.ones(n_persons)
    if np.isinf(kappa) or not free.any():
        return v, a
    weight = kappa * np.bincount(persons, minlength=n_persons)
    cols = np.r_[np.ones(3, bool), free]
    for _ in range(iters):
        normal, gradient = _normal_equations(points, persons, v, a, weight)
        step = np.zeros(3 + n_persons)
        step[cols] = np.linalg.lstsq(normal[np.ix_(cols, cols)], -gradient[cols], rcond=None)[0]
        v, a = v + step[:3], a + step[3:]
        if np.abs(step).max() < 1e-7:
            break
    return v, a


def _normal_equations(
    points: np.ndarray, persons: np.ndarray, v: np.ndarray, a: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """JᵀJ (3 + P, 3 + P) and Jᵀr (3 + P,) of the residuals r: a_p v · X + 1 per contact and
    √weight_p (a_p − 1) per person, J their Jacobian in (v, a)."""
    n = len(a)
    z = points @ v
    residual = a[persons] * z + 1.0
    dv = a[persons, None] * points  # d residual / d v; d residual / d a_p is z on p's contacts
    cross = np.stack([np.bincount(persons, dv[:, c] * z, n) for c in range(3)])  # (3, P)
    normal = np.zeros((3 + n, 3 + n))
    normal[:3, :3] = dv.T @ dv
    normal[:3, 3:], normal[3:, :3] = cross, cross.T
    normal[3:, 3:] = np.diag(np.bincount(persons, z * z, n) + weight)
    gradient = np.concatenate([dv.T @ residual, np.bincount(persons, z * residual, n) + weight * (a - 1.0)])
    return normal, gradient


def walked(points: np.ndarray, persons: np.ndarray, n_persons: int, walk_sd_m: float) -> np.ndarray:
    """(n_persons,) bool: whose contacts spread along their path by ``walk_sd_m`` (the largest
    standard deviation of their points, metres) — people who walked about, whose own contacts can
    tilt the plane; someone standing or treading in one spot cannot."""
    out = np.zeros(n_persons, bool)
    for p in np.unique(persons):
        own = points[persons == p]
        out[p] = len(own) > 3 and np.sqrt(np.linalg.eigvalsh(np.cov(own.T))[-1]) >= walk_sd_m
    return out


def choose_kappa(
    points: np.ndarray, persons: np.ndarray, times_s: np.ndarray, free: np.ndarray, size_sd: float
) -> tuple[float, tuple[np.ndarray, np.ndarray]]:
    """The ``KAPPAS`` entry whose fit has the least :func:`height_sd`, and that fit (v, a): freed
    sizes take out the people's sizes but leave the tilt to the walkers' own contacts, held sizes
    the other way round. Inf where there is one person or none walked (``free``)."""
    kappas = KAPPAS if np.unique(persons).size > 1 and free.any() else (np.inf,)
    fits = {kappa: _scaled_plane(points, persons, kappa, free) for kappa in kappas}
    if len(fits) == 1:
        return np.inf, fits[np.inf]
    best = min(kappas, key=lambda kappa: height_sd(points, persons, times_s, kappa, free, size_sd, fits[kappa]))
    return best, fits[best]


def height_sd(
    points: np.ndarray,
    persons: np.ndarray,
    times_s: np.ndarray,
    kappa: float,
    free: np.ndarray,
    size_sd: float,
    fit: tuple[np.ndarray, np.ndarray],
) -> float:
    """How far the camera's height fitted to contacts (M, 3) of ``persons`` (M,) at ``times_s`` (M,)
    with ``kappa`` (``fit``: its v, a from :func:`_scaled_plane`) may be off, metres, from two causes
    added in quadrature:

    - each person's size, uncertain by ``size_sd`` (a share): the change of the height when one
      person's prior size moves by that share (a freed a_p's prior, a held a_p itself, to
      1 + size_sd), to first order, the people's changes added in quadrature. With sizes held, people
      standing in a few spots make this large (one person's size tilts the plane through the
      others'); one person alone gives about ``size_sd`` × height, the scale being theirs;
    - the contacts' scatter: the least-squares covariance of the fit (sizes and plane together),
      its residuals counted once per person and second (a track's errors last about that long).
      With sizes freed, people whose contacts stay in one spot leave the tilt to this term.
    """
    n = len(free)
    fitted = free & ~np.isinf(kappa)
    v, a = fit
    weight = kappa * np.bincount(persons, minlength=n) * fitted if fitted.any() else np.zeros(n)
    normal, _ = _normal_equations(points, persons, v, a, weight)
    cols = np.r_[np.ones(3, bool), fitted]  # the plane and the freed sizes
    inverse = np.linalg.pinv(normal[np.ix_(cols, cols)])
    grad = -v / np.linalg.norm(v) ** 3  # d height / d v
    # Jᵀ (d residual) for each person's size moved by size_sd: a held a_p moves its contacts'
    # residuals (the plane's column of JᵀJ for a_p), a freed a_p's prior row moves
    moved = np.where(fitted, 0.0, 1.0) * normal[:, 3:] * size_sd
    moved[3:] = np.diag(-weight * size_sd) * fitted
    changes = grad @ (-inverse @ moved[cols])[:3]  # (P,) the height's change per person
    z = points @ v
    second = np.floor(times_s - times_s.min()).astype(int)
    blocks = np.unique(persons * (second.max() + 1) + second).size
    variance = float(np.sum((a[persons] * z + 1.0) ** 2)) / max(blocks - 3, 1)  # per independent block
    return float(np.sqrt(np.sum(changes**2) + grad @ inverse[:3, :3] @ grad * variance))


def estimate_floor(
    tracks: list[np.ndarray], times_s: list[np.ndarray], cfg: FloorConfig, passes: int = 3
) -> Floor | None:
    """The floor of a camera from its persons' tracks: contacts taken as the lowest joint along the
    camera's −y at first, then along the last fit's ``up`` (a tilted camera's −y is partly
    forward: the far foot, not the lower one), refitted ``passes`` times.

    Args:
        tracks: per person (F, 17, 3) joints, camera frame, metres (NaN rows: not seen).
        times_s: per person (F,) seconds.
    """
    floor, up = None, None
    for _ in range(passes):
        found = [contacts(j, t, cfg, up) for j, t in zip(tracks, times_s, strict=True)]
        if not found:
            return floor
        persons = np.concatenate([np.full(len(p), i) for i, (p, _) in enumerate(found)])
        fit = fit_floor(np.concatenate([p for p, _ in found]), cfg, persons, np.concatenate([t for _, t in found]))
        if fit is None:
            return floor
        floor, up = fit, fit.up
    return floor


@dataclass
class FloorTracker:
    """A stream's floor, refined while its people move: the ankles of the poses it published over
    the last ``keep`` poses, refitted at most every ``refit_s`` seconds (of the stream's clock)."""

    cfg: FloorConfig = field(default_factory=FloorConfig)
    keep: int = 3000
    refit_s: float = 1.0
    samples: deque = field(default_factory=deque)  # (track id, t seconds, ankles (2, 3) camera frame)
    floor: Floor | None = None
    fitted_at: float = -np.inf

    def add(self, pid: int, t_s: float, joints: np.ndarray) -> None:
        """One published pose (17, 3), camera frame, metres, of track ``pid`` at ``t_s``."""
        self.samples.append((pid, t_s, joints[list(ANKLES)].copy()))
        while len(self.samples) > self.keep:
            self.samples.popleft()

    def update(self, t_s: float) -> Floor | None:
        """The current floor (refitted if ``refit_s`` has passed), or None while there is none."""
        if t_s - self.fitted_at >= self.refit_s:
            self.fitted_at = t_s
            by_id: dict[int, list] = {}
            for pid, t, ankles in self.samples:
                by_id.setdefault(pid, []).append((t, ankles))
            tracks = [np.stack([a for _, a in v]) for v in by_id.values() if len(v) > 1]
            times = [np.array([t for t, _ in v]) for v in by_id.values() if len(v) > 1]
            fit = estimate_floor(tracks, times, self.cfg) if tracks else None
            self.floor = fit if fit is not None else self.floor
        return self.floor
