"""Readers for the 2D keypoint files people have, as (frames, persons, 17, ·) arrays for replay.

- COCO keypoint results JSON (what COCO-style detectors write: a list of ``{image_id,
  keypoints: [x, y, v] * 17, score}``): one frame per image id in sorted order, layout ``coco17``.
- OpenPose JSON folders (one ``*_keypoints.json`` per frame, ``people[].pose_keypoints_2d``,
  BODY_25 or COCO-18): mapped to ``coco17``.
- VideoPose3D ``positions_2d`` npz (``{subject: {action: [per camera (F, 17, 2)]}}``, H36M-17
  order, pixels): one person, layout ``h36m17``.

Pixels throughout; confidence 0 marks a missing joint or a padded person. Person ids are the
order within each frame: these formats carry no track ids (the node re-associates persons by
reprojection).
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# OpenPose BODY_25 / COCO-18 joint index of each COCO-17 joint (nose, eyes, ears, shoulders,
# elbows, wrists, hips, knees, ankles; left before right).
OPENPOSE_TO_COCO = {
    25: (0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11),
    18: (0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10),
}
FORMATS = ("coco", "openpose", "vp3d")


@dataclass(frozen=True)
class Keypoints2D:
    """kp (F, M, 17, 2) px; conf (F, M, 17) in [0, 1] (0: missing or padding); layout of the joints."""

    kp: np.ndarray
    conf: np.ndarray
    layout: str


def _pad(frames: list[list[np.ndarray]], layout: str) -> Keypoints2D:
    """Frames of (17, 3) [x, y, conf] persons, padded to the largest person count."""
    m = max(1, max((len(f) for f in frames), default=1))
    arr = np.zeros((len(frames), m, 17, 3))
    for i, persons in enumerate(frames):
        for j, p in enumerate(persons):
            arr[i, j] = p
    conf = np.clip(np.nan_to_num(arr[..., 2]), 0.0, 1.0)
    return Keypoints2D(kp=np.where(conf[..., None] > 0, arr[..., :2], 0.0), conf=conf, layout=layout)


def read_coco_results(path: str | Path) -> Keypoints2D:
    """A COCO keypoint results JSON list. The third value per joint is a detector score in [0, 1]
    (used as the confidence) or an annotation flag 0/1/2 (0: missing, else confidence 1)."""
    items = json.loads(Path(path).read_text())
    if not isinstance(items, list) or not all(isinstance(d, dict) and "keypoints" in d for d in items):
        raise ValueError(f"{path}: expected a COCO results list of {{image_id, keypoints}} maps")
    by_image: dict = {}
    for n, d in enumerate(items):
        try:
            kp = np.asarray(d["keypoints"], float).reshape(17, 3)
        except (TypeError, ValueError):
            raise ValueError(f"{path}: item {n}: keypoints must be 51 numbers (17 x [x, y, score])") from None
        kp[:, 2] = (kp[:, 2] > 0) if kp[:, 2].max() > 1 else np.clip(kp[:, 2], 0, 1)
        by_image.setdefault(d["image_id"], []).append(kp)
    return _pad([by_image[k] for k in sorted(by_image)], "coco17")


def read_openpose_folder(folder: str | Path) -> Keypoints2D:
    """An OpenPose ``--write_json`` folder, frames in file-name order."""
    files = sorted(Path(folder).glob("*_keypoints.json"))
    if not files:
        raise ValueError(f"no OpenPose *_keypoints.json files in {folder}")
    frames = []
    for f in files:
        persons = []
        try:
            people = json.loads(f.read_text()).get("people", [])
            raws = [np.asarray(person["pose_keypoints_2d"], float).reshape(-1, 3) for person in people]
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"{f}: not an OpenPose keypoints file ({_what(err)})") from None
        for raw in raws:
            if len(raw) not in OPENPOSE_TO_COCO:
                raise ValueError(f"{f}: {len(raw)} joints; BODY_25 or COCO-18 expected")
            persons.append(raw[list(OPENPOSE_TO_COCO[len(raw)])])
        frames.append(persons)
    return _pad(frames, "coco17")


def read_videopose3d(path: str | Path, subject: str, action: str, camera: int) -> Keypoints2D:
    """One (subject, action, camera) sequence of a VideoPose3D ``positions_2d`` npz."""
    data = np.load(path, allow_pickle=True)["positions_2d"].item()
    try:
        seq = np.asarray(data[subject][action][camera], float)
    except (KeyError, IndexError) as err:
        raise ValueError(f"{path}: no {subject}/{action}/camera {camera} ({err})") from None
    if seq.ndim != 3 or seq.shape[1:] != (17, 2):
        raise ValueError(f"{path}: expected (F, 17, 2) H36M-17 keypoints, got {seq.shape}")
    return Keypoints2D(kp=seq[:, None], conf=np.ones(seq.shape[:2])[:, None], layout="h36m17")


def read(fmt: str, path: str | Path, subject: str = "S9", action: str = "Walking 1", camera: int = 0) -> Keypoints2D:
    """Read ``path`` in format ``fmt`` (one of FORMATS).

    Raises:
        ValueError: the file is missing, unreadable or malformed; the message names the file and
            what is wrong with it.
    """
    readers = {"coco": lambda: read_coco_results(path), "openpose": lambda: read_openpose_folder(path),
               "vp3d": lambda: read_videopose3d(path, subject, action, camera)}  # fmt: skip
    if fmt not in readers:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if not Path(path).exists():
        raise ValueError(f"{path}: no such file or folder")
    try:
        return readers[fmt]()
    except ValueError as err:
        if str(path) in str(err):
            raise
        raise ValueError(f"{path}: not a valid {fmt} file ({_what(err)})") from None
    except (OSError, KeyError, TypeError, IndexError, AttributeError, EOFError, pickle.UnpicklingError) as err:
        raise ValueError(f"{path}: not a valid {fmt} file ({_what(err)})") from None


def _what(err: Exception) -> str:
    """A short description of a parse error (never the file's content)."""
    if isinstance(err, json.JSONDecodeError):
        return f"JSON syntax error at line {err.lineno} column {err.colno}"
    if isinstance(err, KeyError):
        return f"missing key {err}"
    return f"{type(err).__name__}: {str(err)[:120]}"
