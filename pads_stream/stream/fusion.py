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

from ..common.robust import masked_median
from ..geometry.smoothing import OneEuroConfig, OneEuroState, one_euro

if TYPE_CHECKING:
    from ..api import PoseModel

T = TypeVar("T")


@dataclass(frozen=True)
class FusionConfig:
    """Rig settings of the node (times in ms, distances in metres)."""

    rig_window_ms: float = 0.0  # frames within this of the newest capture are one moment; 0: half the frame interval
    rig_wait_ms: float = 60.0  # a rig frame is fused at the latest this long after its first view arrived
    rig_member_s: float = 1.0  # a member that sent nothing for this long is not waited for
    rig_match_m: float = 0.2  # two views' detections are one person when their joints' rays pass this close
    rig_track_m: float = 0.5  # a fused person keeps the id of a previous one whose pelvis was this close
    # a person whose detections continue a rig person starts from its last pose at this noise level
    # (0: every frame from the triangulation); chosen on held-out S8 takes through the node
    # (tools/rig_node_eval.py --validation: 19.9 mm cold, 20.7 / 18.4 / 17.5 / 17.3 / 17.5 at 50-250)
    rig_warm_t_start: int = 200
    rig_warm_gap_ms: float = 250.0  # ... if that pose is at most this old
    rig_align_views: bool = True  # each view's 2D moved to the rig frame's instant along its motion (rig_instant)


@dataclass
class Waiting(Generic[T]):
    """A member frame waiting for its rig frame: capture and arrival times on this host (ns)."""

    stream: str
    t_capture: int
    t_recv: int
    item: T


@dataclass
class RigFrames(Generic[T]):
    """The member frames of one rig waiting to be fused: those of the moment being collected, and
    those of the next moment that arrived before it was fused."""

    waiting: dict[str, Waiting[T]] = field(default_factory=dict)
    queued: dict[str, Waiting[T]] = field(default_factory=dict)
    last_seen: dict[str, float] = field(default_factory=dict)  # member -> time.monotonic() of its last frame
    previous: dict[str, int] = field(default_factory=dict)  # member -> capture time of its previous frame
    intervals: list[float] = field(default_factory=list)  # recent capture intervals of the members, ms
    fused_until: int = 0  # capture time of the last fused rig frame, ns
    fused: dict[str, int] = field(default_factory=dict)  # member -> its capture time in the last fused rig frame
    moved_on: bool = False  # a member sent the next moment: the one being collected is complete as it is

    def window_ms(self, cfg: FusionConfig) -> float:
        """The capture window: configured, else half the members' median frame interval (20 ms before one is known)."""
        if cfg.rig_window_ms > 0:
            return cfg.rig_window_ms
        return float(np.clip(0.5 * np.median(self.intervals), 2.0, 100.0)) if self.intervals else 20.0

    def add(self, w: Waiting[T], now: float, cfg: FusionConfig) -> tuple[Waiting[T] | None, bool]:
        """Take a member's frame -> (a frame it replaces or refuses, True if that one is late rather
        than superseded). A frame of a moment already fused (not newer than the member's frame in
        the last rig frame; for a member missing from it, within half a window of it), or older than
        the one being collected, is itself refused as late; a second frame of one member within one
        moment supersedes the first."""
        self.last_seen[w.stream] = now
        if w.stream in self.previous and w.t_capture > self.previous[w.stream]:
            self.intervals = [*self.intervals[-31:], (w.t_capture - self.previous[w.stream]) / 1e6]
        self.previous[w.stream] = w.t_capture
        window = self.window_ms(cfg) * 1e6
        if w.t_capture <= self.fused.get(w.stream, -1):  # not newer than what this member gave the last rig frame
            return w, True
        if w.stream not in self.fused and w.t_capture <= self.fused_until + window / 2:  # its moment went without it
            return w, True
        if self.waiting:
            newest = max(x.t_capture for x in self.waiting.values())
            oldest = min(x.t_capture for x in self.waiting.values())
            if w.t_capture > newest + window:  # the next moment
                self.moved_on |= w.stream in self.waiting
                old = self.queued.get(w.stream)
                self.queued[w.stream] = w
                return old, False
            if w.t_capture < oldest - window:
                return w, True
        old = self.waiting.get(w.stream)
        self.waiting[w.stream] = w
        return old, False

    def take(self, now_ns: int, now: float, cfg: FusionConfig) -> list[Waiting[T]] | None:
        """The frames of the rig frame being collected once it is ready, or None while it waits:
        ready when every live member has sent it (not for a rig's first moment, whose members are
        not known yet), when a member has moved on to the next moment, or ``rig_wait_ms`` after its
        first frame arrived."""
        if not self.waiting and self.queued:
            self.waiting, self.queued = self.queued, {}
        if not self.waiting:
            return None
        live = {s for s, seen in self.last_seen.items() if now - seen <= cfg.rig_member_s}
        complete = self.fused_until > 0 and live <= set(self.waiting)
        waited = now_ns - min(w.t_recv for w in self.waiting.values()) > cfg.rig_wait_ms * 1e6
        if not (complete or waited or self.moved_on):
            return None
        group = sorted(self.waiting.values(), key=lambda w: w.stream)
        self.fused_until = max(w.t_capture for w in group)
        self.fused = {w.stream: w.t_capture for w in group}
        self.waiting, self.queued, self.moved_on = self.queued, {}, False
        return group

    def forget(self, stream: str) -> None:
        """A member whose stream expired."""
        for table in (self.waiting, self.queued, self.last_seen, self.previous, self.fused):
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


