"""A rig calibrated from one person walking (``pads_stream.calibrate_rig``), against the rig's true
calibration: Human3.6M walks in the real 4-camera rig of their subject.

Walks: a subject's walking and walkingdog takes chained, given a path on the floor by foot locking
(``pads_stream.data.walks``), split into windows of ``--seconds``; each camera sees the walk at its
own times (clock offsets of cameras 1-3 uniform in 0-40 ms, and with ``--drift`` ±100 ppm), true K,
exact or detector-like 2D (5 px, 5 % of joints 20-60 px off). Camera 0 is the reference.

Printed (median [max] over windows × cameras 1-3): the rotation error of each camera relative to
camera 0 (degrees), camera centres after a similarity (cm), the clock offset at the window's middle
(ms) and drift (ppm), the scale error (%, camera distances) with the height given and with the
prior's body size (and in how many windows the published uncertainty, once and twice, covered it),
the floor's tilt (degrees) where it was determined, the share of windows with a determined floor,
and seconds per calibration.

``--pose`` prints instead the fused pose's accuracy: ``estimate_rig`` on ``--samples`` V-H36M test
persons (detector-like 2D) with the true calibration and with one calibrated from a ``--seconds``
walk of the same subject (height given, and the prior's size), and with the true calibration 4 %
too large (what one adult standard deviation of scale costs): MPJPE and PA-MPJPE in camera 0's
frame, pelvis-relative, mm.

``--node`` prints instead the node's time from a rig's first frame to its first world pose (its
defaults: it calibrates the rig itself from the walk), the walk sent in real time over loopback.

``--bound`` prints instead the clocks' Cramér-Rao bound on the windows of the detector-like
``offsets`` rows (and ``drift`` rows with ``--drift``): what any unbiased calibration could reach on
them, per window, and the spread of the largest error a table of them would show.

Tune on S8 (``--subjects S8``, placed in S9's rig); report on S9 and S11 (never tuned on).

``--domain bandai-1`` / ``bandai-2`` checks the same defaults on a second domain: Bandai Namco actors
(other people, skeletons and gaits; 30 Hz) walking — each style's walking clips chained (dataset-1:
walk, walk-back, -left, -right: straight lines; dataset-2: walk, walk-turn-left, -right) and given
a path by foot locking — in S9's and S11's rigs, by turns; ``--subjects`` then names the styles
(default: all), one window per style and length.

Usage: python tools/selfcalib_eval.py [--subjects S9,S11] [--seconds 10,30] [--windows 4] [--drift]
       [--domain h36m|bandai-1|bandai-2] [--pose] [--node] [--bound] [--samples 300] [--data DIR]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from pads_stream.api import load_model
from pads_stream.common.files import shipped
from pads_stream.data.bvh import JointMapping, load_bvh_h36m
from pads_stream.data.datasets import DEFAULT_DATA, data_file, test_path, to_17
from pads_stream.data.virtual_rig import CalibratedRig, detector_noise, load_rig, rig_samples
from pads_stream.data.walks import RATE_HZ, camera_views, foot_locked_path, place_walk
from pads_stream.geometry.epipolar import rotation_angle_deg, skew
from pads_stream.geometry.metrics import mpjpe, p_mpjpe
from pads_stream.geometry.selfcalib import RigCalibration, calibrate_rig
from pads_stream.geometry.skeleton import bone_lengths, stature_m

TAKES = ("walking_1", "walking_2", "walkingdog_1", "walkingdog_2")
BANDAI_STYLES = {
    "bandai-1": ("active", "angry", "childish", "chimpira", "feminine", "giant", "happy", "masculinity", "musical",
                 "normal", "not-confident", "old", "proud", "sad", "tired"),
    "bandai-2": ("active", "elderly", "exhausted", "feminine", "masculine", "normal", "youthful"),
}  # fmt: skip
BANDAI_HZ = 30.0


def walks(data: str, subject: str, domain: str = "h36m") -> np.ndarray:
    """A Human3.6M subject's walking takes (25 Hz), or a Bandai style's walking clips (30 Hz), chained:
    (F, 17, 3) pelvis-relative, Y up, metres."""
    if domain != "h36m":
        mapping = JointMapping.from_json(shipped("configs", "bandai_to_h36m.json"))
        folder = data_file(data, "bandai", domain.replace("bandai", "dataset"))
        clips = sorted(folder.glob(f"*_walk*_{subject}_[0-9]*.bvh"))
        return np.concatenate([to_17(load_bvh_h36m(c, mapping)[0]) for c in clips])
    poses = np.load(data_file(data, "h36m", "positions_3d_25hz.npz"), allow_pickle=True)["positions_3d"].item()
    return np.concatenate([poses[subject][k] for k in TAKES if k in poses[subject]])


def similarity_residual(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-point distance after the similarity (Umeyama) that best maps points a (N, 3) onto b."""
    ma, mb = a.mean(0), b.mean(0)
    u, s, vt = np.linalg.svd((b - mb).T @ (a - ma))
    d = np.diag([1, 1, np.sign(np.linalg.det(u @ vt))])
    R = u @ d @ vt
    scale = np.trace(np.diag(s) @ d) / np.sum((a - ma) ** 2)
    return np.linalg.norm(scale * (a - ma) @ R.T + mb - b, axis=1)


