"""Several calibrated cameras fused into one pose: ``estimate_rig`` against the alternatives, on V-H36M.

The test set's four cameras of the S9/S11 rig (``h36m/cameras_s9_s11.json``): the k-th sample of
a subject in cameras 0 … 3 is one world pose. For 4 views and every pair of them, with exact 2D
and detector-like 2D (``kp2d_det`` / ``conf_det``), 10 steps, it prints a markdown table of
MPJPE and PA-MPJPE (pelvis-relative, mm), the root (pelvis) error in the world (mm) and ms per
person, for:

- ``mono``: ``estimate`` on camera 0 (or the pair's first camera), root unknown, sized by the
  floor from that camera's extrinsics, mapped to the world;
- ``DLT``: the views' rays triangulated (``multiview.triangulate``, weights conf² per view);
- ``DLT + denoise``: that, then the prior's ``denoise`` (root from the triangulation);
- ``late fusion``: the mean in the world of ``mono`` from every view;
- ``rig``: ``PoseModel.estimate_rig``.

``--limb`` adds the case of a limb seen by one view only (the others send it at confidence 0):
the error on that limb against ``mono`` of the view that sees it. ``--validation`` runs on held-out
S8 poses placed in the S9 rig instead (for tuning; never tune on the test set).

``--cost`` prints only the cost table instead: ms per person of one view's ``estimate`` and of
``estimate_rig`` from 2 and 4 views, interleaved repeats in one run (the median).

``--grid`` prints only the calibration-and-noise table instead: every camera's assumed extrinsics
off by a random rotation (degrees) and shift (mm), Gaussian 2D noise (px), with or without
detector outliers (5 % of joints 20-60 px, with their confidences), for 4 views and every pair:
MPJPE of DLT and of ``estimate_rig`` (and of each ``--rig-snap`` value given, the final fusion's
prior error in metres, with its power after a colon).

Usage: python tools/rig_eval.py [--data DIR] [--samples N] [--limb] [--validation] [--cost] [--grid]
       [--rig-snap 0.005,0.01:4] [--out FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time

import numpy as np

from pads_stream.api import PoseModel, load_model
from pads_stream.data.datasets import DEFAULT_DATA, data_file, load_positions_3d, split_holdout, test_path
from pads_stream.data.virtual_rig import CalibratedRig, detector_noise, load_rig, place_in_rig, rig_samples
from pads_stream.evaluation.evaluate import LIMBS
from pads_stream.geometry import multiview
from pads_stream.geometry.camera import camera_to_world, normalized_rays
from pads_stream.geometry.metrics import mpjpe, p_mpjpe
from pads_stream.prior.train import TrainConfig


@dataclasses.dataclass
class RigSet:
    """Persons seen by every camera of a rig: kp2d (V, N, 17, 2) px, conf (V, N, 17) (None: exact),
    K (V, N, 3, 3), R (V, N, 3, 3), t (V, N, 3), world (N, 17, 3) ground truth, metres."""

    kp2d: np.ndarray
    conf: np.ndarray | None
    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    world: np.ndarray

    def views(self, v: list[int]) -> RigSet:
        return RigSet(self.kp2d[v], None if self.conf is None else self.conf[v], self.K[v], self.R[v], self.t[v],
                      self.world)  # fmt: skip


def per_person(rig: CalibratedRig, n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.repeat(rig.R[:, None], n, axis=1), np.repeat(rig.t[:, None], n, axis=1)


def test_sets(data: str, samples: int, seed: int = 0) -> dict[str, RigSet]:
    """``samples`` persons of S9 and S11 (half each) of the test set, exact and detector-like 2D."""
    test = dict(np.load(test_path(data)))
    cams = str(data_file(data, "h36m", "cameras_s9_s11.json"))
    rng = np.random.default_rng(seed)
    parts = {"exact": [], "det": []}
    for subject in ("S9", "S11"):
        rig = load_rig(cams, subject)
        idx = rig_samples(test, subject, len(rig.K))
        idx = idx[:, rng.choice(idx.shape[1], samples // 2, replace=False)]
        n = idx.shape[1]
        R, t = per_person(rig, n)
        world = camera_to_world(test["gt"][idx[0]] + test["root"][idx[0]][:, None], R[0], t[0])
        K = test["K"][idx].astype(np.float64)
        parts["exact"].append(RigSet(test["kp2d"][idx].astype(np.float64), None, K, R, t, world))
        parts["det"].append(RigSet(test["kp2d_det"][idx].astype(np.float64), test["conf_det"][idx].astype(np.float64),
                                   K, R, t, world))  # fmt: skip
    return {name: join(sets) for name, sets in parts.items()}


def validation_sets(data: str, samples: int, seed: int = 0) -> dict[str, RigSet]:
    """Held-out S8 poses placed in the S9 rig like the test set's, exact and detector-like 2D."""
    cfg = TrainConfig(h36m=str(data_file(data, "h36m", "positions_3d_25hz.npz")))
    _, held = split_holdout(load_positions_3d(cfg.h36m), cfg.holdout_takes)
    poses = np.concatenate([x[::8] for takes in held.values() for x in takes.values()])
    rng = np.random.default_rng(seed)
    poses = poses[rng.choice(len(poses), min(samples, len(poses)), replace=False)]
    rig = load_rig(str(data_file(data, "h36m", "cameras_s9_s11.json")), "S9")
    world = place_in_rig(poses, rig, rng)
    kp = rig.project(world)
    det, conf = detector_noise(kp, rng)
    R, t = per_person(rig, len(world))
    K = np.repeat(rig.K[:, None], len(world), axis=1)
    return {"exact": RigSet(kp, None, K, R, t, world), "det": RigSet(det, conf, K, R, t, world)}