MIN_CONF = 0.3  # a joint counts for association where its confidence reaches this
MIN_JOINTS = 3  # joints two detections must both see to be compared


def _crossing(
    ca: np.ndarray, da: np.ndarray, cb: np.ndarray, db: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closest approach of the joint rays of every detection of one view (centre ``ca`` (3,),
    directions ``da`` (A, 17, 3)) with every one of another (``cb``, ``db`` (B, 17, 3)): the
    distances (A, B, 17) metres, the midpoints (A, B, 17, 3), and whether they lie in front of both
    cameras (A, B, 17)."""
    w = cb - ca
    dd = np.einsum("ajk,bjk->abj", da, db)
    aw = (da @ w)[:, None, :]  # (A, 1, 17)
    bw = (db @ w)[None, :, :]  # (1, B, 17)
    denom = 1 - dd**2
    parallel = denom < 1e-9
    denom = np.where(parallel, 1.0, denom)
    sa = np.where(parallel, aw, (aw - dd * bw) / denom)
    sb = np.where(parallel, 0.0, (dd * aw - bw) / denom)
    pa = ca + sa[..., None] * da[:, None]
    pb = cb + sb[..., None] * db[None]
    return np.linalg.norm(pa - pb, axis=-1), 0.5 * (pa + pb), (sa > 0) & ((sb > 0) | parallel)


def _masked_median(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Median over the last axis where ``mask``; inf where fewer than MIN_JOINTS are masked in."""
    median, count = masked_median(values, mask)
    return np.where(count >= MIN_JOINTS, median, np.inf)


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
    views = sorted({d.view for d in detections})
    index = {v: [k for k, d in enumerate(detections) if d.view == v] for v in views}
    centre = {v: detections[index[v][0]].centre for v in views}
    dirs = {v: np.stack([detections[k].directions for k in index[v]]) for v in views}
    conf = {v: np.stack([detections[k].conf for k in index[v]]) >= MIN_CONF for v in views}
    hypotheses = []
    for p, vp in enumerate(views):
        for vq in views[p + 1 :]:
            dist, points, front = _crossing(centre[vp], dirs[vp], centre[vq], dirs[vq])
            both = conf[vp][:, None] & conf[vq][None]
            cost = np.where(_masked_median(front.astype(float), both) > 0.5, _masked_median(dist, both), np.inf)
            for a, b in zip(*np.nonzero(cost < cfg.rig_match_m), strict=True):
                joints = both[a, b]
                members, costs = [index[vp][a], index[vq][b]], [float(cost[a, b]) / 2] * 2
                for vk in views:
                    if vk in (vp, vq):
                        continue
                    rel = points[a, b][joints][None] - centre[vk]  # (1, J', 3)
                    d = dirs[vk][:, joints]  # (N, J', 3)
                    along = np.sum(rel * d, axis=-1)
                    across = np.linalg.norm(rel - along[..., None] * d, axis=-1)
                    seen = conf[vk][:, joints] & (along > 0)
                    near = _masked_median(across, seen)
                    k = int(np.argmin(near))
                    if near[k] < cfg.rig_match_m:
                        members.append(index[vk][k])
                        costs.append(float(near[k]))
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
    """The persons of one rig over time: id, last world joints (metres) and capture time (ns)."""

    pose: dict[int, np.ndarray] = field(default_factory=dict)  # last world joints (17, 3)
    seen: dict[int, int] = field(default_factory=dict)
    detections: dict[tuple[str, int], int] = field(default_factory=dict)  # (view stream, id as sent) -> rig id
    smooth: dict[int, OneEuroState] = field(default_factory=dict)  # One Euro state of a person's world joints
    next_id: int = 0

    @property
    def pelvis(self) -> dict[int, np.ndarray]:
        """Each remembered person's last world pelvis (3,)."""
        return {pid: pose[0] for pid, pose in self.pose.items()}

    def smoothed(self, pid: int, world: np.ndarray, t_s: float, cfg: OneEuroConfig) -> np.ndarray:
        """Person ``pid``'s world joints (17, 3) at ``t_s`` seconds through its One Euro filter."""
        out, self.smooth[pid] = one_euro(self.smooth.get(pid), world, t_s, cfg)
        return out

    def assign(self, world: np.ndarray, t_capture: int, cfg: FusionConfig, max_age_s: float = 1.0) -> list[int]:
        """Ids for fused persons with world joints (N, 17, 3), remembered as their last pose: a person
        takes the id of the remembered one whose pelvis is nearest within ``rig_track_m`` (closest
        pairs first), else a new id."""
        for pid in [p for p, t in self.seen.items() if t_capture - t > max_age_s * 1e9]:
            del self.pose[pid], self.seen[pid]
            self.smooth.pop(pid, None)
        ids: list[int | None] = [None] * len(world)
        known = list(self.pose)
        if known:
            dist = np.linalg.norm(world[:, None, 0] - np.stack([self.pose[p][0] for p in known])[None], axis=-1)
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
            self.pose[pid], self.seen[pid] = world[n].copy(), t_capture
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
               t_capture: int, by_id: bool = False,
               streams: list[str] | None = None) -> tuple[list[Fused], list[list[tuple[int, int]]]]:  # fmt: skip
    """One rig frame: associate the views' persons, lift each group with every view that sees it
    (:meth:`pads_stream.api.PoseModel.lift_rig`), refuse the implausible, give stable ids.

    Returns:
        (the fused persons, the detections of each refused group as (view, person) pairs). A
        group is refused when its pose is non-finite, not of human size (every joint within 1.5 m
        of the pelvis, every bone in the human range) or on average more than 0.3 m from its rays.
    """
    from ..geometry.skeleton import bones_plausible

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
    init = None
    if cfg.rig_warm_t_start > 0 and streams is not None:  # continue the rig person its detections continue
        init = np.full((n, 17, 3), np.nan)
        for g, members in enumerate(groups):
            votes = [tracks.detections.get((streams[where[k][0]], views[where[k][0]][where[k][1]].id)) for k in members]
            votes = [p for p in votes if p in tracks.pose and t_capture - tracks.seen[p] <= cfg.rig_warm_gap_ms * 1e6]
            if votes:
                init[g] = tracks.pose[max(set(votes), key=votes.count)]
    world, ok = model.lift_rig(rays, conf, R, t, steps=steps, init=init, t_start=cfg.rig_warm_t_start or None)
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
    ids = tracks.assign(world[good], t_capture, cfg) if good else []
    fused = [
        Fused(pid, world[g], tuple((*where[k], e) for k, e in zip(groups[g], errs, strict=True)))
        for pid, g, errs in zip(ids, good, reproj, strict=True)
    ]
    if streams is not None:  # what the next frame's detections continue
        tracks.detections = {(streams[v], views[v][i].id): p.id for p in fused for v, i, _ in p.detections}
    return fused, refused
