"""Write the tiny example input files of ``docs/inputs.md`` into ``examples/``.

Two people (poses drawn from the shipped prior, so no dataset is redistributed) walk slowly for
10 frames in front of a camera with K = [[1145, 0, 512], [0, 1145, 515], [0, 0, 1]]; their exact
projections with 1 px of noise are written as a COCO keypoint results JSON, an OpenPose
``--write_json`` folder (BODY_25) and a VideoPose3D ``positions_2d`` npz (H36M-17, one person).

Usage: python tools/make_examples.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import pads_stream
from pads_stream.data.formats import OPENPOSE_TO_COCO
from pads_stream.geometry.camera import project

OUT = Path(__file__).resolve().parents[1] / "examples"
K = np.array([[1145.0, 0.0, 512.0], [0.0, 1145.0, 515.0], [0.0, 0.0, 1.0]])
FRAMES = 10
# COCO-17 from H36M-17: nose, eyes and ears at the head, then shoulders, elbows, wrists, hips, knees, ankles
H36M_OF_COCO = (9, 10, 10, 10, 10, 11, 14, 12, 15, 13, 16, 4, 1, 5, 2, 6, 3)


def people() -> np.ndarray:
    """(F, 2, 17, 2) pixels of two people 4.5 m away walking 2 cm a frame."""
    poses = pads_stream.load_model().generate(2, steps=50, seed=3)  # camera frame, pelvis-relative
    root = np.array([[-0.6, 0.1, 4.5], [0.6, 0.1, 4.8]])
    walk = np.arange(FRAMES)[:, None, None] * np.array([0.02, 0.0, 0.0])
    joints = poses[None] + root[None, :, None] + walk[:, :, None]
    rng = np.random.default_rng(0)
    return project(joints, K) + rng.normal(0, 1.0, (FRAMES, 2, 17, 2))


def main() -> None:
    kp = people()
    coco = kp[:, :, H36M_OF_COCO]  # (F, 2, 17, 2)
    OUT.mkdir(exist_ok=True)
    results = [{"image_id": f, "category_id": 1, "score": 0.98,
                "keypoints": np.c_[coco[f, m], np.full(17, 0.95)].round(2).ravel().tolist()}
               for f in range(FRAMES) for m in range(2)]  # fmt: skip
    (OUT / "coco_results.json").write_text(json.dumps(results) + "\n")
    folder = OUT / "openpose"
    folder.mkdir(exist_ok=True)
    for f in range(FRAMES):
        persons = []
        for m in range(2):
            body = np.zeros((25, 3))  # BODY_25; joints it has beyond COCO's (neck, mid-hip, feet) left at 0
            body[list(OPENPOSE_TO_COCO[25])] = np.c_[coco[f, m], np.full(17, 0.9)]
            persons.append({"person_id": [-1], "pose_keypoints_2d": body.round(2).ravel().tolist()})
        (folder / f"walk_{f:012d}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": persons}) + "\n")
    vp3d = {"S1": {"Walking": [kp[:, 0].astype(np.float32)]}}
    np.savez(OUT / "vp3d_positions_2d.npz", positions_2d=np.array(vp3d, dtype=object))
    print(f"wrote {OUT}/coco_results.json, {folder}/ ({FRAMES} files), {OUT}/vp3d_positions_2d.npz")


if __name__ == "__main__":
    main()