def join(sets: list[RigSet]) -> RigSet:
    cat = {f.name: None if getattr(sets[0], f.name) is None else
           np.concatenate([getattr(s, f.name) for s in sets], axis=0 if f.name == "world" else 1)
           for f in dataclasses.fields(RigSet)}  # fmt: skip
    return RigSet(**cat)


def conf_of(s: RigSet) -> np.ndarray:
    return np.ones(s.kp2d.shape[:3]) if s.conf is None else s.conf


def mono(model: PoseModel, s: RigSet, v: int) -> np.ndarray:
    """``estimate`` on view ``v``, root unknown, sized by that camera's floor -> world (N, 17, 3)."""
    x, root = model.estimate(s.kp2d[v], s.K[v], conf=conf_of(s)[v], extrinsics=(s.R[v], s.t[v]), return_root=True)
    return camera_to_world(x + root[:, None], s.R[v], s.t[v])


def dlt(s: RigSet) -> np.ndarray:
    """Confidence-weighted triangulation (weights conf² per view) -> world (N, 17, 3)."""
    n = s.kp2d.shape[1]
    rays = normalized_rays(s.kp2d, s.K)[..., :2]
    eye = np.broadcast_to(np.eye(3), (n, 3, 3))
    r = multiview.rays_in_frame(rays, s.R, s.t, conf_of(s) ** 2, eye, np.zeros((n, 3)))
    return multiview.triangulate(r)


def methods(model: PoseModel, s: RigSet) -> dict:
    views = s.kp2d.shape[0]
    return {
        "mono (first camera)": lambda: mono(model, s, 0),
        "DLT": lambda: dlt(s),
        "DLT + denoise": lambda: (lambda w: model.denoise(w - w[:, :1]) + w[:, :1])(dlt(s)),
        "late fusion": lambda: np.mean([mono(model, s, v) for v in range(views)], axis=0),
        "rig (estimate_rig)": lambda: model.estimate_rig(s.kp2d, s.K, s.R, s.t, conf=s.conf),
    }


def score(world: np.ndarray, gt: np.ndarray, joints: list[int] | None = None) -> dict[str, float]:
    rel, rel_gt = world - world[:, :1], gt - gt[:, :1]
    out = {"mpjpe": float(mpjpe(rel, rel_gt).mean()), "pa": float(p_mpjpe(rel, rel_gt).mean()),
           "root": float(1000 * np.linalg.norm(world[:, 0] - gt[:, 0], axis=-1).mean())}  # fmt: skip
    if joints is not None:
        out["limb"] = float(1000 * np.linalg.norm(rel[:, joints] - rel_gt[:, joints], axis=-1).mean())
    return out


