"""Other bodies: the prior on V-H36M persons whose bones are rescaled (the test set has one skeleton).

Each test person's bones are rescaled through the skeleton's forward kinematics (joint angles kept):
all x0.92 and x1.08, the limbs (arms and legs) x0.9 and x1.1, the trunk (spine, neck, head, hips and
shoulders) x1.1; the new pose is projected through the sample's own camera at its root (exact 2D)
and estimated monocularly with the root given, 10 steps. Each error is divided by the body's size
(the mean of its bone factors) so that a bigger body is not blamed for its size. Prints MPJPE (mm,
size-normalised) per body and its difference to the as-trained body, per model.
Usage: python tools/body_eval.py [--data DIR] [--samples 200] [--model CKPT ...]
"""

import argparse

import numpy as np

from pads_stream.api import load_model
from pads_stream.data.datasets import DEFAULT_DATA, PROPORTION_GROUPS, test_path
from pads_stream.geometry.camera import project
from pads_stream.geometry.skeleton import H36M_PARENTS

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--data", default=DEFAULT_DATA)
parser.add_argument("--samples", type=int, default=200)
parser.add_argument("--model", nargs="*", default=[None], help="checkpoints (default: the shipped model)")
parser.add_argument("--backend", default="auto")
args = parser.parse_args()

ARMS, LEGS, TRUNK = PROPORTION_GROUPS
BODIES = {"as trained": {}, "all x0.92": {"all": 0.92}, "all x1.08": {"all": 1.08},
          "limbs x0.9": {"limbs": 0.9}, "limbs x1.1": {"limbs": 1.1}, "trunk x1.1": {"trunk": 1.1}}  # fmt: skip


def factors(body: dict[str, float]) -> np.ndarray:
    """(17,) a factor per bone, indexed by the joint it ends at (index 0 unused)."""
    f = np.full(17, body.get("all", 1.0))
    f[list(ARMS + LEGS)] *= body.get("limbs", 1.0)
    f[list(TRUNK)] *= body.get("trunk", 1.0)
    return f


def rescaled(gt: np.ndarray, f: np.ndarray) -> np.ndarray:
    out = np.zeros_like(gt)
    for j in range(1, 17):
        p = H36M_PARENTS[j]
        out[:, j] = out[:, p] + f[j] * (gt[:, j] - gt[:, p])
    return out


data = np.load(test_path(args.data))
idx = np.sort(np.random.default_rng(0).choice(len(data["gt"]), args.samples, replace=False))
gt0, K, root = data["gt"][idx].astype(np.float64), data["K"][idx].astype(np.float64), data["root"][idx]
print(f"V-H36M, {args.samples} test persons, bones rescaled, exact 2D, root given, 10 steps; MPJPE (mm) / body size\n")
print("| model | " + " | ".join(BODIES) + " |")
print("|---|" + "---|" * len(BODIES))
for path in args.model:
    model = load_model(path, backend=args.backend)
    errs = {}
    for name, body in BODIES.items():
        f = factors(body)
        gt = rescaled(gt0, f)
        kp = project(gt + root[:, None], K)
        x = model.estimate(kp, K, root, steps=10)
        errs[name] = 1000 * np.linalg.norm(x - gt, axis=-1).mean() / f[1:].mean()
    base = errs["as trained"]
    cells = [f"{base:.1f}"] + [f"{e:.1f} ({e - base:+.1f})" for n, e in errs.items() if n != "as trained"]
    print(f"| {path or 'shipped'} | " + " | ".join(cells) + " |", flush=True)
