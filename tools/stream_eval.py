"""Streams on two domains: the node's tracker against a cold single-frame ``estimate()`` of the same frames.

Domains (never the prior's training takes for the final table; ``--split tune`` for choosing defaults):

- Human3.6M: ``--split test`` S9/S11 takes, ``--split tune`` S8's held-out takes; 25 Hz and
  12.5 Hz (every other frame).
- Bandai Namco BVH (other actors and skeleton, faster motion: dance, fight, run): ``--split test``
  dataset-1 (177 clips), ``--split tune`` dataset-2 (walk, turn, run, wave); 30 Hz as recorded,
  60 Hz (joints linearly interpolated between frames), and 7.5 Hz (every 4th frame: about 30 mm
  of joint motion between frames, a slow detector on fast motion).

Each through fixed virtual cameras (``--streams`` x 2 persons, ``pads_stream.apps.recordings.through_camera``),
exact and detector-like 2D (5 px noise, 5 % outliers), root given and estimated (2D + K; ``--roots floor``:
estimated with the camera's extrinsics, so the floor sets it; ``--roots stature``: estimated, with each
person's true stature sent, as a user types it in). The node
runs its own tracker frame by frame (:func:`pads_stream.stream.tracker.track_sequences`, the node's config
file and ``--set`` overrides); the cold rows call ``estimate()`` on every frame. Prints MPJPE
(pelvis-relative), root error, acceleration error (mm/frame², pelvis-relative), refusals, and for
the bones after the first second: the share of published bones within ±10 % of the person's true
length and the mean per-track coefficient of variation of a bone.
Usage: python tools/stream_eval.py [--data DIR] [--split test|tune] [--set key=value ...] [--variant NAME:key=value,...]
"""

import argparse
import json
from pathlib import Path

import numpy as np

from pads_stream.api import load_model
from pads_stream.apps.recordings import through_camera
from pads_stream.common.config import from_dict, load_json, to_dict
from pads_stream.common.files import shipped
from pads_stream.data.bvh import JointMapping, load_bvh_h36m
from pads_stream.data.datasets import (
    DEFAULT_DATA,
    HOLDOUT_TAKES,
    TEST_SUBJECTS,
    h36m_path,
    load_positions_3d,
    split_holdout,
    to_17,
)
from pads_stream.geometry.camera import normalized_rays
from pads_stream.geometry.skeleton import bone_lengths, stature_m
from pads_stream.stream.node import DEFAULT_CONFIG, NodeConfig
from pads_stream.stream.tracker import track_sequences

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--data", default=DEFAULT_DATA)
parser.add_argument("--split", choices=("test", "tune"), default="test")
parser.add_argument("--streams", type=int, default=8, help="virtual cameras, 2 persons each")
parser.add_argument("--frames", type=int, default=150)
parser.add_argument("--set", nargs="*", default=[], help="node config overrides for the node rows, key=value (JSON)")
parser.add_argument("--variant", nargs="*", default=[], help="more node rows: NAME:key=value,key=value")
parser.add_argument("--domains", default="h36m,bandai", help="h36m, bandai, or one domain's name, e.g. 'Bandai 7.5 Hz'")
parser.add_argument("--inputs", default="exact,detected")
parser.add_argument(
    "--roots",
    default="given,estimated",
    help="given, estimated (2D + K), floor (estimated with the camera's extrinsics: the floor sets it), "
    "stature (estimated, each person's stature sent, as a VR headset asks it)",
)
args = parser.parse_args()


def overrides(pairs: list[str]) -> dict:
    return {k: json.loads(v) for k, v in (p.split("=", 1) for p in pairs if p)}


node_defaults = load_json(NodeConfig, str(DEFAULT_CONFIG))
node_cfg = from_dict(NodeConfig, {**to_dict(node_defaults), **overrides(args.set)})
rows = [("node", node_cfg)] + [
    (name, from_dict(NodeConfig, {**to_dict(node_cfg), **overrides(spec.split(","))}))
    for name, spec in (v.split(":", 1) for v in args.variant)
]
model = load_model(backend="onnxruntime", threads=1)


def h36m_takes() -> list[np.ndarray]:
    data = load_positions_3d(h36m_path(args.data))
    if args.split == "test":
        return [x for s in TEST_SUBJECTS for x in data[s].values()]
    _, held = split_holdout(data, HOLDOUT_TAKES)
    return [x for takes in held.values() for x in takes.values()]


def bandai_takes() -> list[np.ndarray]:
    folder = Path(args.data, "bandai", "dataset-1" if args.split == "test" else "dataset-2")
    files = sorted(folder.glob("*.bvh"))
    pick = np.random.default_rng(1).choice(len(files), min(len(files), 2 * args.streams), replace=False)
    mapping = JointMapping.from_json(shipped("configs", "bandai_to_h36m.json"))
    return [to_17(load_bvh_h36m(files[i], mapping)[0]) for i in sorted(pick)]


def upsample(seq: np.ndarray) -> np.ndarray:
    """(F, 17, 3) at twice the rate: each gap's midpoint between its frames."""
    mid = 0.5 * (seq[1:] + seq[:-1])
    out = np.empty((2 * len(seq) - 1, *seq.shape[1:]), seq.dtype)
    out[0::2], out[1::2] = seq, mid
    return out


