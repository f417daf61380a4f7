"""Measure the body-size prior of the node's root estimation on training views (never S9/S11).

Prints the mean H36M-17 bone lengths (m) and the foreshortening factor k: the median of
Z · Σ ℓ2d / Σ ℓ3d over virtual-rig views, where ℓ2d are bone lengths in normalised image
coordinates and ℓ3d the mean skeleton's. These are the constants of ``pads_stream.geometry.rootfind``.
Usage: python tools/calibrate_root_prior.py [--data DIR]
"""

import argparse

import numpy as np

from pads_stream.data.datasets import DEFAULT_DATA, h36m_path, h36m_poses
from pads_stream.data.virtual_rig import random_views
from pads_stream.geometry.camera import normalized_rays
from pads_stream.geometry.skeleton import H36M_PARENTS, bone_lengths

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--data", default=DEFAULT_DATA, help="data folder holding h36m/positions_3d_25hz.npz")
poses = h36m_poses(h36m_path(parser.parse_args().data), ("S1", "S5", "S6", "S7"), stride=10)
mean_bones = bone_lengths(poses).mean(axis=0)
v = random_views(poses, np.random.default_rng(0))
rays = normalized_rays(v.kp2d, v.K)[..., :2]
l2d = np.linalg.norm(rays[:, 1:] - rays[:, list(H36M_PARENTS[1:])], axis=-1).sum(axis=1)
k = np.median(v.root[:, 2] * l2d / mean_bones.sum())
spread = np.percentile(v.root[:, 2] * l2d / mean_bones.sum() / k, [10, 90])
print("MEAN_BONES_M =", np.round(mean_bones, 4).tolist())
print(f"FORESHORTENING = {k:.4f}  (10-90% of the ratio to it: {spread[0]:.2f}-{spread[1]:.2f})")
