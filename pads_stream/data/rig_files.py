"""Rig calibration files: what ``pads-stream calibrate`` writes and ``pads-stream node --rig-calibration``
reads — per member stream of a rig, its camera's K, R, t and clock, in one JSON file.

Format ``pads-stream-rig/1``::

    {"format": "pads-stream-rig/1", "rig": "studio", "world": "floor" | "camera0",
     "floor_determined": bool, "scale": {"source": "height" | "baseline" | "prior", "sd": 0.04, "height_m": 1.75},
     "cameras": [{"stream": "cam0", "K": 3x3, "R": 3x3, "t": [3], "offset_ns": int, "epoch_ns": int,
                  "drift_ppm": float, "residual_px": float, "state": "ok" | "replaced" | "failed"}, ...]}

Units: K pixels; X_cam = R · X_world + t, metres (world Z up, floor z = 0 when ``world`` is
``floor``); a stamp t of the camera's clock is ``t + offset_ns + drift_ppm·1e-6·(t − epoch_ns)`` on
the rig's (camera 0's) clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..geometry.selfcalib import RigCalibration

FORMAT = "pads-stream-rig/1"


@dataclass(frozen=True)
class CameraCalibration:
    """One member stream's calibration: K (3, 3) px, R (3, 3), t (3,) m, its clock, the rig it belongs to."""

    rig: str
    stream: str
    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    offset_ns: int
    epoch_ns: int
    drift_ppm: float
    state: str

    def reference_ns(self, t_ns: int) -> int:
        """A stamp of this camera's clock on the rig's clock, ns."""
        return int(t_ns + self.offset_ns + round(self.drift_ppm * 1e-6 * (t_ns - self.epoch_ns)))


def save(path: str | Path, rig: str, streams: list[str], K: np.ndarray, cal: RigCalibration) -> None:
    """Write ``cal`` (cameras in the order of ``streams``, intrinsics ``K`` (V, 3, 3)) for rig ``rig``."""
    if len(streams) != len(cal.R) or len(set(streams)) != len(streams):
        raise ValueError(f"one distinct stream name per camera: {len(cal.R)} cameras, streams {streams}")
    cameras = [{"stream": s, "K": np.asarray(K[v]).tolist(), "R": cal.R[v].tolist(), "t": cal.t[v].tolist(),
                "offset_ns": int(cal.offset_ns[v]), "epoch_ns": int(cal.epoch_ns[v]),
                "drift_ppm": float(cal.drift_ppm[v]), "residual_px": float(cal.residual_px[v]), "state": cal.state[v]}
               for v, s in enumerate(streams)]  # fmt: skip
    doc = {
        "format": FORMAT,
        "rig": rig,
        "world": cal.world,
        "floor_determined": cal.floor_determined,
        "scale": {"source": cal.scale_source, "sd": cal.scale_sd, "height_m": cal.height_m},
        "cameras": cameras,
    }
    Path(path).write_text(json.dumps(doc, indent=1) + "\n")


def load(path: str | Path) -> dict[str, CameraCalibration]:
    """Read a rig file -> {stream: CameraCalibration}; a bad file raises ValueError naming what is wrong."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable rig calibration file ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} file (pads-stream calibrate writes one)")
    rig = doc.get("rig")
    if not isinstance(rig, str) or not rig:
        raise ValueError(f"{path}: 'rig' must name the rig")
    out = {}
    for i, c in enumerate(doc.get("cameras") or []):
        try:
            K, R, t = (np.asarray(c[k], dtype=np.float64) for k in ("K", "R", "t"))
            clock = int(c.get("offset_ns", 0)), int(c.get("epoch_ns", 0)), float(c.get("drift_ppm", 0.0))
            cam = CameraCalibration(rig, str(c["stream"]), K, R, t, *clock, str(c.get("state", "ok")))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: camera {i} is incomplete ({err})") from None
        finite = np.isfinite(K).all() and np.isfinite(R).all() and np.isfinite(t).all()
        if K.shape != (3, 3) or R.shape != (3, 3) or t.shape != (3,) or not finite:
            raise ValueError(f"{path}: camera {i} needs K (3, 3), R (3, 3) and t (3,), finite")
        if np.abs(R @ R.T - np.eye(3)).max() > 1e-3 or np.linalg.det(R) < 0:
            raise ValueError(f"{path}: camera {i}'s R is not a rotation")
        out[cam.stream] = cam
    if len(out) < 2:
        raise ValueError(f"{path}: a rig needs two or more cameras, found {len(out)}")
    return out
