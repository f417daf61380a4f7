"""Choose the node's warm start on held-out sequences: S8's held-out takes (never S9/S11).

The sequences go through the node's own tracker (:func:`pads_stream.stream.tracker.track_sequences`:
warm-start choice, depth filter, plausibility gate), frame by frame, through fixed virtual cameras
(2 persons each) at 25 Hz and at 12.5 Hz (every other frame), exact 2D, root given and unknown
(2D + K). Each row is a warm start (``warm_t_start:warm_steps``) against the cold start (every
frame from scratch). Prints MPJPE (pelvis-relative; mean, first second, after two seconds), the
root error and the acceleration error, and the share of person-frames the gate refused.
Usage: python tools/warm_start_eval.py [--data DIR] [--grid 300:10,...] (a fourth field: cold_check_every,
0 = no cold check)
"""

import argparse
import dataclasses

import numpy as np

from pads_stream.api import load_model
from pads_stream.apps.recordings import holdout_sequences
from pads_stream.common.config import load_json
from pads_stream.data.datasets import DEFAULT_DATA
from pads_stream.geometry.camera import normalized_rays
from pads_stream.stream.node import DEFAULT_CONFIG, NodeConfig
from pads_stream.stream.tracker import track_sequences

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--data", default=DEFAULT_DATA)
parser.add_argument("--streams", type=int, default=12, help="virtual cameras, 2 persons each")
parser.add_argument("--frames", type=int, default=150)
parser.add_argument(
    "--grid",
    default="300:10,200:10:250,300:10:250,400:10:250",
    help="warm_t_start:warm_steps[:warm_pose_max_gap_ms[:cold_check_every]] (default: the shipped values)",
)
args = parser.parse_args()
seq = holdout_sequences(args.data, args.streams, args.frames)
kp, K, root, gt = seq["kp2d"], seq["K"], seq["root"], seq["gt"]
F, P = kp.shape[:2]
rays, conf = normalized_rays(kp, K)[..., :2], np.ones(kp.shape[:-1])
stream_of = np.arange(P) // 2
shipped = load_json(NodeConfig, str(DEFAULT_CONFIG))  # a NodeConfig is the tracker's config too
model = load_model(backend="onnxruntime", threads=1)


def score(joints: np.ndarray, frames: np.ndarray) -> dict[str, float]:
    """MPJPE (pelvis-relative, mean / first second / after 2 s), root and acceleration errors (mm)."""
    g, r = gt[frames], root[frames]
    rel = joints - joints[:, :, :1]
    e = 1000 * np.linalg.norm(rel - g, axis=-1).mean(axis=-1)  # (F, P), NaN where refused
    per_s = int(round(25 * len(frames) / F))
    accel = np.linalg.norm(np.diff(rel, 2, axis=0) - np.diff(g, 2, axis=0), axis=-1)
    return {"mpjpe": np.nanmean(e), "first": np.nanmean(e[:per_s]), "later": np.nanmean(e[2 * per_s :]),
            "root": 1000 * np.nanmean(np.linalg.norm(joints[:, :, 0] - r, axis=-1)),
            "accel": 1000 * np.nanmean(accel), "refused": 100 * np.isnan(e).mean()}  # fmt: skip


print(f"S8 held-out takes, {args.streams} cameras x 2 persons x {F} frames, exact 2D, the node's tracker "
      f"(shipped: warm from t={shipped.warm_t_start}, {shipped.warm_steps} steps, an estimated root's pose "
      f"within {shipped.warm_pose_max_gap_ms:g} ms)\n")  # fmt: skip
print("| rate | root | start | MPJPE | first second | after 2 s | root error | accel. mm/frame² | refused % |")
print("|---|---|---|---|---|---|---|---|---|")
for fps, frames in ((25.0, np.arange(F)), (12.5, np.arange(0, F, 2))):
    for given in (True, False):
        for spec in ["cold", *args.grid.split(",")]:
            if spec == "cold":
                cfg = dataclasses.replace(shipped, warm_start=False)
            else:
                t, steps, *rest = map(int, spec.split(":"))
                pose_gap = rest[0] if rest else shipped.warm_pose_max_gap_ms
                check = rest[1] if len(rest) > 1 else shipped.cold_check_every
                cfg = dataclasses.replace(shipped, warm_start=True, warm_t_start=t, warm_steps=steps,
                                          warm_pose_max_gap_ms=pose_gap, cold_check_every=check)  # fmt: skip
            joints = track_sequences(model, cfg, rays[frames], conf[frames], root[frames] if given else None,
                                     stream_of, fps)  # fmt: skip
            s = score(joints, frames)
            parts = spec.split(":")
            label = "cold" if spec == "cold" else f"warm t={parts[0]}, {parts[1]} steps" + (
                f", pose within {parts[2]} ms" if len(parts) > 2 else "") + (
                (f", cold check every {parts[3]} frames" if parts[3] != "0" else ", no cold check")
                if len(parts) > 3 else "")  # fmt: skip
            print(f"| {fps:g} Hz | {'given' if given else '2D + K'} | {label} | {s['mpjpe']:.1f} | "
                  f"{s['first']:.1f} | {s['later']:.1f} | {s['root']:.0f} | {s['accel']:.2f} | {s['refused']:.1f} |",
                  flush=True)  # fmt: skip
