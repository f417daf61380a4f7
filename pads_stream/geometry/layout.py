"""Input keypoint layouts: one data file per layout (``pads_stream/geometry/layouts/<name>.json``).

A layout names a sender's joints in order and says how each of the prior's Human3.6M-17 joints
is made from them (the mean of its source joints, with the lowest of their confidences, so a
missing source makes the joint missing). The wire decoder, the API and the protocol schema all
read these records: a new detector layout is one new file. Layouts shipped: ``h36m17`` (the
prior's own order), ``coco17``, ``halpe26``, ``coco_wholebody133`` (its body part).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

import numpy as np

from ..common.files import package_file
from .skeleton import H36M_JOINTS


@dataclass(frozen=True)
class Layout:
    """A keypoint layout: its joints in the sender's order and their mapping to H36M-17."""

    name: str
    description: str
    joints: tuple[str, ...]
    sources: tuple[tuple[int, ...], ...]  # per H36M-17 joint, the indices of its source joints
    left: frozenset[int]  # the person's own left joints, indices in ``joints``
    right: frozenset[int]

    @property
    def count(self) -> int:
        """Joints per person in this layout."""
        return len(self.joints)

    def to_h36m(self, kp: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints of this layout in H36M-17 order.

        Args:
            kp: (..., J, D) coordinates in this layout (pixels for 2D, metres for 3D).
            conf: (..., J) confidences in [0, 1]; 0 marks a missing joint.

        Returns:
            (kp (..., 17, D), conf (..., 17)): a joint is the mean of its sources and takes their
            lowest confidence (a missing source makes it missing; its coordinates are then ignored).
        """
        if kp.shape[-2] != self.count or conf.shape[-1] != self.count:
            raise ValueError(f"{self.name} needs {self.count} joints, got kp {kp.shape} conf {conf.shape}")
        if self.sources == tuple((j,) for j in range(17)):
            return kp, conf
        out_kp = np.stack([kp[..., list(src), :].mean(axis=-2) for src in self.sources], axis=-2)
        out_conf = np.stack([conf[..., list(src)].min(axis=-1) for src in self.sources], axis=-1)
        return out_kp, out_conf


def _read(name: str) -> Layout:
    path = package_file("geometry", "layouts", f"{name}.json")
    doc = json.loads(path.read_text())
    joints = tuple(doc["joints"])
    index = {j: k for k, j in enumerate(joints)}
    if doc["name"] != name or len(index) != len(joints) or list(doc["to_h36m"]) != list(H36M_JOINTS):
        raise ValueError(f"{path}: name, unique joints and a source list per H36M-17 joint (in order) are required")
    sources = tuple(tuple(index[s] for s in doc["to_h36m"][h]) for h in H36M_JOINTS)
    return Layout(name, doc["description"], joints, sources, frozenset(index[j] for j in doc["left"]),
                  frozenset(index[j] for j in doc["right"]))  # fmt: skip


NAMES = ("h36m17", "coco17", "halpe26", "coco_wholebody133")


@cache
def layouts() -> dict[str, Layout]:
    """Every shipped layout by name (read once)."""
    return {name: _read(name) for name in NAMES}


def get(name: str) -> Layout:
    """The layout called ``name``; ValueError naming the supported ones otherwise."""
    if name not in NAMES:
        raise ValueError(f"layout must be one of {NAMES}, got {name!r}")
    return layouts()[name]


def to_h36m(kp: np.ndarray, conf: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """``get(layout).to_h36m(kp, conf)``."""
    return get(layout).to_h36m(kp, conf)