def timed(fn) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def accuracy_table(model: PoseModel, sets: dict[str, RigSet]) -> list[str]:
    n = len(sets["exact"].world)
    subsets = [[0, 1, 2, 3], *map(list, itertools.combinations(range(4), 2))]
    lines = ["| 2D | views | method | MPJPE | PA-MPJPE | root | ms / person |", "|---|---|---|---|---|---|---|"]
    for name, full in sets.items():
        for v in subsets:
            s = full.views(v)
            for method, fn in methods(model, s).items():
                if method.startswith(("mono", "late")) and len(v) == 2 and v != [0, 1]:
                    continue  # the monocular rows do not depend on the pair beyond its cameras: shown once
                world, sec = timed(fn)
                m = score(world, s.world)
                lines.append(f"| {name} | {''.join(map(str, v))} | {method} | {m['mpjpe']:.1f} | {m['pa']:.1f} | "
                             f"{m['root']:.1f} | {1000 * sec / n:.2f} |")  # fmt: skip
                print(lines[-1], flush=True)
    return lines


def limb_table(model: PoseModel, sets: dict[str, RigSet]) -> list[str]:
    """Each limb seen by one view only (view 0 of 4, or of the pair 0-2), detector-like 2D."""
    lines = [
        "| views | limb seen by view 0 only | mono (view 0) limb | rig limb | rig MPJPE |",
        "|---|---|---|---|---|",
    ]
    full = sets["det"]
    for v in ([0, 1, 2, 3], [0, 2]):
        s = full.views(v)
        base = mono(model, s, 0)
        for limb, joints in LIMBS.items():
            conf = conf_of(s).copy()
            conf[1:, :, list(joints)] = 0.0
            hidden = RigSet(s.kp2d, conf, s.K, s.R, s.t, s.world)
            world = model.estimate_rig(hidden.kp2d, hidden.K, hidden.R, hidden.t, conf=hidden.conf)
            m, b = score(world, s.world, list(joints)), score(base, s.world, list(joints))
            lines.append(f"| {''.join(map(str, v))} | {limb} | {b['limb']:.1f} | {m['limb']:.1f} | {m['mpjpe']:.1f} |")
            print(lines[-1], flush=True)
    return lines


def cost_table(model: PoseModel, sets: dict[str, RigSet], batches: tuple[int, ...] = (1, 16, 64),
               repeats: int = 7) -> list[str]:  # fmt: skip
    """ms per person of ``estimate`` (one view, root unknown, floor) and ``estimate_rig`` (2 and 4
    views), detector-like 2D, interleaved repeats in one run (median), and the 4-view ratio to one."""
    lines = ["| persons | one view (estimate) | 2 views (estimate_rig) | 4 views (estimate_rig) | 4 views / one |",
             "|---|---|---|---|---|"]  # fmt: skip
    runs = {
        "one": lambda s: model.estimate(s.kp2d[0], s.K[0], conf=s.conf[0], extrinsics=(s.R[0], s.t[0])),
        "two": lambda s: model.estimate_rig(s.kp2d[[0, 2]], s.K[[0, 2]], s.R[[0, 2]], s.t[[0, 2]], s.conf[[0, 2]]),
        "four": lambda s: model.estimate_rig(s.kp2d, s.K, s.R, s.t, conf=s.conf),
    }
    full = sets["det"]
    for n in batches:
        sub = RigSet(full.kp2d[:, :n], full.conf[:, :n], full.K[:, :n], full.R[:, :n], full.t[:, :n], full.world[:n])
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(repeats):
            for k, fn in runs.items():
                start = time.perf_counter()
                fn(sub)
                times[k].append((time.perf_counter() - start) * 1000 / n)
        med = {k: float(np.median(v)) for k, v in times.items()}
        lines.append(
            f"| {n} | {med['one']:.2f} | {med['two']:.2f} | {med['four']:.2f} | {med['four'] / med['one']:.2f} |"
        )
        print(lines[-1], flush=True)
    return lines


GRID = (
    (0.0, 0.0, 0.0, False),
    (0.0, 0.0, 1.0, False),
    (0.3, 5.0, 0.0, False),
    (0.3, 5.0, 1.0, False),
    (0.5, 10.0, 2.0, False),
    (0.1, 2.0, 0.5, False),
    (1.0, 20.0, 0.0, False),
    (0.5, 10.0, 4.0, False),
    (0.3, 5.0, 8.0, False),
    (0.3, 5.0, 2.0, True),
    (1.0, 20.0, 4.0, True),
)  # (deg, mm, px, outliers)


