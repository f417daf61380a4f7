"""A camera's floor from the tracked people's feet, against the real V-H36M rig.

For each of the 8 real cameras of S9 and S11 (``h36m/cameras_s9_s11.json``): 4 persons play 4 of
that subject's takes (25 Hz) about random places within 2 m of where the rig looks, each with its
own random heading, seen by that one camera with detector-like 2D (joints outside its image
unseen). The Human3.6M files hold no global trajectory (the pelvis stays at the origin), so each
person walks the path that holds its lower ankle still from frame to frame (``foot_locked_path``:
0.6–0.9 m/s on the walking takes, the captured turns included), centred on its place; ``--in-place``
leaves them treading on the spot as the files are. The node's tracker
(``tracker.track_sequences``, root estimated from body size, no extrinsics) lifts them; after
``--seconds`` the floor is fitted to their foot contacts (``pads_stream.geometry.floor``). Printed as a
markdown table per camera: the errors of the camera's height (cm), pitch and roll (degrees), and
how far the feet are from the true floor (the lowest joint of each pose in the true world, mean
|z|, cm) with the body-size depth alone and with each pose then put on the estimated floor.

Every Human3.6M file has one skeleton, so every person is the same size; people are not (adults'
statures vary by about 4 %), and a body-size depth takes each for the mean skeleton. ``--size-sd``
scales each person by a normal factor of that spread (``--size-sd 0.04``: adults).

``--hold-sizes`` holds everyone to the mean size in the fit (``FloorConfig(walk_sd_m=inf)``: the
fit before sizes were freed), for comparison.

``--validation`` plays held-out S8 takes instead (for choosing; never choose on the test subjects);
``--seed`` draws other places, takes and sizes.

Usage: python tools/floor_eval.py [--data DIR] [--seconds S] [--exact] [--in-place] [--size-sd SD]
       [--hold-sizes] [--validation] [--seed N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from pads_stream.api import load_model
from pads_stream.common.config import load_json
from pads_stream.data.datasets import DEFAULT_DATA, TEST_SUBJECTS, data_file, load_positions_3d
from pads_stream.data.virtual_rig import Y_UP_TO_Z_UP, detector_noise, load_rig
from pads_stream.geometry.camera import camera_to_world, floor_scale, normalized_rays, rotation_y
from pads_stream.geometry.floor import Floor, FloorConfig, contacts, estimate_floor
from pads_stream.stream.node import DEFAULT_CONFIG, NodeConfig
from pads_stream.stream.tracker import track_sequences

FPS = 25.0
PERSONS = 4


def true_floor(R: np.ndarray, t: np.ndarray) -> Floor:
    """The floor z = 0 of the world X_cam = R X + t, in the camera's frame."""
    return Floor(up=R[:, 2], height=float((-R.T @ t)[2]), contacts=0, rms=0.0, confidence=1.0)


def foot_locked_path(x: np.ndarray) -> np.ndarray:
    """(F, 3) horizontal offsets (world, Z up, metres) that keep the lower ankle of a pose
    sequence x (F, 17, 3), pelvis-relative, in place from each frame to the next: the walk the
    body's own steps make, centred on the clip's mean."""
    ankles = x[:, [3, 6]]
    off = np.zeros((len(x), 3))
    for f in range(1, len(x)):
        k = np.argmin(ankles[f - 1, :, 2] + ankles[f, :, 2])  # the stance foot over both frames
        off[f, :2] = off[f - 1, :2] + ankles[f - 1, k, :2] - ankles[f, k, :2]
    return off - off.mean(axis=0)


