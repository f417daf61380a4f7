"""Rigs in the node, socket-free: member frames grouped by capture time, persons associated across
views, rig persons kept over time.

A rig is the set of streams whose latched cameras name it (``camera.rig``); their cameras carry
extrinsics in one world (Z up, floor z = 0, metres). :class:`RigFrames` collects each member's
newest frame and says when a rig frame is ready: every live member has a frame within the capture
window of the newest, or the first of them has waited ``rig_wait_ms`` (a late or missing camera never
blocks the others). :func:`associate` groups the detections of one rig frame into persons: by id
when the ids are the rig's own, else geometrically (the rays of a person's joints from two views
cross, and a third view agrees; never two detections of one view in one person). :class:`RigTracks`
gives the fused persons stable ids. The node drives these and the estimation core
(:meth:`pads_stream.api.PoseModel.lift_rig`) through :func:`fuse_frame`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np

if TYPE_CHECKING:
    from .api import PoseModel

T = TypeVar("T")


@dataclass(frozen=True)
class FusionConfig:
    """Rig settings of the node (times in ms, distances in metres)."""

    rig_window_ms: float = 0.0  # frames within this of the newest capture are one moment; 0: half the frame interval
    rig_wait_ms: float = 60.0  # a rig frame is fused at the latest this long after its first view arrived
    rig_member_s: float = 1.0  # a member that sent nothing for this long is not waited for
    rig_match_m: float = 0.2  # two views' detections are one person when their joints' rays pass this close
    rig_track_m: float = 0.5  # a fused person keeps the id of a previous one whose pelvis was this close


@dataclass
class Waiting(Generic[T]):
    """A member frame waiting for its rig frame: capture and arrival times on this host (ns)."""

    stream: str
    t_capture: int
    t_recv: int
    item: T


@dataclass
class RigFrames(Generic[T]):
    """The member frames of one rig waiting to be fused (each member's newest)."""

    waiting: dict[str, Waiting[T]] = field(default_factory=dict)
    last_seen: dict[str, float] = field(default_factory=dict)  # member -> time.monotonic() of its last frame
    previous: dict[str, int] = field(default_factory=dict)  # member -> capture time of its previous frame
    intervals: list[float] = field(default_factory=list)  # recent capture intervals of the members, ms
    fused_until: int = 0  # capture time of the last fused rig frame, ns

    def window_ms(self, cfg: FusionConfig) -> float:
        """The capture window: configured, else half the members' median frame interval (20 ms before one is known)."""
        if cfg.rig_window_ms > 0:
            return cfg.rig_window_ms
        return float(np.clip(0.5 * np.median(self.intervals), 2.0, 100.0)) if self.intervals else 20.0

    def add(self, w: Waiting[T], now: float, cfg: FusionConfig) -> tuple[Waiting[T] | None, bool]:
        """Take a member's frame -> (the frame it replaces or refuses, True if that one is late
        rather than superseded). A frame of a moment already fused is itself refused as late."""
        self.last_seen[w.stream] = now
        if w.stream in self.previous and w.t_capture > self.previous[w.stream]:
            self.intervals = [*self.intervals[-31:], (w.t_capture - self.previous[w.stream]) / 1e6]
        self.previous[w.stream] = w.t_capture
        if w.t_capture <= self.fused_until + self.window_ms(cfg) * 1e6 / 2:
            return w, True
        old = self.waiting.get(w.stream)
        self.waiting[w.stream] = w
        return old, False

    def take(self, now_ns: int, now: float, cfg: FusionConfig) -> tuple[list[Waiting[T]], list[Waiting[T]]] | None:
        """(the frames of a ready rig frame, frames too old to join it: late), or None while it waits."""
        if not self.waiting:
            return None
        window = self.window_ms(cfg) * 1e6
        newest = max(w.t_capture for w in self.waiting.values())
        late = [w for w in self.waiting.values() if w.t_capture < newest - window]
        group = [w for w in self.waiting.values() if w.t_capture >= newest - window]
        live = {s for s, seen in self.last_seen.items() if now - seen <= cfg.rig_member_s}
        # the first moment waits its full time: until each member has sent once, the members are unknown
        complete = self.fused_until > 0 and live <= {w.stream for w in group}
        waited = now_ns - min(w.t_recv for w in group) > cfg.rig_wait_ms * 1e6
        if not (complete or waited):
            return None
        self.waiting.clear()
        self.fused_until = newest
        return sorted(group, key=lambda w: w.stream), late

    def forget(self, stream: str) -> None:
        """A member whose stream expired."""
        for table in (self.waiting, self.last_seen, self.previous):
            table.pop(stream, None)


@dataclass(frozen=True)
class Detection:
    """One person in one view: its view index, the id as sent, and its joints' rays in the world:
    the camera ``centre`` (3,), unit ``directions`` (17, 3), confidences ``conf`` (17,)."""

    view: int
    id: int
    centre: np.ndarray
    directions: np.ndarray
    conf: np.ndarray


def world_rays(rays: np.ndarray, R: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera centre (3,) and unit world directions (J, 3) of rays (J, 2) K⁻¹p of a camera X_cam = R X + t."""
    hom = np.concatenate([rays, np.ones_like(rays[:, :1])], axis=-1)
    d = hom @ R  # Rᵀ d per row
    return -R.T @ t, d / np.linalg.norm(d, axis=-1, keepdims=True)


def _closest(a: Detection, b: Detection, both: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the joints ``both`` sees: the distance between a's and b's rays (J',), the midpoints of
    their closest approach (J', 3), and whether those lie in front of both cameras (J',)."""
    da, db = a.directions[both], b.directions[both]
    w = b.centre - a.centre
    dd = np.sum(da * db, axis=-1)
    denom = 1 - dd**2
    near_parallel = denom < 1e-9
    denom = np.where(near_parallel, 1.0, denom)
    sa = np.where(near_parallel, da @ w, ((da @ w) - dd * (db @ w)) / denom)
    sb = np.where(near_parallel, 0.0, (dd * (da @ w) - (db @ w)) / denom)
    pa, pb = a.centre + sa[:, None] * da, b.centre + sb[:, None] * db
    front = (sa > 0) & ((sb > 0) | near_parallel)
    return np.linalg.norm(pa - pb, axis=-1), 0.5 * (pa + pb), front


def pair_cost(a: Detection, b: Detection, min_conf: float = 0.3, min_joints: int = 3) -> float:
    """How far apart the two detections' rays pass, joint by joint (median over joints both see
    with ``min_conf``, metres); inf with fewer than ``min_joints`` such joints or rays that meet
    behind a camera."""
    both = (a.conf >= min_conf) & (b.conf >= min_conf)
    if both.sum() < min_joints:
        return float("inf")
    dist, _, front = _closest(a, b, both)
    return float(np.median(dist)) if np.median(front) > 0.5 else float("inf")


def ray_distance(points: np.ndarray, joints: np.ndarray, d: Detection, min_conf: float = 0.3) -> float:
    """Median distance of world ``points`` (J', 3) of ``joints`` (J',) from ``d``'s rays of them (metres;
    inf if ``d`` sees fewer than 3 of them, or sees them behind its camera)."""
    seen = d.conf[joints] >= min_conf
    if seen.sum() < 3:
        return float("inf")
    rel = points[seen] - d.centre
    along = np.sum(rel * d.directions[joints][seen], axis=-1)
    if np.median(along) <= 0:
        return float("inf")
    return float(np.median(np.linalg.norm(rel - along[:, None] * d.directions[joints][seen], axis=-1)))


def associate(detections: list[Detection], cfg: FusionConfig, by_id: bool = False) -> list[list[int]]:
    """Group detections (indices into ``detections``) into persons, at most one per view.

    ``by_id``: the ids are the rig's own (one multi-camera tracker), so equal ids are one person.
    Otherwise every pair of detections from two views whose rays pass within ``rig_match_m`` is a
    hypothesis: the points where its rays cross, joined by the detection of each other view whose
    rays pass within ``rig_match_m`` of them. Hypotheses seen by the most views, then the closest,
    are taken first, each detection once: a third view settles what two views cannot (two persons
    on one epipolar plane of a camera pair). A detection left over is a person of its own.
    """
    if by_id:
        groups: dict[int, list[int]] = {}
        for k, d in enumerate(detections):
            groups.setdefault(d.id, []).append(k)
        out = []
        for members in groups.values():  # a repeated id within one view (a tracker's slip) splits off
            seen: set[int] = set()
            keep = [k for k in members if not (detections[k].view in seen or seen.add(detections[k].view))]
            out.append(keep)
            out.extend([k] for k in members if k not in keep)
        return out
    hypotheses = []
    for i, a in enumerate(detections):
        for j in range(i + 1, len(detections)):
            b = detections[j]
            if b.view == a.view:
                continue
            both = (a.conf >= 0.3) & (b.conf >= 0.3)
            if both.sum() < 3:
                continue
            dist, points, front = _closest(a, b, both)
            if np.median(front) <= 0.5 or np.median(dist) >= cfg.rig_match_m:
                continue
            joints = np.flatnonzero(both)
            members, costs = [i, j], [float(np.median(dist)) / 2] * 2
            for view in sorted({d.view for d in detections} - {a.view, b.view}):
                near = [(ray_distance(points, joints, d), k) for k, d in enumerate(detections) if d.view == view]
                cost, k = min(near)
                if cost < cfg.rig_match_m:
                    members.append(k)
                    costs.append(cost)
            hypotheses.append((-len(members), float(np.mean(costs)), members))
    taken: set[int] = set()
    out = []
    for _, _, members in sorted(hypotheses):
        free = [k for k in members if k not in taken]
        if len(free) == len(members):  # all of it still free (a partial one is a worse hypothesis, seen later)
            out.append(members)
            taken |= set(members)
    for _, _, members in sorted(hypotheses):  # what is left: the free part of the best remaining hypotheses
        free = [k for k in members if k not in taken]
        if len(free) >= 2:
            out.append(free)
            taken |= set(free)
    out.extend([k] for k in range(len(detections)) if k not in taken)
    return out


@dataclass
class RigTracks:
    """The persons of one rig over time: id, world pelvis (metres) and capture time (ns)."""

    pelvis: dict[int, np.ndarray] = field(default_factory=dict)
    seen: dict[int, int] = field(default_factory=dict)
    next_id: int = 0

    def assign(self, pelvis: np.ndarray, t_capture: int, cfg: FusionConfig, max_age_s: float = 1.0) -> list[int]:
        """Ids for fused persons with world pelvises (N, 3): a person takes the id of the nearest
        remembered one within ``rig_track_m`` (closest pairs first), else a new id."""
        for pid in [p for p, t in self.seen.items() if t_capture - t > max_age_s * 1e9]:
            del self.pelvis[pid], self.seen[pid]
        ids: list[int | None] = [None] * len(pelvis)
        known = list(self.pelvis)
        if known:
            dist = np.linalg.norm(pelvis[:, None] - np.stack([self.pelvis[p] for p in known])[None], axis=-1)
            taken: set[int] = set()
            for flat in np.argsort(dist, axis=None):
                n, k = divmod(int(flat), len(known))
                if dist[n, k] > cfg.rig_track_m:
                    break
                if ids[n] is None and known[k] not in taken:
                    ids[n] = known[k]
                    taken.add(known[k])
        out = []
        for n, pid in enumerate(ids):
            if pid is None:
                pid = self.next_id
                self.next_id += 1
            self.pelvis[pid], self.seen[pid] = pelvis[n].copy(), t_capture
            out.append(pid)
        return out


@dataclass(frozen=True)
class ViewPerson:
    """One person of one member frame, ready for fusion (H36M-17, undistorted).

    Attributes:
        id: as sent. kp: (17, 2) px. conf: (17,). rays: (17, 2) K⁻¹p. K: (3, 3). R: (3, 3), t: (3,)
        extrinsics, X_cam = R · X_world + t (metres).
    """

    id: int
    kp: np.ndarray
    conf: np.ndarray
    rays: np.ndarray
    K: np.ndarray
    R: np.ndarray
    t: np.ndarray


@dataclass(frozen=True)
class Fused:
    """A rig's person of one rig frame: world joints (17, 3) metres, and the detections fused into
    it as (view index, person index, mean reprojection error there in undistorted px)."""

    id: int
    world: np.ndarray
    detections: tuple[tuple[int, int, float], ...]


def fuse_frame(model: PoseModel, steps: int, views: list[list[ViewPerson]], cfg: FusionConfig, tracks: RigTracks,
               t_capture: int, by_id: bool = False) -> tuple[list[Fused], list[list[tuple[int, int]]]]:  # fmt: skip
    """One rig frame: associate the views' persons, lift each group with every view that sees it
    (:meth:`pads_stream.api.PoseModel.lift_rig`), refuse the implausible, give stable ids.

    Returns:
        (the fused persons, the detections of each refused group as (view, person) pairs). A
        group is refused when its pose is non-finite, not of human size (every joint within 1.5 m
        of the pelvis, every bone in the human range) or on average more than 0.3 m from its rays.
    """
    from .skeleton import bones_plausible

    dets, where = [], []
    for v, persons in enumerate(views):
        for k, p in enumerate(persons):
            centre, directions = world_rays(p.rays, p.R, p.t)
            dets.append(Detection(v, p.id, centre, directions, p.conf))
            where.append((v, k))
    groups = associate(dets, cfg, by_id)
    if not groups:
        return [], []
    n, nv = len(groups), len(views)
    rays, conf = np.zeros((nv, n, 17, 2)), np.zeros((nv, n, 17))
    R, t = np.tile(np.eye(3), (nv, n, 1, 1)), np.tile([0.0, 0.0, 1.0], (nv, n, 1))
    for g, members in enumerate(groups):
        for k in members:
            v, i = where[k]
            p = views[v][i]
            rays[v, g], conf[v, g], R[v, g], t[v, g] = p.rays, p.conf, p.R, p.t
    for v, persons in enumerate(views):  # a view that does not see a person still has its camera
        if persons:
            R[v, conf[v].sum(axis=1) == 0], t[v, conf[v].sum(axis=1) == 0] = persons[0].R, persons[0].t
    world, ok = model.lift_rig(rays, conf, R, t, steps=steps)
    rel = world - world[:, :1]
    with np.errstate(invalid="ignore"):
        ok &= np.isfinite(world).all(axis=(1, 2)) & (np.abs(rel).max(axis=(1, 2)) < 1.5) & bones_plausible(rel)
    good, refused, reproj = [], [], []
    for g, members in enumerate(groups):
        errs, miss, front = [], [], True
        for k in members:
            v, i = where[k]
            p = views[v][i]
            cam = world[g] @ p.R.T + p.t
            seen = p.conf > 0
            uv = cam[:, :2] / np.maximum(cam[:, 2:3], 1e-6) @ p.K[:2, :2].T + p.K[:2, 2]
            errs.append(float(np.linalg.norm(uv - p.kp, axis=-1)[seen].mean()))
            front &= bool(np.all(cam[:, 2] > 0.01))
            hom = np.concatenate([p.rays, np.ones((17, 1))], axis=-1)
            unit = hom / np.linalg.norm(hom, axis=-1, keepdims=True)
            across = cam - np.sum(cam * unit, axis=-1, keepdims=True) * unit
            miss.append(float(np.linalg.norm(across, axis=-1)[seen].mean()))
        if ok[g] and front and np.mean(miss) < 0.3:
            good.append(g)
            reproj.append(errs)
        else:
            refused.append([where[k] for k in members])
    ids = tracks.assign(world[good, 0], t_capture, cfg) if good else []
    fused = [
        Fused(pid, world[g], tuple((*where[k], e) for k, e in zip(groups[g], errs, strict=True)))
        for pid, g, errs in zip(ids, good, reproj, strict=True)
    ]
    return fused, refused