def errors(cal: RigCalibration, rig: CalibratedRig, offset_s: np.ndarray, drift_ppm: np.ndarray,
           t_mid_ns: int) -> dict[str, np.ndarray]:  # fmt: skip
    """Per camera 1-3: rotation °, centre cm, offset ms, drift ppm, scale %; the floor's tilt °."""
    rot = np.array([rotation_angle_deg((cal.R[v] @ cal.R[0].T) @ (rig.R[v] @ rig.R[0].T).T) for v in (1, 2, 3)])
    true_c = -np.einsum("vji,vj->vi", rig.R, rig.t)
    centre = 100 * similarity_residual(cal.centres, true_c)[1:]
    dist_t = np.linalg.norm(true_c[1:] - true_c[0], axis=1)
    dist_e = np.linalg.norm(cal.centres[1:] - cal.centres[0], axis=1)
    # camera v's stamp τ was captured at camera 0's time τ + offset + drift (τ − τ_mid)
    found = np.array([cal.reference_ns(v, t_mid_ns) - t_mid_ns for v in (1, 2, 3)]) * 1e-6
    offset = np.abs(found - offset_s[1:] * 1e3)
    drift = np.abs(cal.drift_ppm[1:] - drift_ppm[1:])
    up_e, up_t = cal.R[0] @ [0, 0, 1.0], rig.R[0] @ [0, 0, 1.0]
    tilt = np.degrees(np.arccos(np.clip(up_e @ up_t, -1, 1))) if cal.floor_determined else np.nan
    return {"rot": rot, "centre": centre, "offset": offset, "drift": drift, "scale": 100 * (dist_e / dist_t - 1),
            "tilt": np.array([tilt])}  # fmt: skip


def window_views(world: np.ndarray, rig: CalibratedRig, seconds: float, rng: np.random.Generator, detected: bool,
                 clocks: str, rate_hz: float = RATE_HZ) -> tuple:  # fmt: skip
    """One window seen by the rig: clocks ``sync`` (one instant per frame), ``offsets`` or ``drift``."""
    frames = int(seconds * rate_hz)
    offset_s = np.r_[0.0, rng.uniform(0, 0.040, 3)] if clocks != "sync" else np.zeros(4)
    drift_ppm = np.r_[0.0, rng.uniform(-100, 100, 3)] if clocks == "drift" else np.zeros(4)
    kp, t_ns, _ = camera_views(world, rig, offset_s, drift_ppm, frames, rate_hz)
    conf = None
    if detected:
        kp, conf = detector_noise(kp, rng)
    return kp, conf, t_ns, offset_s, drift_ppm


def fmt(x: np.ndarray, digits: int = 2) -> str:
    x = x[np.isfinite(x)]
    return f"{np.median(x):.{digits}f} [{np.max(x):.{digits}f}]" if len(x) else "–"