def perturbed(s: RigSet, deg: float, mm: float, px: float, outliers: bool, rng: np.random.Generator) -> RigSet:
    """``s`` with each camera's assumed R, t off by ``deg`` about a random axis and ``mm`` in a random
    direction (the 2D still from the true cameras), and 2D noise of ``px`` (with detector outliers)."""
    R, t = s.R.copy(), s.t.copy()
    for v in range(len(R)):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        a = np.deg2rad(deg)
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        dR = np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k
        shift = rng.normal(size=3)
        R[v] = dR @ R[v]
        t[v] = t[v] + 1e-3 * mm * shift / np.linalg.norm(shift)
    kp, conf = s.kp2d, None
    if outliers:
        kp, conf = detector_noise(kp, rng, std_px=max(px, 1.0))
    elif px > 0:
        kp = kp + rng.normal(0, px, kp.shape)
    return RigSet(kp, conf, s.K, R, t, s.world)


def grid_table(model: PoseModel, full: RigSet, snaps: list[str], det: RigSet) -> list[str]:
    rows = [[0, 1, 2, 3], *map(list, itertools.combinations(range(4), 2))]
    head = "| calibration error | 2D noise | views | DLT | rig |" + "".join(f" rig, snap {x} |" for x in snaps)
    lines = [head, "|" + "---|" * (5 + len(snaps))]
    shipped = model.sampler
    for deg, mm, px, outliers in [*GRID, (None, None, None, None)]:
        rng = np.random.default_rng(7)
        s = det if deg is None else perturbed(full, deg, mm, px, outliers, rng)
        for v in rows:
            sub = s.views(v)
            err = [score(dlt(sub), sub.world)["mpjpe"]]
            for snap in [None, *snaps]:
                if snap is not None:
                    value, _, power = snap.partition(":")
                    change = {"rig_snap": float(value)} | ({"rig_snap_power": float(power)} if power else {})
                    model.sampler = dataclasses.replace(shipped, **change)
                err.append(score(model.estimate_rig(sub.kp2d, sub.K, sub.R, sub.t, conf=sub.conf), sub.world)["mpjpe"])
            model.sampler = shipped
            cells = " | ".join(f"{e:.1f}" for e in err)
            what = "| none | the set's detector-like 2D" if deg is None else (
                f"| {deg:g}°, {mm:g} mm | {px:g} px" + (" + outliers" if outliers else ""))  # fmt: skip
            lines.append(f"{what} | {''.join(map(str, v))} | {cells} |")
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, help="folder holding h36m/")
    parser.add_argument("--samples", type=int, default=500, help="persons (half S9, half S11)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--model", help="checkpoint (default: the shipped model)")
    parser.add_argument("--limb", action="store_true", help="add the table of a limb seen by one view only")
    parser.add_argument("--validation", action="store_true", help="held-out S8 poses in the S9 rig (tuning)")
    parser.add_argument("--cost", action="store_true", help="only the table of ms per person (one view, 2, 4)")
    parser.add_argument("--grid", action="store_true", help="only the calibration-error and 2D-noise table")
    parser.add_argument(
        "--rig-snap",
        default="",
        help="--grid: more rig columns, comma-separated rig_snap values (value or value:rig_snap_power)",
    )
    parser.add_argument("--out", help="write the tables (markdown) here")
    args = parser.parse_args()
    model = load_model(args.model, backend=args.backend)
    sets = (validation_sets if args.validation else test_sets)(args.data, args.samples)
    where = "held-out S8 in the S9 rig" if args.validation else "V-H36M test set, S9/S11 rig"
    lines = [f"{where}, {len(sets['exact'].world)} persons, 10 steps, backend {model.backend.name}", ""]
    if args.grid:
        lines += grid_table(model, sets["exact"], [x for x in args.rig_snap.split(",") if x], sets["det"])
        if args.out:
            with open(args.out, "w") as f:
                f.write("\n".join(lines) + "\n")
        return
    if args.cost:
        lines += cost_table(model, sets)
        if args.out:
            with open(args.out, "w") as f:
                f.write("\n".join(lines) + "\n")
        return
    lines += accuracy_table(model, sets)
    if args.limb:
        lines += ["", *limb_table(model, sets)]
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
