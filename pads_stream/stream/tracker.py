"""Tracked persons of a stream, without sockets: warm starts, the depth and One Euro filters, the
plausibility gate.

The node drives this module frame by frame, and so do the measurement tools
(``tools/warm_start_eval.py``, ``tools/depth_filter_eval.py``): what they measure is what the node
runs. Per person of a frame (an :class:`Observation`), :func:`estimate_persons`:

1. chooses the track to continue (:meth:`StreamTracks.matched`): the fresh track of the stream
   whose pose, at the root given now or else the track's root, is plausible and reprojects best
   onto the new 2D, within ``warm_max_reproj_m`` (the own id wins ties). A tracker's id switch
   then costs nothing, and a pose that fits nobody's 2D is never reused;
2. estimates every person in one sampler call per start kind (cold from the sampler's
   ``t_start``; warm from the continued pose at ``warm_t_start``), an estimated root lending
   only its depth along this frame's pelvis ray (:meth:`pads_stream.api.PoseModel.lift`);
3. filters a body-size root depth along the continued track (:func:`filter_root_depth`: the
   root moves along its ray, the pose keeps its size; a depth set by the floor is left alone);
4. checks a warm track against a cold estimate of the same frame every ``cold_check_every``
   frames, and replaces it by the cold one when they keep disagreeing (:func:`cold_check`);
5. gates the result (:func:`plausible`): a failed estimate is never remembered;
6. remembers the accepted pose under the person's id, and smooths the published joints with the
   One Euro filter along the same track, when asked;
7. learns the person's skeleton (:class:`Skeleton`: each bone's median over the first
   ``skeleton_frames`` accepted frames, as the 2D rays measure it (:func:`measured_bones`), then
   held; it follows the person through a move too fast for a warm start) and gives it to the
   sampler as a measurement, weighted by how many frames it rests on
   (:mod:`pads_stream.geometry.bones`). Measured, not as estimated: an estimate's
   bones are pulled into the mean adult's range, and a skeleton learned from them would never
   leave it.

Times: ``t_ns`` is this host's clock (freshness of a track); ``t_sender_s`` the capture time on
the sender's clock, seconds (the filters' time). Units: metres, camera frame (OpenCV axes).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from ..api import PoseModel
from ..geometry.bones import measured_bones, sized_on_floor
from ..geometry.skeleton import (
    H36M_LR_PAIRS,
    MEAN_BONES_M,
    bones_plausible,
    size_from_stature,
)
from ..geometry.smoothing import (
    DepthFilterConfig,
    DepthFilterState,
    OneEuroConfig,
    OneEuroState,
    filter_root_depth,
    one_euro,
)
from ..prior.sampler import DEFAULT_STEPS

# a track's skeleton follows its person to a frame its pose reprojects onto within this (m at the person, the
# plausibility gate's bound): further than a warm start's, not to another person elsewhere under a reused id
SKELETON_REPROJ_M = 0.3


@dataclass(frozen=True)
class TrackerConfig:
    """How tracked persons are estimated (the node config's fields of the same names)."""

    steps: int = DEFAULT_STEPS  # cold start: sampler steps from the sampler's t_start
    warm_start: bool = True
    warm_steps: int = DEFAULT_STEPS  # warm start: steps from warm_t_start (docs/warm_start.md)
    warm_t_start: int = 300
    warm_max_gap_ms: float = 250.0  # a track's previous pose older than this is not reused
    warm_max_reproj_m: float = 0.1  # ... nor one whose reprojection misses the new 2D by more (m at the person)
    # an estimated root's previous pose seeds the sampler only within this gap; beyond it the track
    # lends its depth guess and depth filter (docs/warm_start.md: 60 ms won on S8 at 12.5 Hz but lost
    # 10 mm on S9/S11 through the node, so the default keeps the pose for the whole warm window)
    warm_pose_max_gap_ms: float = 250.0
    # a warm track is checked against a cold estimate of the same frame every this many frames (0: never);
    # when `cold_check_runs` checks in a row differ from it by more than `cold_check_mm` (pelvis-relative
    # MPJPE), the cold estimate replaces it: a warm start can otherwise keep a wrong pose for good
    cold_check_every: int = 5
    cold_check_mm: float = 150.0
    cold_check_runs: int = 2
    max_tracks: int = 64  # remembered tracks per stream
    depth_filter: bool = True  # Kalman filter per track on a body-size root depth (docs/depth_filter.md)
    depth_filter_noise: float = 0.03  # std of one frame's estimated log-depth
    depth_filter_accel: float = 1.0  # std of the log-depth's acceleration, 1/s²
    one_euro: bool = False  # One Euro filter on published joints, per track (the warm start stays unfiltered)
    one_euro_min_cutoff: float = 1.0  # Hz
    one_euro_beta: float = 0.5  # Hz per m/s
    # a track learns its person's 16 bones from this many accepted frames (their medians), then holds them;
    # the sampler weighs the skeleton by frames seen / skeleton_frames (0: no per-person skeleton)
    # (50 against 25: bones within +-10 % 97.3 against 95.5 % on Bandai dataset-2, detected 2D; 100 against
    # 50: 95.6 against 94.8 % at 7.5 Hz, where 50 frames are 7 s, with the floor setting the root; docs/bones.md)
    skeleton_frames: int = 100
    # ... and trusts it wholly (weight 1) from this many frames on, while it goes on learning (docs/bones.md)
    skeleton_sure_frames: int = 15


@dataclass(frozen=True)
class Skeleton:
    """A track's bones as measured in its first accepted frames (at most ``skeleton_frames``):
    lengths (k, 16), metres, H36M parent order (bone j ends at joint j + 1)."""

    lengths: np.ndarray

    def bones(self) -> np.ndarray:
        """(16,) each bone's median length, metres; a left bone and its right twin share the
        median of both sides' measurements (people are symmetric to within millimetres, and the
        pooled median rests on twice the frames). A bone never measured (an end never seen
        surely) is the mean adult's at the person's size (the median ratio of the measured ones)."""
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN bone: filled below
            out = np.nanmedian(self.lengths, axis=0)
            for left, right in H36M_LR_PAIRS:
                out[left - 1] = out[right - 1] = np.nanmedian(self.lengths[:, [left - 1, right - 1]])
            size = np.nanmedian(out / MEAN_BONES_M)
        return np.where(np.isfinite(out), out, (size if np.isfinite(size) else 1.0) * MEAN_BONES_M)

    def weight(self, cfg: TrackerConfig) -> float:
        """How sure the skeleton is, in [0, 1]: frames seen over ``skeleton_sure_frames`` (at most
        ``skeleton_frames``)."""
        return min(1.0, len(self.lengths) / max(min(cfg.skeleton_sure_frames, cfg.skeleton_frames), 1))

    def add(self, lengths: np.ndarray, cfg: TrackerConfig) -> Skeleton:
        """This skeleton with one frame's measured bones (16,; NaN: not measured) added, while it is learning."""
        if len(self.lengths) >= cfg.skeleton_frames or not np.isfinite(lengths).any():
            return self
        return Skeleton(np.concatenate([self.lengths, lengths[None]]))


@dataclass
class Track:
    """A person's last accepted estimate: when (ns, this host), pelvis-relative pose and root (m),
    the depth filter's state of an estimated root, and the One Euro filter's state."""

    t_ns: int
    rel: np.ndarray  # (17, 3)
    root: np.ndarray  # (3,)
    depth: DepthFilterState | None = None
    smooth: OneEuroState | None = None
    since_check: int = 0  # warm frames since its last cold check
    disagreed: int = 0  # cold checks in a row that differed from it by more than cold_check_mm
    skeleton: Skeleton | None = None


@dataclass(frozen=True)
class Observation:
    """One person of a frame, validated: H36M-17 order, rays K⁻¹p of undistorted keypoints."""

    id: int
    rays: np.ndarray  # (17, 2)
    conf: np.ndarray  # (17,)
    root: np.ndarray | None  # (3,) m, camera frame, or None (estimated)
    R: np.ndarray | None = None  # (3, 3) the camera's extrinsics, X_cam = R X_world + t (a floor at z = 0)
    t: np.ndarray | None = None  # (3,) m
    t_ns: int = 0  # when it was received, ns on this host's clock
    t_sender_s: float = 0.0  # capture time on the sender's clock, s
    stature_m: float | None = None  # the person's standing height, m, when known (sizes an estimated root)


def reprojection_miss(rel: np.ndarray, root: np.ndarray, rays: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """(N,) confidence-weighted mean distance, in metres at each joint's depth, between the joints
    and their 2D rays. rel (N, 17, 3) m, root (N, 3) m, rays (N, 17, 2) K⁻¹p, conf (N, 17)."""
    joints = rel + root[:, None]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        miss = np.linalg.norm(joints[..., :2] / joints[..., 2:3] - rays, axis=-1) * joints[..., 2]  # (N, 17)
        return (conf * miss).sum(axis=1) / np.maximum(conf.sum(axis=1), 1e-12)


def plausible(rel: np.ndarray, root: np.ndarray, rays: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """(N,) bool: finite, in front of the camera, of human size (every joint within 1.5 m of the
    pelvis, every bone within :data:`pads_stream.geometry.skeleton.BONE_RANGE` of a mean adult's), and
    within 0.3 m of the 2D rays (same arguments as :func:`reprojection_miss`)."""
    joints = rel + root[:, None]
    ok = np.isfinite(joints).all(axis=(1, 2)) & (root[:, 2] > 0.1) & (root[:, 2] < 1e3)
    with np.errstate(invalid="ignore"):
        ok &= (joints[..., 2] > 0.01).all(axis=1) & (np.abs(rel).max(axis=(1, 2)) < 1.5) & bones_plausible(rel)
        return ok & (reprojection_miss(rel, root, rays, conf) < 0.3)


@dataclass
class StreamTracks:
    """The remembered persons of one stream (one camera), by id."""

    tracks: dict[int, Track] = field(default_factory=dict)

    def matched(self, obs: Observation, cfg: TrackerConfig) -> tuple[Track | None, Track | None]:
        """(continued, person) for ``obs``, each a fresh track or None. Continued: the one whose pose,
        at the root given now or else its own, reprojects onto the new 2D within
        ``warm_max_reproj_m`` (its pose seeds the estimate when warm starts are on). Person: the
        one whose skeleton ``obs`` keeps, the continued one or else (a move too fast for a warm
        start) one whose pose, where it was, reprojects within :data:`SKELETON_REPROJ_M`; a new
        person under a reused id, elsewhere in the picture, is nobody's."""
        fresh = [(pid, tr) for pid, tr in self.tracks.items() if obs.t_ns - tr.t_ns <= cfg.warm_max_gap_ms * 1e6]
        if not fresh:
            return None, None
        fresh.sort(key=lambda item: item[0] != obs.id)  # own id first: it wins ties
        rel = np.stack([tr.rel for _, tr in fresh])
        rays = np.broadcast_to(obs.rays, (len(fresh), 17, 2))
        conf = np.broadcast_to(obs.conf, (len(fresh), 17))

        def misses(root: np.ndarray) -> np.ndarray:
            return np.where(plausible(rel, root, rays, conf), reprojection_miss(rel, root, rays, conf), np.inf)

        def nearest(miss: np.ndarray, within_m: float) -> Track | None:
            best = int(np.argmin(miss))
            return fresh[best][1] if miss[best] <= within_m else None

        where_it_was = misses(np.stack([tr.root for _, tr in fresh]))
        at_root = where_it_was if obs.root is None else misses(np.broadcast_to(obs.root, (len(fresh), 3)))
        continued = nearest(at_root, cfg.warm_max_reproj_m)
        return continued, continued or nearest(where_it_was, SKELETON_REPROJ_M)

    def remember(self, obs: Observation, track: Track | None, cfg: TrackerConfig) -> None:
        """Keep ``track`` under ``obs.id`` (None: forget the id; a failed estimate seeds nothing)."""
        if track is None:
            self.tracks.pop(obs.id, None)
            return
        if obs.id not in self.tracks and len(self.tracks) >= cfg.max_tracks:
            del self.tracks[min(self.tracks, key=lambda i: self.tracks[i].t_ns)]
        self.tracks[obs.id] = track

    def expire(self, now_ns: int, cfg: TrackerConfig) -> None:
        """Forget tracks too old for a warm start."""
        oldest = now_ns - int(cfg.warm_max_gap_ms * 1e6)
        for pid in [p for p, tr in self.tracks.items() if tr.t_ns < oldest]:
            del self.tracks[pid]


@dataclass(frozen=True)
class Estimate:
    """One person's accepted estimate: rel (17, 3) pelvis-relative and root (3,), metres, camera
    frame; the track's skeleton (16,) metres and its weight in [0, 1] (None before its first frame)."""

    rel: np.ndarray
    root: np.ndarray
    bones: np.ndarray | None = None
    bones_weight: float = 0.0


Result = Estimate | None  # None: the estimate failed


def estimate_persons(
    model: PoseModel, cfg: TrackerConfig, items: list[tuple[StreamTracks, Observation]]
) -> list[Result]:
    """Estimate persons of one or more streams, each continuing its stream's tracks, and update
    those tracks (module docstring, steps 1-7).

    Returns:
        per item an :class:`Estimate` (metres, camera frame; smoothed when ``one_euro``), or None
        where the estimate was non-finite or implausible.
    """
    if not items:
        return []
    obs = [o for _, o in items]
    conf = np.stack([o.conf for o in obs])
    rays = np.stack([o.rays for o in obs])
    given = np.array([o.root is not None for o in obs])
    root = np.stack([o.root if o.root is not None else np.full(3, np.nan) for o in obs])  # NaN: estimate
    continued, owners = zip(*(tracks.matched(o, cfg) for tracks, o in items), strict=True)
    sources = continued if cfg.warm_start else [None] * len(items)
    skeletons = [tr.skeleton if tr is not None and cfg.skeleton_frames > 0 else None for tr in owners]
    bones = np.stack([sk.bones() if sk is not None else np.full(16, np.nan) for sk in skeletons])
    bone_weight = np.array([sk.weight(cfg) if sk is not None else 0.0 for sk in skeletons])
    gap = np.array([o.t_ns - s.t_ns if s is not None else np.inf for s, o in zip(sources, obs, strict=True)])
    warm = (gap <= cfg.warm_pose_max_gap_ms * 1e6) | (given & np.isfinite(gap))  # the previous pose seeds the sampler
    init = np.stack([s.rel if s is not None else np.zeros((17, 3)) for s in sources])
    prev_root = np.stack([s.root if s is not None else np.full(3, np.nan) for s in sources])
    R = np.stack([o.R if o.R is not None else np.full((3, 3), np.nan) for o in obs])
    t = np.stack([o.t if o.t is not None else np.full(3, np.nan) for o in obs])
    size = size_from_stature([o.stature_m if o.stature_m is not None else np.nan for o in obs])
    # each new track's (since_check, disagreed): a warm one counts on from its source, a new one's first
    # check is staggered by its id (persons who appear together are not all checked in one frame)
    every = cfg.cold_check_every
    checks = [(s.since_check + 1, s.disagreed) if w else (o.id % every if every > 0 else 0, 0)
              for s, w, o in zip(sources, warm, obs, strict=True)]  # fmt: skip
    # warm persons due a cold check are estimated cold too, as extra rows of the cold call
    due = warm & np.array([every > 0 and since >= every for since, _ in checks])
    n = len(obs)
    rows = np.concatenate([np.arange(n), np.flatnonzero(due)])  # row k < n: person k; beyond: checks
    kind = np.concatenate([warm, np.zeros(due.sum(), bool)])
    rel, out_root = np.full((len(rows), 17, 3), np.nan), np.full((len(rows), 3), np.nan)
    ok = np.zeros(len(rows), bool)
    for is_warm in (False, True):  # one sampler call per start kind
        g = kind == is_warm
        if g.any():
            r = rows[g]
            rel[g], out_root[g], ok[g] = model.lift(
                rays[r], conf[r], root[r], steps=cfg.warm_steps if is_warm else cfg.steps,
                init=init[r] if is_warm else None, t_start=cfg.warm_t_start if is_warm else None,
                depth_guess=prev_root[r, 2], floor=(R[r], t[r]), bones=bones[r], bone_weight=bone_weight[r],
                size=size[r],
            )  # fmt: skip
    cold_check(rel, out_root, ok, rows, checks, cfg)
    rel, out_root, ok = rel[:n], out_root[:n], ok[:n]
    depth: list[DepthFilterState | None] = [None] * len(obs)
    if cfg.depth_filter:  # a body-size depth (not one set by the floor), filtered along the continued track
        depth_cfg = DepthFilterConfig(cfg.depth_filter_noise, cfg.depth_filter_accel)
        for k in np.flatnonzero(ok & ~given & ~np.isfinite(R).all(axis=(1, 2))):
            state = sources[k].depth if sources[k] is not None else None
            out_root[k], depth[k] = filter_root_depth(state, out_root[k], obs[k].t_sender_s, depth_cfg)
    ok &= plausible(rel, out_root, rays, conf)
    # learning skeletons measured before a floor-set pose takes its skeleton's size (never at a size it set)
    learning = np.array([cfg.skeleton_frames > 0 and (sk is None or len(sk.lengths) < cfg.skeleton_frames)
                         for sk in skeletons]) & ok  # fmt: skip
    measured = np.full((len(obs), 16), np.nan)
    if learning.any():
        measured[learning] = measured_bones(rel[learning], out_root[learning], rays[learning], conf[learning])
    floored = ok & ~given & np.isfinite(R).all(axis=(1, 2)) & np.isfinite(t).all(axis=1)
    rel, out_root = sized_on_floor(rel, out_root, conf, R, t, bones, bone_weight, floored)
    smooth_cfg = OneEuroConfig(cfg.one_euro_min_cutoff, cfg.one_euro_beta)
    out: list[Result] = []
    for k, (tracks, o) in enumerate(items):
        if not ok[k]:
            tracks.remember(o, None, cfg)
            out.append(None)
            continue
        since_check, disagreed = checks[k]
        skeleton = None
        if cfg.skeleton_frames > 0:
            skeleton = (skeletons[k] or Skeleton(np.empty((0, 16)))).add(measured[k], cfg)
        track = Track(o.t_ns, rel[k], out_root[k], depth[k], since_check=since_check, disagreed=disagreed,
                      skeleton=skeleton)  # fmt: skip
        tracks.remember(o, track, cfg)
        known = (skeleton.bones(), skeleton.weight(cfg)) if skeleton is not None else (None, 0.0)
        if cfg.one_euro:  # joints (root + rel) on the sender's clock, along the continued track
            source = sources[k].smooth if sources[k] is not None else None
            joints, track.smooth = one_euro(source, rel[k] + out_root[k], o.t_sender_s, smooth_cfg)
            out.append(Estimate(joints - joints[0], joints[0], *known))
        else:
            out.append(Estimate(rel[k], out_root[k], *known))
    return out


def cold_check(rel: np.ndarray, root: np.ndarray, ok: np.ndarray, rows: np.ndarray,
               checks: list[tuple[int, int]], cfg: TrackerConfig) -> None:  # fmt: skip
    """Compare each checked person's warm estimate (row k) with its cold one (a row beyond the
    persons, ``rows`` naming the person); after ``cold_check_runs`` disagreements in a row the
    cold estimate replaces the warm one. ``rel``, ``root`` and the person's ``checks`` entry
    (since_check, disagreed) are updated in place."""
    for row in range(len(checks), len(rows)):
        k = int(rows[row])
        disagreed = checks[k][1]
        if ok[k] and ok[row]:
            apart = 1000 * np.linalg.norm(rel[k] - rel[row], axis=-1).mean()
            disagreed = disagreed + 1 if apart > cfg.cold_check_mm else 0
            if disagreed >= cfg.cold_check_runs:  # the track has kept a pose the frames no longer show
                rel[k], root[k], disagreed = rel[row], root[row], 0
        checks[k] = (0, disagreed)


def track_sequences(model: PoseModel, cfg: TrackerConfig, rays: np.ndarray, conf: np.ndarray,
                    root: np.ndarray | None, stream_of: np.ndarray, fps: float,
                    extrinsics: tuple[np.ndarray, np.ndarray] | None = None,
                    stature: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Recorded sequences through the tracker frame by frame, as the node runs them (no sockets):
    what the measurement tools score.

    Args:
        rays: (F, P, 17, 2) K⁻¹p per frame and person. conf: (F, P, 17).
        root: (F, P, 3) metres, camera frame, or None (estimated).
        stream_of: (P,) the stream (camera) of each person: persons of a stream share its tracks.
        fps: frame rate (the frames' capture and arrival times).
        extrinsics: (R (P, 3, 3), t (P, 3)) each person's camera, X_cam = R X_world + t, in a
            world whose floor is z = 0 (an estimated root is then set by the floor), or None.
        stature: (P,) each person's standing height, metres, as a sender may give it (sizes an
            estimated root without extrinsics), or None (unknown: the mean adult's size).

    Returns:
        (F, P, 17, 3) joints (root + rel, metres, camera frame); NaN where the tracker refused.
    """
    frames, persons = rays.shape[:2]
    streams = {s: StreamTracks() for s in np.unique(stream_of)}
    out = np.full((frames, persons, 17, 3), np.nan)
    for f in range(frames):
        t_ns = int(round(f * 1e9 / fps))
        items = []
        for p in range(persons):
            given = None if root is None else root[f, p]
            R, t = (None, None) if extrinsics is None else (extrinsics[0][p], extrinsics[1][p])
            height = None if stature is None else float(stature[p])
            items.append((streams[stream_of[p]], Observation(p, rays[f, p], conf[f, p], given, R, t, t_ns=t_ns,
                                                             t_sender_s=f / fps, stature_m=height)))  # fmt: skip
        for p, result in enumerate(estimate_persons(model, cfg, items)):
            if result is not None:
                out[f, p] = result.rel + result.root
    return out