def feet_cm(joints: np.ndarray, R: np.ndarray, t: np.ndarray) -> float:
    """Mean |z| of the lowest joint of each pose (F, 17, 3 camera frame) in the true world, cm."""
    ok = np.isfinite(joints).all(axis=(1, 2))
    world = camera_to_world(joints[ok], np.broadcast_to(R, (ok.sum(), 3, 3)), np.broadcast_to(t, (ok.sum(), 3)))
    return float(100 * np.abs(world[..., 2].min(axis=1)).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, help="folder holding h36m/")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of walking before the floor is fitted")
    parser.add_argument("--exact", action="store_true", help="exact 2D instead of detector-like")
    parser.add_argument("--in-place", action="store_true", help="persons tread on the spot (no walked path)")
    parser.add_argument(
        "--validation", action="store_true", help="held-out S8 takes in the S9 and S11 rigs (for choices; not the test)"
    )
    parser.add_argument("--size-sd", type=float, default=0.0, help="spread of the persons' sizes (0.04: adults)")
    parser.add_argument("--hold-sizes", action="store_true", help="fit everyone at the mean size (for comparison)")
    parser.add_argument("--seed", type=int, help="random draw (default 0, or 7 with --validation)")
    parser.add_argument("--out", help="write the table (markdown) here")
    args = parser.parse_args()
    model = load_model()
    fcfg = FloorConfig(walk_sd_m=np.inf) if args.hold_sizes else FloorConfig()
    cfg = load_json(NodeConfig, DEFAULT_CONFIG)
    poses = load_positions_3d(data_file(args.data, "h36m", "positions_3d_25hz.npz"))
    frames = int(args.seconds * FPS)
    seed = (7 if args.validation else 0) if args.seed is None else args.seed
    rng = np.random.default_rng(seed)
    stature = np.random.default_rng([seed, 1]).normal(1.0, args.size_sd, (len(TEST_SUBJECTS), 4, PERSONS))
    lines = [
        f"{PERSONS} persons per camera, {args.seconds:g} s at {FPS:g} Hz, {'exact' if args.exact else 'detector-like'}"
        f" 2D, root from body size, {'treading on the spot' if args.in_place else 'walking their steps'}"
        f"{', held-out S8 takes' if args.validation else ''}"
        f"{f', sizes spread {args.size_sd:g}' if args.size_sd else ''}"
        f"{f', seed {args.seed}' if args.seed is not None else ''}"
        f"{', sizes held in the fit' if args.hold_sizes else ''}",
        "",
        "| subject | camera | contacts | height error cm | height sd cm | pitch error ° | roll error ° | feet off the "
        "floor cm, body size | feet, on the estimated floor | confidence |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    errs = []
    cameras = data_file(args.data, "h36m", "cameras_s9_s11.json")
    calibration = json.loads(cameras.read_text())["subjects"]
    for s, subject in enumerate(TEST_SUBJECTS):
        rig = load_rig(str(cameras), subject)
        image_sizes = [np.array(c["image_size"]) for c in calibration[subject]]
        actor = "S8" if args.validation else subject
        takes = [x for name, x in sorted(poses[actor].items()) if name.startswith(("walking", "directions"))]
        for v in range(len(rig.K)):
            pick = rng.choice(len(takes), PERSONS, replace=False)
            world = np.empty((frames, PERSONS, 17, 3))
            for m, k in enumerate(pick):
                seq = takes[k][:frames].astype(np.float64)
                x = np.einsum("ij,fkj->fki", rotation_y(np.array([rng.uniform(0, 2 * np.pi)]))[0], seq) @ Y_UP_TO_Z_UP.T
                x *= stature[s, v, m]
                x[..., 2] -= x[..., 2].min(axis=1, keepdims=True)
                if not args.in_place:
                    x += foot_locked_path(x)[:, None]
                radius, angle = 2.0 * np.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
                world[:, m] = x + rig.look_at_floor() + [radius * np.cos(angle), radius * np.sin(angle), 0.0]
            R, t = rig.R[v], rig.t[v]
            cam = world @ R.T + t
            kp = cam[..., :2] / cam[..., 2:3] @ rig.K[v][:2, :2].T + rig.K[v][:2, 2]
            kp, conf = (kp, np.ones(kp.shape[:-1])) if args.exact else detector_noise(kp, rng)
            conf = np.where(((kp >= 0) & (kp < image_sizes[v])).all(axis=-1) & (cam[..., 2] > 0), conf, 0.0)
            rays = normalized_rays(kp, rig.K[v])[..., :2]
            joints = track_sequences(model, cfg, rays, conf, None, np.arange(PERSONS), FPS)  # (F, P, 17, 3)
            times = np.arange(frames) / FPS
            est = estimate_floor([joints[:, m] for m in range(PERSONS)], [times] * PERSONS, fcfg)
            points = np.concatenate([contacts(joints[:, m], times, fcfg)[0] for m in range(PERSONS)])
            truth = true_floor(R, t)
            flat = joints.reshape(-1, 17, 3)
            if est is None:
                lines.append(f"| {subject} | {v} | {len(points)} | no estimate | | | | {feet_cm(flat, R, t):.1f} | | |")
                print(lines[-1], flush=True)
                continue
            Re, te = est.extrinsics()
            ok = np.isfinite(flat).all(axis=(1, 2))
            f, known = floor_scale(flat[ok], np.broadcast_to(Re, (ok.sum(), 3, 3)), np.broadcast_to(te, (ok.sum(), 3)))
            on_floor = flat[ok] * np.where(known, f, 1.0)[:, None, None]
            row = (100 * (est.height - truth.height), est.pitch_deg - truth.pitch_deg, est.roll_deg - truth.roll_deg)
            errs.append(row)
            feet = f"{feet_cm(flat, R, t):.1f} | {feet_cm(on_floor, R, t):.1f}"
            lines.append(f"| {subject} | {v} | {est.contacts} | {row[0]:+.1f} | {100 * est.height_sd:.1f} | "
                         f"{row[1]:+.2f} | {row[2]:+.2f} | {feet} | {est.confidence:.2f} |")  # fmt: skip
            print(lines[-1], flush=True)
    if errs:
        e = np.abs(np.array(errs))
        lines.append(f"| mean abs | | | {e[:, 0].mean():.1f} | | {e[:, 1].mean():.2f} | {e[:, 2].mean():.2f} | | | |")
        print(lines[-1])
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
