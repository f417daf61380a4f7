"""The node's estimation: every waiting person of every stream in one batched sampler call per start
kind, the steps chosen from the time the batch has, and the rigs' views fused into world poses.

A part of :class:`pads_stream.stream.node.Node`; the tracker (:mod:`pads_stream.stream.tracker`)
and the rig fusion (:mod:`pads_stream.stream.fusion`) hold the per-person logic.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from ..data.rig_files import CameraCalibration
from ..geometry.epipolar import triangulate
from ..geometry.smoothing import OneEuroConfig
from .calibration import BUMP_MIN_PX
from .fusion import RigTracks, ViewPerson, fuse_frame
from .node_state import Pending, Person
from .rig_instant import ViewMotion
from .tracker import Estimate, Observation, estimate_persons
from .wire import (
    PersonView,
    Pose3d,
    PosePerson,
    RigView,
    WireError,
    encode_pose3d,
)


class Batching:
    """The node's estimation: every waiting person of every stream in one batched sampler call per start
    kind, the steps chosen from the time the batch has, and the rigs' views fused into world poses."""

    def process(self) -> None:
        """Estimate every person of every fresh pending frame in batched calls; publish per stream."""
        now = time.time_ns()
        frames = []
        for pending in self.pending.values():
            if now - pending.t_capture > self.cfg.latency_budget_ms * 1e6:
                self.drop(pending.frame, "stale")
            else:
                frames.append(pending)
        self.pending.clear()
        items = [(f, p) for f in frames for p in f.persons]
        results: dict[int, list] = {id(f): [] for f in frames}
        steps = {id(f): self.cfg.steps for f in frames}
        for lo in range(0, len(items), self.cfg.max_batch):
            batch = items[lo : lo + self.cfg.max_batch]
            n = self.batch_steps(batch, lo + len(batch) < len(items))
            started, inside = time.monotonic(), self.model.sampler_s
            estimates = self.estimate(batch, n)
            self.step_cost.observe(len(batch), n, time.monotonic() - started, self.model.sampler_s - inside)
            self.stats.steps.append(n)
            for f, _ in batch:
                steps[id(f)] = n
            for (f, person), result in zip(batch, estimates, strict=True):
                if result is None:
                    self.reject(WireError("estimate_failed", "non-finite or implausible result (a bone out of the "
                                          "human range, off its 2D rays, ...)", f.frame.stream, f.frame.frame,
                                          person.id))  # fmt: skip
                else:
                    results[id(f)].append((person, result))
        for f in frames:
            self.publish(f, results[id(f)], steps[id(f)])

    def batch_steps(self, batch: list[tuple[Pending, Person]], more: bool) -> int:
        """Sampler steps for ``batch``: ``steps``, or (``steps_max`` > ``steps``) as many as finish
        in 60 % of the time before the first of its streams' next frames is due and within the
        latency budget, by the cost measured so far (:class:`pads_stream.api.budget.StepCost`);
        ``steps`` when another batch follows in this round or a frame was dropped in the last 2 s."""
        lo, hi = self.cfg.steps, self.cfg.steps_max
        if hi <= lo or more or time.monotonic() - self.last_drop < 2.0:  # a frame was dropped: no spare time
            return lo
        now_ns = time.time_ns()
        budget_s = self.cfg.latency_budget_ms * 1e-3
        for f in {id(f): f for f, _ in batch}.values():  # each frame once, not once per person
            state = self.streams.get(f.frame.stream)
            age_s = (now_ns - f.t_capture) * 1e-9
            budget_s = min(budget_s, self.cfg.latency_budget_ms * 1e-3 - age_s)
            if state is None or state.interval_s is None:
                return lo  # a new stream: its rate is not known yet
            budget_s = min(budget_s, state.interval_s - (now_ns - f.t_recv) * 1e-9)
        return self.step_cost.steps(len(batch), 0.6 * budget_s, lo, hi)

    def estimate(self, batch: list[tuple[Pending, Person]], steps: int | None = None) -> list[Estimate | None]:
        """An :class:`pads_stream.stream.tracker.Estimate` per person of ``batch``, None where it failed: the
        socket-free tracker (:func:`pads_stream.stream.tracker.estimate_persons`) on each stream's tracks, at
        ``steps`` sampler steps (default the config's; a warm start gets warm_steps / steps as many)."""
        items = []
        for f, p in batch:
            obs = Observation(p.id, p.rays, p.conf, p.root, p.camera.R, p.camera.t, f.t_recv, f.t_sender * 1e-9,
                              p.stature_m)  # fmt: skip
            items.append((self.streams[f.frame.stream].tracks, obs))
        cfg = self.cfg
        if steps is not None and steps != cfg.steps:
            warm = max(1, round(steps * cfg.warm_steps / cfg.steps))
            warm = min(warm, self.model.max_steps(cfg.warm_t_start))
            steps = min(steps, self.model.max_steps(self.model.sampler.t_start))
            cfg = self.scaled.setdefault(steps, dataclasses.replace(cfg, steps=steps, warm_steps=warm))
        return estimate_persons(self.model, cfg, items)

    def watch_cameras(self, rig: str, singles: list[tuple[str, Person]]) -> None:
        """Self-calibrated rig cameras checked on the one person all of them see: for each camera, the
        person the others triangulate (world, metres), how well those others agree on it and this
        camera's reprojection error against it. The camera whose leaving out makes the others agree
        best is the suspect; while its error stands out only it is watched, and once that error has
        grown for a while it is re-placed on the others' points by PnP (:mod:`.calibration`)."""
        cams = [self.calibrations.get(s) for s, _ in singles]
        if any(c is None for c in cams):
            return
        fits = []
        for v in range(len(singles)):
            rest = [u for u in range(len(singles)) if u != v]
            world = triangulate(np.stack([cams[u].R for u in rest]), np.stack([cams[u].t for u in rest]),
                                np.stack([singles[u][1].rays for u in rest]),
                                np.stack([singles[u][1].conf for u in rest]))  # fmt: skip
            agree = np.nanmean([reprojection_px(world, cams[u], singles[u][1]) for u in rest])
            fits.append((reprojection_px(world, cams[v], singles[v][1]), agree, world))
        if not all(np.isfinite(f[0]) and np.isfinite(f[1]) for f in fits):
            return
        suspect = int(np.argmin([f[1] for f in fits]))
        watched = range(len(singles)) if fits[suspect][0] < BUMP_MIN_PX else [suspect]
        for v in watched:
            stream, seen = singles[v]
            if self.calibrator.fused(rig, stream, fits[v][2], seen.kp, seen.conf, fits[v][0]):
                moved = self.calibrator.replace(rig, stream, cams[v], seen.K)
                if moved is not None:
                    self.install(stream, moved)

    def process_rigs(self) -> None:
        """Fuse every rig frame that is ready (:class:`pads_stream.stream.fusion.RigFrames`) and publish it."""
        now_ns, now = time.time_ns(), time.monotonic()
        for rig, frames in list(self.rigs.items()):
            group = frames.take(now_ns, now, self.cfg)
            if group is None:
                continue
            fresh = []
            for w in group:
                if now_ns - w.t_capture > self.cfg.latency_budget_ms * 1e6:
                    self.drop(w.item.frame, "stale")
                else:
                    fresh.append(w.item)
            if fresh:
                self.fuse(rig, fresh)

    def fuse(self, rig: str, members: list[Pending]) -> None:
        """One rig frame: its member frames' persons associated, lifted together, published as
        ``pose3d/<rig>`` (world joints; camera-frame joints in the first member's camera)."""
        views = [[ViewPerson(p.id, p.kp, p.conf, p.rays, p.K, p.camera.R, p.camera.t) for p in m.persons]
                 for m in members]  # fmt: skip
        by_id = all(p.camera.rig_ids for m in members for p in m.persons)
        tracks = self.rig_tracks.setdefault(rig, RigTracks())
        t_capture = max(m.t_capture for m in members)  # the rig frame's instant (its newest capture), this host's clock
        if self.cfg.rig_align_views:  # along the rig's own stamps (its one clock): this host's capture times
            # carry the rig's transit offset, which drops within a frame when a sender runs ahead of real time
            motion = self.rig_motion.setdefault(rig, ViewMotion())
            instant = max(m.t_sender for m in members)
            views = [motion.at_instant(m.frame.stream, m.t_sender, v, instant)
                     for m, v in zip(members, views, strict=True)]  # fmt: skip
        try:
            streams = [m.frame.stream for m in members]
            fused, refused = fuse_frame(self.model, self.cfg.steps, views, self.cfg, tracks, t_capture, by_id, streams)
        except (ValueError, np.linalg.LinAlgError):  # degenerate geometry: refused, never the node's end
            fused, refused = [], [[(v, i)] for v, m in enumerate(members) for i in range(len(m.persons))]
        for group in refused:
            v, i = group[0]
            self.reject(WireError("estimate_failed", "a rig person's fused pose is non-finite or implausible "
                                  f"({len(group)} views)", members[v].frame.stream, members[v].frame.frame,
                                  members[v].persons[i].id))  # fmt: skip
        first = next((m for m in members if m.persons), members[0])  # its camera frame is the output's
        ref = first.persons[0].camera if first.persons else None
        smooth = OneEuroConfig(self.cfg.one_euro_min_cutoff, self.cfg.one_euro_beta)
        t_sender_s = max(m.t_sender for m in members) * 1e-9  # the rig's clock: the filter's time
        persons, used = [], set()
        for person in fused:
            world = tracks.smoothed(person.id, person.world, t_sender_s, smooth) if self.cfg.one_euro else person.world
            cam = world if ref is None else world @ ref.R.T + ref.t
            views_of = tuple(PersonView(members[v].frame.stream, members[v].persons[i].id, e)
                             for v, i, e in person.detections)  # fmt: skip
            used |= {v for v, _, _ in person.detections}
            for v, _, e in person.detections:
                self.stats.residual(rig, members[v].frame.stream, e)
            conf = np.max([members[v].persons[i].conf for v, i, _ in person.detections], axis=0)
            reproj = float(np.mean([e for _, _, e in person.detections]))
            persons.append(PosePerson(person.id, cam, cam[0], cam - cam[0], reproj, conf, world, views_of))
        if by_id:  # the rig's own ids group the detections: each fused person's are surely its own (bumped or not)
            for person in fused:
                if len(person.detections) >= 3:
                    self.watch_cameras(rig, [(members[v].frame.stream, members[v].persons[i])
                                             for v, i, _ in person.detections])  # fmt: skip
        else:
            singles = [(m.frame.stream, m.persons[0]) for m in members if len(m.persons) == 1]
            if len(fused) == 1 and len(singles) >= 3:  # one person: each view's one detection is surely it
                self.watch_cameras(rig, singles)
        number = self.rig_frames[rig] = self.rig_frames.get(rig, -1) + 1
        t_recv, t_pub = min(m.t_recv for m in members), time.time_ns()
        rig_views = tuple(RigView(m.frame.stream, m.frame.frame, v in used, *self.extrinsics(m.frame.stream))
                          for v, m in enumerate(members))  # fmt: skip
        self.pub.send_multipart(encode_pose3d(Pose3d(rig, number, first.frame.t_ns, t_recv, t_pub, tuple(persons),
                                                     rig_views, first.frame.stream)))  # fmt: skip
        self.stats.frames_out += 1
        self.stats.persons_out += len(persons)
        self.stats.latency_ms.append((t_pub - t_recv) / 1e6)
        self.stats.age_ms.append((t_pub - min(m.t_capture for m in members)) / 1e6)


def reprojection_px(world: np.ndarray, cam: CameraCalibration, seen: Person) -> float:
    """Mean distance (px) between ``world`` (17, 3) m seen through ``cam`` and the person's seen 2D."""
    uv = (world @ cam.R.T + cam.t) @ seen.K.T
    ok = (seen.conf > 0) & np.isfinite(uv).all(axis=1) & (uv[:, 2] > 1e-6)
    if ok.sum() < 6:
        return float("nan")
    return float(np.linalg.norm(uv[ok, :2] / uv[ok, 2:] - seen.kp[ok], axis=1).mean())