def windows(args: argparse.Namespace, seconds: float, detected: bool, clocks: str):
    """Every window of a table row, drawn the same for every table that asks for the row: (subject, rig,
    rate Hz, world walk (F, 17, 3) m, (kp, conf, t_ns, offset_s, drift_ppm) as :func:`window_views`)."""
    cams = str(data_file(args.data, "h36m", "cameras_s9_s11.json"))
    bandai = args.domain != "h36m"
    for k, subject in enumerate(args.subjects):
        rig = load_rig(cams, ("S9", "S11")[k % 2] if bandai else "S9" if subject not in ("S9", "S11") else subject)
        rate = BANDAI_HZ if bandai else RATE_HZ
        rng = np.random.default_rng([ord(c) for c in subject] + [int(seconds), detected, len(clocks)])
        motion = walks(args.data, subject, args.domain)
        frames = int(seconds * rate)
        for w in range(min(args.windows, len(motion) // frames)):
            world = place_walk(foot_locked_path(motion[w * frames : (w + 1) * frames + 50], rate_hz=rate), rig, rng)
            yield subject, rig, rate, world, window_views(world, rig, seconds, rng, detected, clocks, rate)


def extrinsics_table(args: argparse.Namespace) -> None:
    print(
        "| 2D | clocks | s | windows | rotation ° | centre cm | offset ms | drift ppm | scale % height "
        "| scale % prior (covered 1σ, 2σ) | floor tilt ° (found) | s per calibration |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for detected in (False, True):
        for clocks in ("sync", "offsets") + (("drift",) if args.drift else ()):
            for seconds in args.seconds:
                acc: dict[str, list] = {}
                within, found, spent, n = [], [], [], 0  # within: |prior scale error| in published sds
                for _, rig, _, world, (kp, conf, t_ns, off, drift) in windows(args, seconds, detected, clocks):
                    height = float(stature_m(np.median(bone_lengths(world), axis=0)))
                    t0 = time.perf_counter()
                    cal = calibrate_rig(kp, rig.K, conf, None if clocks == "sync" else t_ns, height_m=height)
                    spent.append(time.perf_counter() - t0)
                    e = errors(cal, rig, off, drift, int(t_ns[0, len(t_ns[0]) // 2]))
                    prior = calibrate_rig(kp, rig.K, conf, None if clocks == "sync" else t_ns)
                    sp = errors(prior, rig, off, drift, int(t_ns[0, len(t_ns[0]) // 2]))["scale"]
                    e["prior"] = sp
                    within.append(np.abs(np.median(sp)) / (100 * prior.scale_sd))
                    found.append(cal.floor_determined)
                    for name, value in e.items():
                        acc.setdefault(name, []).append(value)
                    n += 1
                a = {k: np.concatenate(v) for k, v in acc.items()}
                sds = np.array(within)
                sync = clocks == "sync"
                print(
                    f"| {'detector' if detected else 'exact'} | {clocks} | {seconds:g} | {n} | {fmt(a['rot'], 3)} "
                    f"| {fmt(a['centre'])} | {'–' if sync else fmt(a['offset'])} "
                    f"| {fmt(a['drift'], 0) if clocks == 'drift' else '–'} | {fmt(np.abs(a['scale']))} "
                    f"| {fmt(np.abs(a['prior']))} ({np.sum(sds <= 1)}/{n}, {np.sum(sds <= 2)}/{n}) "
                    f"| {fmt(a['tilt'])} ({int(np.sum(found))}/{n}) | {np.median(spent):.1f} |",
                    flush=True,
                )


def pose_table(args: argparse.Namespace) -> None:
    test = dict(np.load(test_path(args.data)))
    cams = str(data_file(args.data, "h36m", "cameras_s9_s11.json"))
    model = load_model()
    rows: dict[str, list] = {}
    for subject in args.subjects:
        rig = load_rig(cams, subject)
        idx = rig_samples(test, subject, 4)
        rng = np.random.default_rng([ord(c) for c in subject])
        idx = idx[:, rng.choice(idx.shape[1], args.samples // len(args.subjects), replace=False)]
        kp, conf = test["kp2d_det"][idx].astype(np.float64), test["conf_det"][idx].astype(np.float64)
        K = test["K"][idx].astype(np.float64)
        gt = test["gt"][idx[0]].astype(np.float64)  # camera 0's frame, pelvis-relative
        world = place_walk(foot_locked_path(walks(args.data, subject)[: int(args.seconds[0] * RATE_HZ) + 50]), rig, rng)
        wk, wc, t_ns, _, _ = window_views(world, rig, args.seconds[0], rng, True, "offsets")
        height = float(stature_m(np.median(bone_lengths(world), axis=0)))
        calibrations = {"true calibration": (rig.R, rig.t),
                        "true calibration, scale 4 % too large": (rig.R, 1.04 * rig.t),  # the mean adult's 1 sd
                        f"self-calibrated {args.seconds[0]:g} s, height given": None,
                        f"self-calibrated {args.seconds[0]:g} s, prior's size": None}  # fmt: skip
        for name in calibrations:
            if calibrations[name] is None:
                cal = calibrate_rig(wk, rig.K, wc, t_ns, height_m=height if "height" in name else None)
                calibrations[name] = (cal.R, cal.t)
            R, t = calibrations[name]
            n = idx.shape[1]
            out = model.estimate_rig(kp, K, np.repeat(R[:, None], n, 1), np.repeat(t[:, None], n, 1), conf=conf)
            cam0 = out @ R[0].T + t[0]
            rows.setdefault(name, []).append((cam0 - cam0[:, :1], gt))
    print("| calibration | MPJPE mm | PA-MPJPE mm |\n|---|---|---|")
    for name, parts in rows.items():
        est, gt = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        print(f"| {name} | {mpjpe(est, gt).mean():.1f} | {p_mpjpe(est, gt).mean():.1f} |")


def first_pose_table(args: argparse.Namespace) -> None:
    """The node with its defaults (a rig sent without R, t: it calibrates itself), fed a subject's walk
    in its real rig at 25 Hz in real time (detector-like 2D, clocks 0-40 ms apart) over loopback: the
    seconds from the first frame sent to the first world pose published."""
    import zmq

    from pads_stream.stream.node import Node, NodeConfig
    from pads_stream.stream.wire import decode, kp2d_message

    cams = str(data_file(args.data, "h36m", "cameras_s9_s11.json"))
    model = load_model()
    print("| subject | walk collected (s) | first world pose after (s) |\n|---|---|---|")
    for subject in args.subjects:
        rig = load_rig(cams, subject)
        rng = np.random.default_rng([ord(c) for c in subject])
        world = place_walk(foot_locked_path(walks(args.data, subject)[:900]), rig, rng)
        kp, conf, t_ns, _, _ = window_views(world, rig, 34.0, rng, True, "offsets")
        ctx = zmq.Context()
        node = Node(model, NodeConfig(inp="tcp://127.0.0.1:*", out="tcp://127.0.0.1:*", log_period_s=0), ctx)
        pub, sub = ctx.socket(zmq.PUB), ctx.socket(zmq.SUB)
        pub.connect(node.endpoints[0])
        sub.setsockopt(zmq.SUBSCRIBE, b"pose3d/")
        sub.connect(node.endpoints[1])
        time.sleep(0.5)  # the subscriptions reach the node
        t0, first = time.time_ns(), float("nan")
        for k in range(kp.shape[1]):
            for v in range(4):
                person = {"id": 0, "kp": np.concatenate([kp[v, k], conf[v, k, :, None]], -1).tolist()}
                pub.send_multipart(kp2d_message(f"cam{v}", k, t0 + int(t_ns[v, k]), [person],
                                                camera={"K": rig.K[v].tolist(), "rig": "studio"}))  # fmt: skip
            while time.time_ns() < t0 + (k + 1) * 40_000_000:
                node.spin_once()
            got = [decode(sub.recv_multipart()) for _ in range(1000) if sub.poll(0)]
            if any(p["persons"] and p["persons"][0].get("joints_world") is not None for _, p in got):
                first = (time.time_ns() - t0) / 1e9
                break
        pub.close(0), sub.close(0), node.close(), ctx.destroy(0)
        print(f"| {subject} | {node.cfg.rig_autocalibrate_s:g} | {first:.1f} |", flush=True)


def clock_information(world: np.ndarray, rig: CalibratedRig, offset_s: np.ndarray, drift_ppm: np.ndarray | None,
                      frames: int, rate: float, noise_px: float = 5.0,
                      inliers: float = 0.95) -> np.ndarray:  # fmt: skip
    """Fisher information that a window holds about the clocks, as the windows are made: each joint
    moves linearly between camera 0's frames (``camera_views`` samples the walk so), every instant's
    joints free, cameras 1..V-1's poses free (rotation, translation), Gaussian 2D noise of
    ``noise_px`` per coordinate, displaced joints carrying nothing (``inliers``). Parameters: cameras
    1..V-1's offsets (ms), then with ``drift_ppm`` their drifts (ppm), then their poses (radians,
    metres); square."""
    V, F = len(rig.K), frames - 1  # the last instant has no successor to move towards
    tau = np.arange(frames) / rate
    since = tau - tau[frames // 2]  # camera_views's drift runs from the window's middle
    n_clock = (V - 1) * (2 if drift_ppm is not None else 1)
    n_par = n_clock + 6 * (V - 1)
    info = np.zeros((n_par, n_par))
    for j in range(17):
        X = world[:frames, j]
        rows = []
        for v in range(V):
            # camera v's frame k lies at camera 0's instant k + a_k (frames); between instants i and i + 1
            a = (offset_s[v] + (0.0 if drift_ppm is None else drift_ppm[v] * 1e-6 * since)) * rate
            pos = np.arange(frames) + a
            keep = np.flatnonzero((pos >= 0) & (pos < F))
            i = np.floor(pos[keep]).astype(int)
            frac = (pos[keep] - i)[:, None]
            P = (1 - frac) * X[i] + frac * X[i + 1]
            p = P @ rig.R[v].T + rig.t[v]
            dpi = np.zeros((len(keep), 2, 3))
            fx, fy = rig.K[v, 0, 0], rig.K[v, 1, 1]
            dpi[:, 0, 0], dpi[:, 1, 1] = fx / p[:, 2], fy / p[:, 2]
            dpi[:, 0, 2], dpi[:, 1, 2] = -fx * p[:, 0] / p[:, 2] ** 2, -fy * p[:, 1] / p[:, 2] ** 2
            dX = dpi @ rig.R[v]
            A = np.zeros((len(keep), 2, 3 * frames + n_par))
            k = np.arange(len(keep))
            for c in range(3):
                A[k, :, 3 * i + c], A[k, :, 3 * (i + 1) + c] = (1 - frac) * dX[:, :, c], frac * dX[:, :, c]
            if v:
                base = 3 * frames
                d_offset = np.einsum("kab,kb->ka", dX, (X[i + 1] - X[i]) * rate * 1e-3)  # per ms of offset
                A[:, :, base + v - 1] = d_offset
                if drift_ppm is not None:
                    A[:, :, base + V - 1 + v - 1] = d_offset * 1e3 * 1e-6 * since[keep, None]  # per ppm
                pose = base + n_clock + 6 * (v - 1)
                A[:, :, pose : pose + 3] = dpi @ -skew(p - rig.t[v])
                A[:, :, pose + 3 : pose + 6] = dpi
            rows.append(A.reshape(2 * len(keep), -1))
        J = np.concatenate(rows)
        H = J.T @ J
        n = 3 * frames
        info += H[n:, n:] - H[n:, :n] @ np.linalg.solve(H[:n, :n], H[:n, n:])
    return info * inliers / noise_px**2


def bound_table(args: argparse.Namespace) -> None:
    """The clocks' Cramér-Rao bound on the extrinsics table's windows (detector-like 2D; offsets, and
    with ``--drift`` drifting clocks): what any unbiased calibration could reach on them, and so the
    spread of a table's maximum that the data allows."""
    print("| subject | clocks | seconds | offsets ms (cameras 1-3) | offset bound sd ms | drift bound sd ppm |")
    print("|---|---|---|---|---|---|")
    for clocks in ("offsets",) + (("drift",) if args.drift else ()):
        for seconds in args.seconds:
            covs = []  # per window: the clocks' covariance, offsets in ms² (then drifts in ppm²)
            for subject, rig, rate, world, (*_, off, drift) in windows(args, seconds, True, clocks):
                frames = int(seconds * rate)
                info = clock_information(world, rig, off, drift if clocks == "drift" else None, frames, rate)
                n = 6 if clocks == "drift" else 3
                cov = np.linalg.pinv(info, rcond=1e-12)[:n, :n]  # (the rig's scale is free: a pseudo-inverse)
                covs.append((cov + cov.T) / 2)
                sd = np.sqrt(np.diag(covs[-1]))
                print(f"| {subject} | {clocks} | {seconds:g} | {' / '.join(f'{1e3 * o:.1f}' for o in off[1:])} "
                      f"| {' / '.join(f'{x:.2f}' for x in sd[:3])} "
                      f"| {' / '.join(f'{x:.0f}' for x in sd[3:]) or '–'} |", flush=True)  # fmt: skip
            rng = np.random.default_rng(0)
            draws = np.stack([rng.multivariate_normal(np.zeros(len(c)), c, 20000) for c in covs], axis=1)  # (N, w, n)
            err = np.abs(draws[..., :3]).reshape(len(draws), -1)
            top = err.max(axis=1)
            print(
                f"\nAt the bound, {clocks}, {seconds:g} s, {err.shape[1]} offsets: median |error| {np.median(err):.2f} "
                f"ms; the largest of them {np.median(top):.2f} ms median (10-90 %: {np.percentile(top, 10):.2f}-"
                f"{np.percentile(top, 90):.2f}), within 2 ms in {100 * np.mean(top <= 2):.0f} % of such tables"
            )
            if clocks == "drift":  # (the calibration also has a prior on each drift, N(0, 50 ppm²); this has none)
                d = np.abs(draws[..., 3:]).reshape(len(draws), -1)
                print(f"Drifts: median |error| {np.median(d):.0f} ppm; the largest of {d.shape[1]} "
                      f"{np.median(d.max(axis=1)):.0f} ppm median (10-90 %: {np.percentile(d.max(axis=1), 10):.0f}-"
                      f"{np.percentile(d.max(axis=1), 90):.0f})")  # fmt: skip
            print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--subjects", default=None, help="Human3.6M subjects, or Bandai styles (default: S9,S11 / all)")
    parser.add_argument("--domain", choices=("h36m", *BANDAI_STYLES), default="h36m")
    parser.add_argument("--seconds", default="10,30")
    parser.add_argument("--windows", type=int, default=4, help="windows per subject")
    parser.add_argument("--drift", action="store_true", help="also clocks with ±100 ppm drift")
    parser.add_argument("--pose", action="store_true", help="the fused pose's accuracy instead")
    parser.add_argument("--node", action="store_true", help="the node's time to its first world pose instead")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--bound", action="store_true", help="the clocks' Cramér-Rao bound on the windows instead")
    args = parser.parse_args()
    styles = BANDAI_STYLES.get(args.domain)
    if styles and (args.pose or args.node or args.bound):
        parser.error("a Bandai domain measures the calibration (the extrinsics table) only")
    args.subjects = args.subjects.split(",") if args.subjects else list(styles or ("S9", "S11"))
    if styles and not set(args.subjects) <= set(styles):
        parser.error(f"--domain {args.domain} takes styles: {', '.join(styles)}")
    args.seconds = [float(s) for s in args.seconds.split(",")]
    table = (
        pose_table if args.pose else first_pose_table if args.node else bound_table if args.bound else extrinsics_table
    )
    table(args)


if __name__ == "__main__":
    main()
