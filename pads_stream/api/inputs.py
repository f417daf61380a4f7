"""Validation of the API's inputs: every argument checked, each mistake named in one ValueError.

Shapes and units as :class:`pads_stream.api.PoseModel` documents them: pixels for keypoints and
intrinsics, metres for roots, bones and translations.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..geometry.camera import check_intrinsics
from ..geometry.layout import get as get_layout
from ..geometry.skeleton import NUM_JOINTS, STATURE_RANGE_M


def as_array(value: object, name: str, shape: tuple[int | None, ...]) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric array, got {type(value).__name__} ({err})") from None
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape, strict=True)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    return arr


def as_int(value: object, name: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < lo or (hi and value > hi):
        raise ValueError(f"{name} must be an integer in [{lo}, {hi or '∞'}], got {value!r}")
    return int(value)


def check_keypoints(kp2d: object, conf: object | None, layout: str) -> tuple[np.ndarray, np.ndarray]:
    lay = get_layout(layout)
    kp = as_array(kp2d, "kp2d", (None, lay.count, 2))
    c = np.ones(kp.shape[:2]) if conf is None else as_array(conf, "conf", (kp.shape[0], lay.count))
    if not np.all(np.isfinite(c)) or np.any((c < 0) | (c > 1)):
        raise ValueError("conf must be finite and within [0, 1]")
    bad = ~np.isfinite(kp).all(axis=-1) & (c > 0)
    if bad.any():
        n, j = np.argwhere(bad)[0]
        raise ValueError(f"kp2d has NaN or infinite values where conf > 0 (sample {n}, joint {j})")
    if np.any(np.abs(kp[c > 0]) > 1e6):
        raise ValueError("kp2d has coordinates beyond 1e6 px")
    kp, c = lay.to_h36m(np.where(c[..., None] > 0, kp, 0.0), c)
    return kp, c


def check_camera(K: object, n: int) -> np.ndarray:
    K = as_array(K, "K", (None, 3, 3)) if np.ndim(K) == 3 else as_array(K, "K", (3, 3))
    K = np.broadcast_to(K, (n, 3, 3)) if K.ndim == 2 else K
    if K.shape[0] != n:
        raise ValueError(f"K must have shape (3, 3) or ({n}, 3, 3), got {K.shape}")
    check_intrinsics(K, "K")
    if np.abs(K[:, 2] - [0.0, 0.0, 1.0]).max() > 1e-6:
        hint = (
            " (it looks transposed: the principal point is in the bottom row)"
            if np.any(np.abs(K[:, 2, :2]) > 1)
            else ""
        )
        raise ValueError(f"K's bottom row must be [0, 0, 1]{hint}")
    return K


def check_extrinsics(extrinsics: object, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(R (N, 3, 3), t (N, 3)); rows that are NaN (persons without extrinsics) stay NaN."""
    if not isinstance(extrinsics, tuple | list) or len(extrinsics) != 2:
        raise ValueError("extrinsics must be a pair (R, t)")
    R = np.broadcast_to(as_array(extrinsics[0], "extrinsics R", (None,) * np.ndim(extrinsics[0])), (n, 3, 3))
    t = np.broadcast_to(as_array(extrinsics[1], "extrinsics t", (None,) * np.ndim(extrinsics[1])), (n, 3))
    given = np.isfinite(R).all(axis=(1, 2)) & np.isfinite(t).all(axis=1)
    err = np.abs(np.einsum("nij,nkj->nik", R[given], R[given]) - np.eye(3)).max(initial=0.0)
    if err > 1e-3 or np.any(np.linalg.det(R[given]) < 0) or np.any(np.abs(t[given]) > 1e4):
        raise ValueError("extrinsics R must be a rotation (orthonormal, det +1) and t finite metres")
    return R, t


def check_bones(bones: object, n: int) -> np.ndarray:
    b = as_array(bones, "bones", (n, NUM_JOINTS - 1))
    known = np.isfinite(b).all(axis=1)
    if not (known | np.isnan(b).all(axis=1)).all():
        raise ValueError("bones: each row must be 16 finite lengths in metres, or all NaN (unknown)")
    if np.any((b[known] < 0.02) | (b[known] > 1.0)):
        raise ValueError("bones must be metres in [0.02, 1.0] (a hip bone is ~0.13 m, a shin ~0.45 m; millimetres?)")
    return b


def check_stature(stature_m: object, n: int) -> np.ndarray:
    """(n,) statures in metres (a number is every person's); NaN: unknown."""
    s = np.broadcast_to(np.asarray(stature_m, dtype=np.float64), (n,)) if np.ndim(stature_m) == 0 else (
        as_array(stature_m, "stature_m", (n,)))  # fmt: skip
    lo, hi = STATURE_RANGE_M
    if np.any(np.isinf(s)) or np.any((s < lo) | (s > hi)):
        raise ValueError(f"stature_m is each person's standing height in metres, {lo}-{hi} (NaN: unknown)")
    return s


def check_root(root: object, n: int) -> np.ndarray:
    r = as_array(root, "root", (n, 3))
    if not np.all(np.isfinite(r)) or np.any(np.abs(r) > 1e4):
        raise ValueError("root must be finite metres within 10 km of the camera")
    if np.any(r[:, 2] <= 0):
        raise ValueError(f"root depth must be > 0 m (camera looks along +z), got min {r[:, 2].min():.3g}")
    if np.any(r[:, 2] > 100):
        warnings.warn(f"root depth up to {r[:, 2].max():.0f} m: millimetres instead of metres?", RuntimeWarning,
                      stacklevel=3)  # fmt: skip
    return r


def per_view(value: object, name: str, shape: tuple[int, ...], v: int, n: int) -> np.ndarray:
    """A per-view array (V, *shape) or per view and person (V, N, *shape) as (V, N, *shape)."""
    nd = np.ndim(value)
    if nd == len(shape) + 1:
        arr = as_array(value, name, (v, *shape))
        return np.broadcast_to(arr[:, None], (v, n, *shape))
    if nd == len(shape) + 2:
        return as_array(value, name, (v, n, *shape))
    dims = ", ".join(map(str, shape))
    raise ValueError(f"{name} must have shape ({v}, {dims}) or ({v}, {n}, {dims}), got {np.shape(value)}")
