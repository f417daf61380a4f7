"""Rigs that calibrate themselves in the node: a rig whose cameras arrive without R and t collects its
first person's walk (frames with one person per camera; with the rig's own ids, ``camera.rig_ids``,
each person's own walk among several, the first long enough is used), is calibrated from it in a
process of its own (:func:`pads_stream.geometry.selfcalib.calibrate_rig`; seconds of arithmetic that
would hold the node's loop in a thread), then fused; each camera's residual is
watched, and a camera that moves (bumped) is re-placed on the rig's fused poses (PnP) and said so.
While it runs, the walk goes on being collected, and once it is ``refine_s`` long the rig is
calibrated again from it (clock drifts are solved from 20 s on) and the result put in the first
calibration's world (:func:`keep_world`: its origin and heading; the floor and scale are the new ones).

Socket-free: the node feeds it and reads it (:mod:`pads_stream.stream.admission`,
:mod:`pads_stream.stream.batching`). Units: pixels for 2D and K; metres for R, t; ns for clocks.
"""

from __future__ import annotations

import collections
import concurrent.futures
import pickle
import subprocess
import sys
from dataclasses import dataclass, field

import numpy as np

from ..data.rig_files import CameraCalibration
from ..geometry.epipolar import pnp
from ..geometry.selfcalib import RigCalibration, calibrate_rig

MIN_FRAMES = 50  # frames of the walker per camera before a calibration is tried
BUMP_FACTOR = 3.0  # a camera whose recent residual exceeds this × its first after calibration (and BUMP_MIN_PX) moved
BUMP_MIN_PX = 8.0
BUMP_FRAMES = 25  # fused frames of a camera that decide a bump and re-place it


Frames = dict[str, list[tuple[int, np.ndarray, np.ndarray]]]  # one walker: stream -> its (t_ns, kp, conf)


@dataclass
class Walk:
    """One rig's calibration walk so far and its outcome: per walker (the rig's person id, or None for
    the one person of frames with one person) the frames of each member stream."""

    walkers: dict[int | None, Frames] = field(default_factory=dict)
    K: dict[str, np.ndarray] = field(default_factory=dict)
    state: str = "collecting"  # collecting, calibrating, done, failed
    reason: str = ""
    refine: str = "waiting"  # the second, longer walk: waiting, collecting, calibrating, done, failed, off
    cameras: dict[str, CameraCalibration] = field(default_factory=dict)  # the calibration in use
    world: str = ""  # its world: "floor" or "camera0" (RigCalibration.world)
    streams: list[str] = field(default_factory=list)  # the members being calibrated, in the calibration's order
    job: concurrent.futures.Future[RigCalibration] | None = None  # the calibration running

    def span_s(self, walker: int | None) -> float:
        """Seconds of ``walker``'s walk the members have in common so far (by their own clocks)."""
        spans = [(f[-1][0] - f[0][0]) * 1e-9 for f in self.walkers.get(walker, {}).values() if len(f) >= 2]
        return min(spans) if len(spans) >= 2 else 0.0


@dataclass
class Watch:
    """A calibrated camera's fit: its residual in the fused frames right after calibration (the
    baseline, px) and the last fused persons it saw (world joints, its 2D, confidences, residual)."""

    baseline_px: float | None = None
    recent: collections.deque = field(default_factory=lambda: collections.deque(maxlen=BUMP_FRAMES))


def walkers(persons: list, rig_ids: bool) -> list[tuple[int | None, object]]:
    """The persons of a member frame that make a calibration walk, as (walker, person): a frame's only
    person (walker None), or with the rig's own ids every person under its id."""
    if rig_ids:
        return [(p.id, p) for p in persons]
    return [(None, persons[0])] if len(persons) == 1 else []


