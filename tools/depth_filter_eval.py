"""Choose the node's depth filter on held-out sequences: S8's held-out takes (never S9/S11).

The sequences go through the node's own tracker (:func:`pads_stream.stream.tracker.track_sequences`:
warm starts, the depth filter, the plausibility gate) for 2D + K (root unknown), frame by frame,
through fixed virtual cameras (2 persons each) at 25 Hz and at 12.5 Hz (every other frame), exact
2D. Rows: the cold start (no tracking), the warm start without the filter, and the filter's
settings (``depth_filter_noise:depth_filter_accel``). Prints MPJPE (pelvis-relative), the root
error and the acceleration error of the pelvis-relative joints (as the listener scores the node).
Usage: python tools/depth_filter_eval.py [--data DIR] [--grid 0.03:1,...]
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
parser.add_argument("--grid", default="0.01:0.5,0.02:0.5,0.03:0.5,0.03:1,0.05:1,0.05:2", help="noise:accel pairs")
args = parser.parse_args()
seq = holdout_sequences(args.data, args.streams, args.frames)
kp, K, root, gt = seq["kp2d"], seq["K"], seq["root"], seq["gt"]
F, P = kp.shape[:2]
rays, conf = normalized_rays(kp, K)[..., :2], np.ones(kp.shape[:-1])
shipped = load_json(NodeConfig, str(DEFAULT_CONFIG))  # a NodeConfig is the tracker's config too
model = load_model(backend="onnxruntime", threads=1)

print(f"S8 held-out takes, {args.streams} cameras x 2 persons x {F} frames, 2D + K (root unknown), exact 2D, "
      f"the node's tracker (warm from t={shipped.warm_t_start} with {shipped.warm_steps} steps)\n")  # fmt: skip
print("| rate | depth filter (noise : accel 1/s²) | MPJPE | root error | accel. error mm/frame² | refused % |")
print("|---|---|---|---|---|---|")
for fps, frames in ((25.0, np.arange(F)), (12.5, np.arange(0, F, 2))):
    for spec in ["cold start", "off", *args.grid.split(",")]:
        if spec in ("cold start", "off"):
            cfg = dataclasses.replace(shipped, warm_start=spec == "off", depth_filter=False)
        else:
            noise, accel = map(float, spec.split(":"))
            cfg = dataclasses.replace(shipped, depth_filter=True, depth_filter_noise=noise, depth_filter_accel=accel)
        joints = track_sequences(model, cfg, rays[frames], conf[frames], None, np.arange(P) // 2, fps)
        rel, g = joints - joints[:, :, :1], gt[frames]
        e = 1000 * np.linalg.norm(rel - g, axis=-1).mean(axis=-1)
        acc = 1000 * np.nanmean(np.linalg.norm(np.diff(rel, 2, axis=0) - np.diff(g, 2, axis=0), axis=-1))
        root_err = 1000 * np.nanmean(np.linalg.norm(joints[:, :, 0] - root[frames], axis=-1))
        refused = 100 * np.isnan(e).mean()
        print(f"| {fps:g} Hz | {spec} | {np.nanmean(e):.1f} | {root_err:.0f} | {acc:.2f} | {refused:.1f} |", flush=True)
