"""Choose the node's warm start on held-out sequences: S8's held-out takes (never S9/S11).

Each person is estimated frame after frame as the node does (``PoseModel.lift``, the estimation core, with
the previous pose as ``init`` from ``t_start``; root given), through fixed virtual cameras at
25 Hz; a cold row estimates every frame from scratch. Prints MPJPE (mean, first second, after
two seconds) and the acceleration error. Usage: python tools/warm_start_eval.py [--data DIR]
"""

import argparse

import numpy as np

from pads_stream.api import load_model
from pads_stream.camera import normalized_rays
from pads_stream.data import DEFAULT_DATA
from pads_stream.metrics import mpjpe
from pads_stream.replay import holdout_sequences

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--data", default=DEFAULT_DATA)
parser.add_argument("--streams", type=int, default=12, help="virtual cameras, 2 persons each")
parser.add_argument("--frames", type=int, default=150)
parser.add_argument("--grid", default="200:5,300:5,300:8,300:10,400:10,500:10", help="t_start:steps pairs")
args = parser.parse_args()
seq = holdout_sequences(args.data, args.streams, args.frames)
kp, K, root, gt = seq["kp2d"], seq["K"], seq["root"], seq["gt"]
F, P = kp.shape[:2]
rays, conf = normalized_rays(kp, K)[..., :2], np.ones(kp.shape[:-1])
model = load_model(backend="onnxruntime")


def chain(t_start: int | None, steps: int) -> tuple[np.ndarray, float]:
    """Per-frame MPJPE (F,) and the acceleration error (mm/frame²) of one run over the sequences."""
    x, out = None, []
    for f in range(F):
        warm = {} if x is None or t_start is None else {"init": x, "t_start": t_start}
        x = model.lift(rays[f], conf, root[f], steps=steps if warm else 10, **warm)[0]
        out.append(x)
    out = np.array(out)
    accel = np.linalg.norm(np.diff(out, 2, axis=0) - np.diff(gt, 2, axis=0), axis=-1).mean()
    return np.array([mpjpe(o, g).mean() for o, g in zip(out, gt, strict=True)]), 1000 * float(accel)


print(f"S8 held-out takes, {args.streams} cameras x 2 persons x {F} frames at 25 Hz, root given, exact 2D\n")
print("| start | steps | MPJPE | first second | after 2 s | accel. error mm/frame² |\n|---|---|---|---|---|---|")
for spec in ["cold:10"] + args.grid.split(","):
    t, steps = spec.split(":")
    e, accel = chain(None if t == "cold" else int(t), int(steps))
    print(f"| {t if t == 'cold' else f'warm from t={t}'} | {steps} | {e.mean():.1f} | {e[:25].mean():.1f} | "
          f"{e[50:].mean():.1f} | {accel:.1f} |", flush=True)  # fmt: skip