class RigCalibrator:
    """Calibration walks of self-calibrating rigs, the process that calibrates them, and the watch for
    bumped cameras. :meth:`close` stops the process."""

    def __init__(self, seconds: float, height_m: float | None = None, refine_s: float = 0.0) -> None:
        self.seconds, self.height_m, self.refine_s = seconds, height_m, refine_s
        self.walks: dict[str, Walk] = {}
        self.watches: dict[tuple[str, str], Watch] = {}
        self.events: collections.deque[str] = collections.deque(maxlen=20)
        self.pool = concurrent.futures.ThreadPoolExecutor(1, "calibrate")  # waits on the calibrating process
        self.children: set[subprocess.Popen] = set()

    def observe(self, rig: str, stream: str, t_ns: int, K: np.ndarray, kp: np.ndarray, conf: np.ndarray,
                walker: int | None = None) -> None:  # fmt: skip
        """One person of a member frame: kp (17, 2) undistorted px (H36M-17), conf (17,); ``walker`` its
        id when the ids are the rig's own (one person among several), None for a frame's only person."""
        walk = self.walks.setdefault(rig, Walk())
        collecting = walk.state == "collecting" or walk.refine == "collecting"
        if not collecting or t_ns <= 0:
            return
        frames = walk.walkers.setdefault(walker, {}).setdefault(stream, [])
        if frames and t_ns <= frames[-1][0]:
            return
        frames.append((t_ns, kp.astype(np.float64), conf.astype(np.float64)))
        walk.K[stream] = K
        enough = self.refine_s if walk.refine == "collecting" else self.seconds
        if walk.span_s(walker) >= enough and min(len(f) for f in walk.walkers[walker].values()) >= MIN_FRAMES:
            self._start(rig, walk, walk.walkers[walker])

    def refining(self, rig: str) -> bool:
        """Whether ``rig``'s walk is being collected for its refinement (its fused frames feed :meth:`observe`)."""
        walk = self.walks.get(rig)
        return walk is not None and walk.refine == "collecting"

    def _start(self, rig: str, walk: Walk, walker: Frames) -> None:
        streams = sorted(s for s, f in walker.items() if len(f) >= MIN_FRAMES)
        n = min(len(walker[s]) for s in streams)
        kp = np.stack([np.stack([f[1] for f in walker[s][:n]]) for s in streams])
        conf = np.stack([np.stack([f[2] for f in walker[s][:n]]) for s in streams])
        t_ns = np.array([[f[0] for f in walker[s][:n]] for s in streams], dtype=np.int64)
        K = np.stack([walk.K[s] for s in streams])
        walk.walkers, walk.streams, walk.reason = {}, streams, ""
        if walk.refine == "collecting":
            walk.refine = "calibrating"
        else:
            walk.state = "calibrating"
        walk.job = self.pool.submit(self._calibrate, kp, K, conf, t_ns)

    def _calibrate(self, kp: np.ndarray, K: np.ndarray, conf: np.ndarray, t_ns: np.ndarray) -> RigCalibration:
        """:func:`calibrate_rig` in a child Python, its inputs and result pickled through its stdin and
        stdout (the node's own pickles): its seconds of arithmetic never hold the node's loop."""
        child = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)  # fmt: skip
        self.children.add(child)
        try:
            out, err = child.communicate(pickle.dumps((kp, K, conf, t_ns, self.height_m)))
        finally:
            self.children.discard(child)
        if child.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines() or [f"exit status {child.returncode}"]
            raise RuntimeError(f"the calibrating process ended: {lines[-1]}")
        result = pickle.loads(out)  # written by calibrating_process from this node's own arrays
        if isinstance(result, Exception):
            raise result
        return result

    def close(self) -> None:
        """Stop a calibration under way (its process is ended)."""
        for child in list(self.children):
            child.kill()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def finished(self) -> list[tuple[str, dict[str, CameraCalibration]]]:
        """Rigs whose calibration just ended: (rig, {stream: its calibration}); a failed one collects again."""
        out = []
        for rig, walk in self.walks.items():
            if walk.job is None or not walk.job.done():
                continue
            refined = walk.refine == "calibrating"
            job, walk.job = walk.job, None
            try:
                cal = job.result()
            except (ValueError, np.linalg.LinAlgError, RuntimeError) as err:  # RuntimeError: the process died
                cal, walk.reason = None, str(err)
            if cal is None:
                if refined:  # the first calibration stays
                    walk.refine = "failed"
                    self.events.append(f"rig {rig}: refinement failed ({walk.reason}); the calibration stays")
                else:
                    walk.state = "collecting"  # another walk
                    self.events.append(f"rig {rig}: calibration failed ({walk.reason}); collecting a new walk")
                continue
            streams = walk.streams
            R, t = cal.R, cal.t
            if refined and walk.world == "floor":  # the world stays (the new floor and scale are taken)
                R, t = keep_world(streams, R, t, walk.cameras, cal.world == "floor")
            elif refined and cal.world == "floor":  # camera 0's frame becomes a floor world
                self.events.append(f"rig {rig}: the longer walk found the floor; the world is now the floor's")
            cams = {s: CameraCalibration(rig, s, np.zeros((3, 3)), R[v], t[v], int(cal.offset_ns[v]),
                                         int(cal.epoch_ns[v]), float(cal.drift_ppm[v]), cal.state[v])
                    for v, s in enumerate(streams)}  # fmt: skip
            for s in streams:
                self.watch(rig, s)
            what = "refined" if refined else "calibrated"
            self.events.append(f"rig {rig}: {what} from {cal.frames} frames ({cal.world} world, scale from "
                               f"{cal.scale_source} ±{100 * cal.scale_sd:.1f} %)")  # fmt: skip
            walk.state, walk.cameras = "done", {**walk.cameras, **cams}
            walk.world = cal.world if not refined or cal.world == "floor" else walk.world
            walk.refine = "done" if refined else "collecting" if self.refine_s > self.seconds else "off"
            out.append((rig, cams))
        return out

    def watch(self, rig: str, stream: str) -> None:
        """Watch ``stream``'s camera of ``rig`` for a bump from now on (its baseline: its next fused frames)."""
        self.watches[(rig, stream)] = Watch()

    def fused(self, rig: str, stream: str, world: np.ndarray, kp: np.ndarray, conf: np.ndarray,
              residual_px: float) -> bool:  # fmt: skip
        """One fused person's world joints (17, 3) m and its 2D in ``stream`` (17, 2) px, conf (17,);
        True when this camera's recent residuals say it moved and it can now be re-placed."""
        watch = self.watches.get((rig, stream))
        if watch is None:
            return False
        watch.recent.append((world, kp, conf, residual_px))
        if len(watch.recent) < BUMP_FRAMES:
            return False
        recent = float(np.median([r[3] for r in watch.recent]))
        if watch.baseline_px is None:
            watch.baseline_px = recent
            return False
        return recent > max(BUMP_FACTOR * watch.baseline_px, BUMP_MIN_PX)

    def replace(self, rig: str, stream: str, known: CameraCalibration, K: np.ndarray) -> CameraCalibration | None:
        """The camera re-placed by PnP on its recent persons as the other views triangulate them (the
        frames since it moved; None when that fails)."""
        watch = self.watches[(rig, stream)]
        limit = max(BUMP_FACTOR * (watch.baseline_px or 0.0), BUMP_MIN_PX)
        moved = [r for r in watch.recent if r[3] > limit]  # the frames since it moved
        X = np.concatenate([r[0] for r in moved])
        kp = np.concatenate([r[1] for r in moved])
        w = np.concatenate([np.where(np.isfinite(r[0]).all(axis=1), r[2], 0.0) for r in moved])
        rays = np.concatenate([kp, np.ones((len(kp), 1))], 1) @ np.linalg.inv(K).T
        try:
            R, t = pnp(X, rays[:, :2], w, float(K[0, 0]), np.random.default_rng(0))
        except ValueError:
            return None
        watch.recent.clear()
        self.events.append(f"rig {rig}: camera {stream} moved (residual over {BUMP_FACTOR:g}× its calibration); "
                           "re-placed on the fused poses")  # fmt: skip
        return CameraCalibration(rig, stream, known.K, R, t, known.offset_ns, known.epoch_ns, known.drift_ppm,
                                 "replaced")  # fmt: skip

    def status(self) -> dict[str, dict]:
        """Per self-calibrating rig: its state, the walk collected (s), the reason of a failure."""
        return {rig: {"state": w.state, "seconds": round(max([w.span_s(p) for p in w.walkers] or [0.0]), 2),
                      "reason": w.reason, "refinement": w.refine}
                for rig, w in self.walks.items()}  # fmt: skip


