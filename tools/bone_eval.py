"""Single-frame bones: how often an estimate stretches or collapses a bone, and what keeping them costs.

V-H36M test persons (a fixed random draw), ``estimate()`` at 10 steps, ground-truth and
detector-like 2D, root given and estimated, bones held (the default) and free
(``SamplerConfig.bone_hold`` False). Prints MPJPE (pelvis-relative, mm), the share of persons with
any bone outside 0.8-1.25x its true length, the extreme bone ratios, and how many persons the node's
plausibility gate (:func:`pads_stream.stream.tracker.plausible`) would refuse.
Usage: python tools/bone_eval.py [--data DIR] [--samples 1000] [--all-refusals]
(--all-refusals: the gate over every test sample, exact 2D, root given, bones held)
"""

import argparse
import dataclasses

import numpy as np

from pads_stream.api import load_model
from pads_stream.data.datasets import DEFAULT_DATA, test_path
from pads_stream.geometry.camera import normalized_rays
from pads_stream.geometry.skeleton import bone_lengths
from pads_stream.stream.tracker import plausible

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--data", default=DEFAULT_DATA)
parser.add_argument("--samples", type=int, default=1000)
parser.add_argument("--steps", type=int, default=10)
parser.add_argument("--all-refusals", action="store_true")
args = parser.parse_args()
data = np.load(test_path(args.data))
model = load_model(backend="onnxruntime", threads=1)
shipped = model.sampler


def run(idx: np.ndarray, detected: bool, given: bool, hold: bool) -> dict[str, float]:
    model.sampler = dataclasses.replace(shipped, bone_hold=hold)
    kp = data["kp2d_det" if detected else "kp2d"][idx]
    conf = data["conf_det"][idx] if detected else np.ones(kp.shape[:2])
    K, gt = data["K"][idx], data["gt"][idx]
    x, root = model.estimate(kp, K, data["root"][idx] if given else None, conf, steps=args.steps, return_root=True)
    ratio = bone_lengths(x) / bone_lengths(gt)
    out = ((ratio < 0.8) | (ratio > 1.25)).any(axis=1)
    rays = normalized_rays(kp, K)[..., :2]
    return {
        "mpjpe": 1000 * np.linalg.norm(x - gt, axis=-1).mean(),
        "out": 100 * out.mean(),
        "lo": ratio.min(),
        "hi": ratio.max(),
        "refused": int((~plausible(x, root, rays, conf)).sum()),
    }


if args.all_refusals:
    idx = np.arange(len(data["gt"]))
    refused = sum(run(idx[i : i + 2048], False, True, True)["refused"] for i in range(0, len(idx), 2048))
    print(f"V-H36M, all {len(idx)} test persons, exact 2D, root given, {args.steps} steps: {refused} refused")
else:
    idx = np.sort(np.random.default_rng(0).choice(len(data["gt"]), args.samples, replace=False))
    print(f"V-H36M, {args.samples} test persons, {args.steps} steps, estimate()\n")
    print("| 2D | root | bones | MPJPE mm | persons with a bone outside 0.8-1.25x % | bone ratio min / max | refused |")
    print("|---|---|---|---|---|---|---|")
    for detected in (False, True):
        for given in (True, False):
            for hold in (False, True):
                s = run(idx, detected, given, hold)
                print(f"| {'detected' if detected else 'GT'} | {'given' if given else 'estimated'} | "
                      f"{'held' if hold else 'free'} | {s['mpjpe']:.1f} | {s['out']:.1f} | "
                      f"{s['lo']:.2f} / {s['hi']:.2f} | {s['refused']} |")  # fmt: skip