def domains() -> list[tuple[str, list[np.ndarray], float]]:
    named = [d for d in args.domains.split(",") if " " in d]
    out = []
    if "h36m" in args.domains or "Human" in args.domains:
        takes = h36m_takes()
        out += [("Human3.6M 25 Hz", takes, 25.0), ("Human3.6M 12.5 Hz", [x[::2] for x in takes], 12.5)]
    if "bandai" in args.domains or "Bandai" in args.domains:
        takes = bandai_takes()
        out += [
            ("Bandai 30 Hz", takes, 30.0),
            ("Bandai 60 Hz", [upsample(x) for x in takes], 60.0),
            ("Bandai 7.5 Hz", [x[::4] for x in takes], 7.5),
        ]
    return [d for d in out if not named or d[0] in named]


def score(joints: np.ndarray, gt: np.ndarray, root: np.ndarray, fps: float) -> dict[str, float]:
    """joints (F, P, 17, 3) absolute, NaN where refused; gt (F, P, 17, 3) pelvis-relative; root (F, P, 3)."""
    rel = joints - joints[:, :, :1]
    e = 1000 * np.linalg.norm(rel - gt, axis=-1).mean(axis=-1)
    accel = np.linalg.norm(np.diff(rel, 2, axis=0) - np.diff(gt, 2, axis=0), axis=-1)
    later = int(round(fps))  # after the first second
    bones, true = bone_lengths(rel[later:]), bone_lengths(gt[later:])
    with np.errstate(invalid="ignore"):
        within = np.abs(bones / true - 1) <= 0.1
        cv = np.nanstd(bones, axis=0) / np.nanmean(bones, axis=0)  # (P, 16) per track and bone
    published = np.isfinite(bones).all(axis=-1)
    return {
        "mpjpe": np.nanmean(e),
        "root": 1000 * np.nanmean(np.linalg.norm(joints[:, :, 0] - root, axis=-1)),
        "accel": 1000 * np.nanmean(accel),
        "refused": 100 * np.isnan(e).mean(),
        "within": 100 * within[published].mean(),
        "cv": 100 * np.nanmean(cv),
    }


print(f"split {args.split}: {args.streams} cameras x 2 persons x {args.frames} frames per domain and rate; "
      f"node config: {DEFAULT_CONFIG.name}{' with ' + ' '.join(args.set) if args.set else ''}\n")  # fmt: skip
print("| domain | 2D | root | run | MPJPE mm | root err mm | accel mm/f² | refused % | bones ±10 % | bone CV % |")
print("|---|---|---|---|---|---|---|---|---|---|")
for name, takes, fps in domains():
    for detected in [kind == "detected" for kind in args.inputs.split(",")]:
        rec = through_camera(takes, args.streams, 2, args.frames, np.random.default_rng(0), detected, fps)
        by_frame = lambda a: np.swapaxes(a, 0, 1).reshape(args.frames, 2 * args.streams, *a.shape[3:])  # noqa: E731
        kp, conf, gt, root = by_frame(rec.kp2d), by_frame(rec.conf), by_frame(rec.gt), by_frame(rec.root)
        K = np.repeat(np.swapaxes(rec.K, 0, 1), 2, axis=1)  # (F, P, 3, 3)
        rays = normalized_rays(kp, K)[..., :2]
        stream_of = np.arange(2 * args.streams) // 2
        R, t = np.repeat(rec.R[:, 0], 2, axis=0), np.repeat(rec.t[:, 0], 2, axis=0)  # (P, 3, 3), (P, 3): fixed cameras
        for how in args.roots.split(","):
            given, ext = how == "given", (R, t) if how == "floor" else None
            stature = stature_m(np.median(bone_lengths(gt), axis=0)) if how == "stature" else None  # (P,) m
            flat = lambda a: a.reshape(-1, *a.shape[2:])  # noqa: E731
            ext_flat = None if ext is None else (np.tile(R, (args.frames, 1, 1)), np.tile(t, (args.frames, 1)))
            heights = None if stature is None else np.tile(stature, args.frames)
            x, r = model.estimate(flat(kp), flat(K), flat(root) if given else None, flat(conf), return_root=True,
                                  extrinsics=ext_flat, stature_m=heights)  # fmt: skip
            cold = (x + r[:, None]).reshape(gt.shape)
            results = [("cold estimate()", cold)]
            sent_root = root if given else None
            for label, cfg in rows:
                results.append(
                    (label, track_sequences(model, cfg, rays, conf, sent_root, stream_of, fps, ext, stature))
                )
            for label, joints in results:
                s = score(joints, gt, root, fps)
                print(f"| {name} | {'detected' if detected else 'exact'} | {how} | "
                      f"{label} | {s['mpjpe']:.1f} | {s['root']:.0f} | {s['accel']:.1f} | {s['refused']:.2f} | "
                      f"{s['within']:.1f} | {s['cv']:.1f} |", flush=True)  # fmt: skip