def keep_world(streams: list[str], R: np.ndarray, t: np.ndarray, old: dict[str, CameraCalibration],
               floor: bool) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """A new calibration (R (V, 3, 3), t (V, 3) of ``streams``, X_cam = R X + t) moved into the world of
    the ``old`` one (per stream, a floor world), so that a rig's world does not jump when it is refined:
    the rigid motion that best carries the new camera centres onto the old. ``floor`` (the new one has
    one too): only a turn about Z and a shift along the floor, so the new floor stays with the old
    origin and heading."""
    both = [v for v, s in enumerate(streams) if s in old]
    new_c = -np.einsum("vji,vj->vi", R[both], t[both])
    old_c = np.array([-old[streams[v]].R.T @ old[streams[v]].t for v in both])
    axes = 2 if floor else 3
    a, b = new_c[:, :axes] - new_c[:, :axes].mean(0), old_c[:, :axes] - old_c[:, :axes].mean(0)
    u, _, vt = np.linalg.svd(b.T @ a)
    q = u @ np.diag([1.0] * (axes - 1) + [np.sign(np.linalg.det(u @ vt))]) @ vt
    Q, shift = np.eye(3), np.zeros(3)
    Q[:axes, :axes] = q
    shift[:axes] = old_c[:, :axes].mean(0) - q @ new_c[:, :axes].mean(0)
    # X_old = Q X_new + shift, so X_cam = R Qᵀ (X_old − shift) + t
    R_out = R @ Q.T
    return R_out, t - np.einsum("vij,j->vi", R_out, shift)


def calibrating_process() -> None:
    """The child of :meth:`RigCalibrator._calibrate`: (kp, K, conf, t_ns, height_m) pickled on stdin, the
    :class:`RigCalibration` (or the ValueError that says why not) pickled on stdout."""
    kp, K, conf, t_ns, height_m = pickle.load(sys.stdin.buffer)
    try:
        result: RigCalibration | Exception = calibrate_rig(kp, K, conf, t_ns, height_m=height_m)
    except (ValueError, np.linalg.LinAlgError) as err:
        result = err
    sys.stdout.buffer.write(pickle.dumps(result))


if __name__ == "__main__":
    calibrating_process()
