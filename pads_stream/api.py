"""The public Python API: ``load_model()`` and the tasks of :class:`PoseModel`.

All arrays are numpy; poses are pelvis-relative in the camera frame (OpenCV axes: x right,
y down, z forward), metres; 2D keypoints are pixels. Every task runs the one sampler
(:func:`pads_stream.sampler.sample`) through the chosen backend. With the ``onnxruntime``
backend nothing here imports torch.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from . import multiview
from .backends import BACKENDS, Backend, OnnxRuntimeBackend, TensorRTBackend, TorchBackend
from .bones import fit_rays, held
from .budget import StepCost
from .camera import camera_to_world, check_intrinsics, floor_scale, normalized_rays, sphere_start
from .config import from_dict
from .layout import get as get_layout
from .rootfind import bone_scale, initial_root
from .sampler import DEFAULT_STEPS, SamplerConfig, make_tables, sample, snap_to_rays, split_steps, tweedie_denoise
from .schedule import DiffusionConfig, alphas_cumprod
from .skeleton import NUM_JOINTS, PELVIS, fill_from_ancestors, noise_from_symmetry
from .stepgraph import BackendUnavailable, file_hash, package_file, read_manifest

DEFAULT_MODEL = "pads_h36m"
MAX_CHUNK = 2048  # persons per sampler call; larger inputs are processed in chunks
AUTO_STEPS = (10, 40)  # estimate(steps="auto"): the fewest and the most steps


class NonFiniteResult(RuntimeError):
    """The sampler produced NaN or infinite joints for some samples (``.index`` lists them)."""

    def __init__(self, index: np.ndarray):
        self.index = index
        super().__init__(
            f"the sampler produced non-finite joints for samples {index[:10].tolist()} (input out of range?)"
        )


def default_model_path() -> Path:
    """The shipped default checkpoint, inside the package."""
    return package_file("weights", DEFAULT_MODEL + ".pt")


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def load_model(
    path: str | Path | None = None,
    backend: str = "auto",
    sampler: SamplerConfig | None = None,
    threads: int = 0,
    spinning: bool = False,
) -> PoseModel:
    """Load a prior (the shipped default when ``path`` is None) on a backend.

    Args:
        path: a ``.pt`` checkpoint written by ``pads-stream train``; its exported graphs are
            looked up in ``engines/<file stem>/`` (``$PADS_STREAM_ENGINES`` or the package's).
        backend: ``auto``, ``torch``, ``onnxruntime`` or ``tensorrt``. ``auto``: TensorRT, else
            torch on a GPU; ONNX Runtime, else torch (with a warning saying why) on a CPU.
        sampler: sampler settings; default: those stored with the model (chosen by ``tune``).
        threads: the backend's intra-op threads: ONNX Runtime's (0: its default, one per core);
            torch's on a CPU (0 or 1: one; its own default collapses on a busy CPU).
        spinning: let ONNX Runtime's idle threads spin (lower latency; off leaves the cores to
            a 2D detector sharing the machine).

    Raises:
        BackendUnavailable: the backend cannot run here (the message says why).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    pt = Path(path) if path is not None else default_model_path()
    if path is not None and not pt.exists():
        raise FileNotFoundError(f"no model checkpoint at {pt}")
    model_hash = file_hash(pt) if pt.exists() else None
    if backend == "auto":
        cuda = False
        if _torch_available():
            import torch

            cuda = torch.cuda.is_available()
        order = ["tensorrt", "torch"] if cuda else ["onnxruntime", "torch"]
    else:
        order = [backend]
    reasons = []
    for name in order:
        try:
            model = _build(name, pt, model_hash, threads, spinning)
        except BackendUnavailable as err:
            reasons.append(f"{name}: {err}")
            continue
        if reasons:
            warnings.warn(f"using the {name} backend; " + "; ".join(reasons), RuntimeWarning, stacklevel=2)
        if sampler is not None:
            model.sampler = sampler
        return model
    raise BackendUnavailable("; ".join(reasons))


def _build(name: str, pt: Path, model_hash: str | None, threads: int, spinning: bool) -> PoseModel:
    """A PoseModel on backend ``name``; raises BackendUnavailable."""
    if name == "torch":
        if not _torch_available():
            raise BackendUnavailable("torch is not installed: pip install 'pads-stream[torch]'")
        if not pt.exists():
            raise BackendUnavailable(f"no checkpoint at {pt}")
        from .checkpoint import build_denoiser, load_checkpoint

        ckpt = load_checkpoint(pt)
        net, diffusion, scale = build_denoiser(ckpt)
        sampler = from_dict(SamplerConfig, ckpt.get("sampler", {}), f"{pt} sampler")
        be: Backend = TorchBackend(net, scale, threads=threads)
        return PoseModel(be, alphas_cumprod(diffusion), scale, sampler, pt, model_hash or "")
    folder, manifest = read_manifest(pt.stem, model_hash)
    m = manifest["model"]
    be = (
        OnnxRuntimeBackend(folder, manifest, threads, spinning)
        if name == "onnxruntime"
        else TensorRTBackend(folder, manifest)
    )
    abar = alphas_cumprod(DiffusionConfig(**m["diffusion"]))
    sampler = from_dict(SamplerConfig, manifest["sampler"], f"{folder} manifest sampler")
    return PoseModel(be, abar, float(m["scale"]), sampler, pt, m["hash"])


def _as_array(value: object, name: str, shape: tuple[int | None, ...]) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric array, got {type(value).__name__} ({err})") from None
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape, strict=True)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    return arr


def _as_int(value: object, name: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < lo or (hi and value > hi):
        raise ValueError(f"{name} must be an integer in [{lo}, {hi or '∞'}], got {value!r}")
    return int(value)


class PoseModel:
    """A loaded pose prior: its schedule, normalisation, sampler settings and backend.

    Attributes:
        sampler: :class:`SamplerConfig` (replace it to change settings).
        scale: metres per normalised pose unit. abar: (T,) ᾱ table.
        path, name, model_hash: the checkpoint's path (it need not exist on an ONNX Runtime
            install), file stem and hash (as in the exported manifest).
    """

    def __init__(self, backend: Backend, abar: np.ndarray, scale: float, sampler: SamplerConfig, path: Path,
                 model_hash: str):  # fmt: skip
        self.backend, self.abar, self.scale, self.sampler = backend, abar, scale, sampler
        self.path, self.name, self.model_hash = path, path.stem, model_hash
        # Start of sampling from pure noise: the last timestep with ᾱ ≥ 1e-3. The cosine
        # schedule's final ᾱ fall to ~1e-9, where x̂₀ = (x_t − √(1−ᾱ) ε) / √ᾱ is undefined.
        self.t_noise = int(np.flatnonzero(abar >= 1e-3)[-1])
        self._max_steps: dict[tuple[int, SamplerConfig], int] = {}
        self._tables: dict[tuple, object] = {}  # (sampler, t_start, steps, solver) -> its SolverTables
        self.step_cost = StepCost()  # seconds per step of this model's estimates, for steps="auto"
        self.sampler_s = 0.0  # seconds spent in the sampler's runs since loading (StepCost's per-step part)

    # -- the loop ------------------------------------------------------------------------

    def _run(self, task: str, inputs: dict[str, np.ndarray], start: np.ndarray, t_start: int, steps: int,
             rho: float, noise: np.ndarray | None = None, solver: str | None = None) -> np.ndarray:  # fmt: skip
        """Sample from ``start`` (B, 17, 3) metres at ``t_start`` (noised with ``noise`` (B, 17, 3)
        standard normal when given) with ``solver`` (default the sampler's); returns (B, 17, 3)
        float32 pelvis-relative metres (rows may be non-finite: callers check)."""
        t_start = _as_int(t_start, "t_start", 1, len(self.abar) - 1)
        key = (self.sampler, t_start, _as_int(steps, "steps", 1, t_start), solver)
        if key not in self._tables:  # the same few runs every frame: computed once
            self._tables[key] = make_tables(self.abar, self.sampler, t_start, key[2], solver)
        tables = self._tables[key]
        started = time.monotonic()
        out = np.empty((len(start), NUM_JOINTS, 3), dtype=np.float32)
        alpha = tables.alpha[0]
        for lo in range(0, len(start), MAX_CHUNK):
            sl = slice(lo, lo + MAX_CHUNK)
            x = alpha * start[sl] / self.scale
            if noise is not None:
                x = x + np.sqrt(1 - alpha * alpha) * noise[sl]
            chunk = {k: v[sl] for k, v in inputs.items()}
            denoise = self.backend.denoiser(task, chunk, len(x))
            y = sample(denoise, tables, x.astype(np.float32), rho) * self.scale
            out[sl] = y - y[:, :1]
        self.sampler_s += time.monotonic() - started
        return out

    @staticmethod
    def _finite(x: np.ndarray) -> np.ndarray:
        bad = np.flatnonzero(~np.isfinite(x).all(axis=(1, 2)))
        if bad.size:
            raise NonFiniteResult(bad)
        return x

    # -- validation ----------------------------------------------------------------------

    @staticmethod
    def _check_keypoints(kp2d: object, conf: object | None, layout: str) -> tuple[np.ndarray, np.ndarray]:
        lay = get_layout(layout)
        kp = _as_array(kp2d, "kp2d", (None, lay.count, 2))
        c = np.ones(kp.shape[:2]) if conf is None else _as_array(conf, "conf", (kp.shape[0], lay.count))
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

    @staticmethod
    def _check_camera(K: object, n: int) -> np.ndarray:
        K = _as_array(K, "K", (None, 3, 3)) if np.ndim(K) == 3 else _as_array(K, "K", (3, 3))
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

    @staticmethod
    def _check_extrinsics(extrinsics: object, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(R (N, 3, 3), t (N, 3)); rows that are NaN (persons without extrinsics) stay NaN."""
        if not isinstance(extrinsics, tuple | list) or len(extrinsics) != 2:
            raise ValueError("extrinsics must be a pair (R, t)")
        R = np.broadcast_to(_as_array(extrinsics[0], "extrinsics R", (None,) * np.ndim(extrinsics[0])), (n, 3, 3))
        t = np.broadcast_to(_as_array(extrinsics[1], "extrinsics t", (None,) * np.ndim(extrinsics[1])), (n, 3))
        given = np.isfinite(R).all(axis=(1, 2)) & np.isfinite(t).all(axis=1)
        err = np.abs(np.einsum("nij,nkj->nik", R[given], R[given]) - np.eye(3)).max(initial=0.0)
        if err > 1e-3 or np.any(np.linalg.det(R[given]) < 0) or np.any(np.abs(t[given]) > 1e4):
            raise ValueError("extrinsics R must be a rotation (orthonormal, det +1) and t finite metres")
        return R, t

    @staticmethod
    def _check_bones(bones: object, n: int) -> np.ndarray:
        b = _as_array(bones, "bones", (n, NUM_JOINTS - 1))
        known = np.isfinite(b).all(axis=1)
        if not (known | np.isnan(b).all(axis=1)).all():
            raise ValueError("bones: each row must be 16 finite lengths in metres, or all NaN (unknown)")
        if np.any((b[known] < 0.02) | (b[known] > 1.0)):
            raise ValueError(
                "bones must be metres in [0.02, 1.0] (a hip bone is ~0.13 m, a shin ~0.45 m; millimetres?)"
            )
        return b

    @staticmethod
    def _check_root(root: object, n: int) -> np.ndarray:
        r = _as_array(root, "root", (n, 3))
        if not np.all(np.isfinite(r)) or np.any(np.abs(r) > 1e4):
            raise ValueError("root must be finite metres within 10 km of the camera")
        if np.any(r[:, 2] <= 0):
            raise ValueError(f"root depth must be > 0 m (camera looks along +z), got min {r[:, 2].min():.3g}")
        if np.any(r[:, 2] > 100):
            warnings.warn(f"root depth up to {r[:, 2].max():.0f} m: millimetres instead of metres?", RuntimeWarning,
                          stacklevel=3)  # fmt: skip
        return r

    # -- tasks ---------------------------------------------------------------------------

    def estimate(
        self,
        kp2d: np.ndarray,
        K: np.ndarray,
        root: np.ndarray | None = None,
        conf: np.ndarray | None = None,
        steps: int | str = DEFAULT_STEPS,
        init: np.ndarray | None = None,
        t_start: int | None = None,
        layout: str = "h36m17",
        return_root: bool = False,
        extrinsics: tuple[np.ndarray, np.ndarray] | None = None,
        bones: np.ndarray | None = None,
        budget_ms: float | None = None,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Lift 2D keypoints to 3D (perspective projection).

        Args:
            kp2d: (N, J, 2) pixels in ``layout`` order (J joints of that layout), undistorted.
            K: (3, 3) or (N, 3, 3) intrinsics, pixels.
            root: (N, 3) pelvis position in the camera frame, metres, z > 0; None: estimated
                from the 2D and K (a body-size depth from the 2D, corrected by the bone lengths of
                the pose fitted there; see :mod:`pads_stream.rootfind`).
            conf: (N, J) confidences in [0, 1] weighting the 2D residual; 0 = unseen joint.
            steps: sampler steps (network passes), split between the first run from ``t_start``
                and the restart run (``SamplerConfig.restart_fraction``); ``"auto"``: as many as
                fit in ``budget_ms`` by the cost per step this model has measured on its earlier
                calls (:class:`pads_stream.budget.StepCost`, as the node does), within
                :data:`AUTO_STEPS` (the low end until a call has been measured).
            init: (N, 17, 3) pelvis-relative metres to start from instead of the inverse
                projection (a warm start from the previous frame).
            t_start: starting noise level; default the sampler's ``t_start``.
            layout: ``h36m17``, ``coco17``, ``halpe26`` or ``coco_wholebody133``
                (:mod:`pads_stream.layout`; converted to H36M-17).
            return_root: also return the (N, 3) root used (given or estimated).
            extrinsics: (R, t) of the camera, X_cam = R · X_world + t, in a world whose floor is
                z = 0 (Z up, metres); R (3, 3) or (N, 3, 3), t (3,) or (N, 3); rows of NaN mark
                persons without. With ``root`` None, the depth then puts the lowest joint on the
                floor (camera-frame output; :func:`pads_stream.camera.camera_to_world` gives world
                joints).
            bones: (N, 16) each person's bone lengths, metres, in H36M parent order (bone j runs
                from joint ``H36M_PARENTS[j + 1]`` to joint j + 1); a row of NaN: unknown. The
                final fit to the rays keeps them; without them every bone stays within ±10 % of
                the mean adult's at the person's size (:mod:`pads_stream.bones`).
            budget_ms: with ``steps="auto"``, the time the call may take, milliseconds.

        Returns:
            (N, 17, 3) float32 pelvis-relative joints in H36M-17 order, camera frame, metres
            (and the root, if asked).

        Raises:
            ValueError: a bad argument (named). NonFiniteResult: a non-finite result.
        """
        kp, c = self._check_keypoints(kp2d, conf, layout)
        n = len(kp)
        empty = np.flatnonzero(~(c > 0).any(axis=1))
        if empty.size:
            raise ValueError(f"conf: sample {empty[0]} has no joint with confidence > 0 (nothing to lift)")
        if np.all(np.abs(kp[c > 0]) <= 1.5):
            raise ValueError("kp2d must be pixels; every coordinate is within [-1.5, 1.5] (normalised coordinates?)")
        K = self._check_camera(K, n)
        t0 = self.sampler.t_start if t_start is None else _as_int(t_start, "t_start", 1, len(self.abar) - 1)
        timed = steps == "auto"
        if timed:
            if budget_ms is None or not (np.isfinite(budget_ms) and budget_ms > 0):
                raise ValueError(f"steps='auto' needs budget_ms, a time in milliseconds > 0, got {budget_ms!r}")
            steps = self.step_cost.steps(n, 1e-3 * budget_ms, AUTO_STEPS[0], min(AUTO_STEPS[1], self.max_steps(t0)))
        steps = self.check_steps(steps, t0)
        started, inside = time.monotonic(), self.sampler_s
        r = None if root is None else self._check_root(root, n)
        if init is not None:
            init = _as_array(init, "init", (n, NUM_JOINTS, 3))
            if not np.all(np.isfinite(init)):
                raise ValueError("init has NaN or infinite values")
        floor = None if extrinsics is None else self._check_extrinsics(extrinsics, n)
        b = None if bones is None else self._check_bones(bones, n)
        x, r, ok = self.lift(normalized_rays(kp, K)[..., :2], c, r, steps=steps, init=init, t_start=t0, floor=floor,
                             bones=b)  # fmt: skip
        if timed:
            self.step_cost.observe(n, steps, time.monotonic() - started, self.sampler_s - inside)
        unsized = np.flatnonzero(~ok & np.isfinite(x).all(axis=(1, 2)))
        if unsized.size:
            raise ValueError(f"sample {unsized[0]}: no root given and no bone with both ends seen to size the person")
        self._finite(np.where(ok[:, None, None], x, np.nan))
        return (x, r) if return_root else x

    def estimate_rig(
        self,
        kp2d: np.ndarray,
        K: np.ndarray,
        R: np.ndarray,
        t: np.ndarray,
        conf: np.ndarray | None = None,
        steps: int = DEFAULT_STEPS,
        layout: str = "h36m17",
    ) -> np.ndarray:
        """Lift 2D keypoints of the same persons seen by several calibrated cameras to one 3D
        pose each, in the world frame (multi-view posterior sampling; see :meth:`lift_rig`).

        Args:
            kp2d: (V, N, J, 2) pixels: view v's keypoints of person n, undistorted, ``layout`` order.
            K: (V, 3, 3) or (V, N, 3, 3) intrinsics, pixels.
            R: (V, 3, 3) or (V, N, 3, 3), t: (V, 3) or (V, N, 3): extrinsics, X_cam = R · X_world + t,
                metres (pads-stream's world: Z up, floor z = 0; any right-handed world works).
            conf: (V, N, J) confidences in [0, 1]; 0 = not seen in that view. Default: all seen.
            steps: sampler steps (network passes), once per person whatever the number of views.
            layout: as in :meth:`estimate`.

        Returns:
            (N, 17, 3) float32 absolute joints in H36M-17 order, world frame, metres.

        Raises:
            ValueError: a bad argument (named). NonFiniteResult: a non-finite result.
        """
        kp = np.asarray(kp2d, dtype=np.float64) if not isinstance(kp2d, np.ndarray) else kp2d
        if kp.ndim != 4:
            raise ValueError(f"kp2d must have shape (V, N, J, 2), got {np.shape(kp2d)}")
        v, n = kp.shape[:2]
        if v < 1 or n < 1:
            raise ValueError(f"kp2d must hold at least one view and one person, got {kp.shape}")
        if conf is not None and np.shape(conf) != kp.shape[:3]:
            raise ValueError(f"conf must have shape {kp.shape[:3]}, got {np.shape(conf)}")
        flat_conf = None if conf is None else np.reshape(conf, (v * n, -1))
        kp, c = self._check_keypoints(kp.reshape(v * n, *kp.shape[2:]), flat_conf, layout)
        kp, c = kp.reshape(v, n, NUM_JOINTS, 2), c.reshape(v, n, NUM_JOINTS)
        empty = np.flatnonzero(~(c > 0).any(axis=(0, 2)))
        if empty.size:
            raise ValueError(f"conf: person {empty[0]} has no joint with confidence > 0 in any view")
        if np.all(np.abs(kp[c > 0]) <= 1.5):
            raise ValueError("kp2d must be pixels; every coordinate is within [-1.5, 1.5] (normalised coordinates?)")
        K = self._per_view(K, "K", (3, 3), v, n)
        self._check_camera(K.reshape(-1, 3, 3), v * n)
        R, tt = self._per_view(R, "R", (3, 3), v, n), self._per_view(t, "t", (3,), v, n)
        self._check_extrinsics((R.reshape(-1, 3, 3), tt.reshape(-1, 3)), v * n)
        if not (np.isfinite(R).all() and np.isfinite(tt).all()):
            raise ValueError("R and t must be finite (every view of a rig is calibrated)")
        steps = self.check_steps(steps, min(self.sampler.rig_t_start))
        world, ok = self.lift_rig(normalized_rays(kp, K)[..., :2], c, R, tt, steps=steps)
        self._finite(np.where(ok[:, None, None], world, np.nan))
        return world

    @staticmethod
    def _per_view(value: object, name: str, shape: tuple[int, ...], v: int, n: int) -> np.ndarray:
        """A per-view array (V, *shape) or per view and person (V, N, *shape) as (V, N, *shape)."""
        nd = np.ndim(value)
        if nd == len(shape) + 1:
            arr = _as_array(value, name, (v, *shape))
            return np.broadcast_to(arr[:, None], (v, n, *shape))
        if nd == len(shape) + 2:
            return _as_array(value, name, (v, n, *shape))
        dims = ", ".join(map(str, shape))
        raise ValueError(f"{name} must have shape ({v}, {dims}) or ({v}, {n}, {dims}), got {np.shape(value)}")

    def lift_rig(self, rays: np.ndarray, conf: np.ndarray, R: np.ndarray, t: np.ndarray, *, steps: int,
                 init: np.ndarray | None = None,
                 t_start: int | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """The rig's estimation core on validated inputs (by :meth:`estimate_rig` or the node).

        Each person is sampled in the frame of the camera that sees it best, about its triangulated
        pelvis (:mod:`pads_stream.multiview`), from the triangulated joints (a joint seen once on
        its ray at its parent's distance; one unseen at its parent), guided by every view's rays
        with the root re-fitted at each step, then fused with the rays as much as the views agree,
        and mapped to the world. The start level and guidance step follow the number of views
        (``SamplerConfig.rig_t_start``, ``rig_rho``). A person whose pelvis (or both hips) no two
        views see is lifted from its best view alone (:meth:`lift`, sized by that camera's floor).

        Args:
            rays: (V, N, 17, 2) K⁻¹[u, v, 1] per view (x/z, y/z, that camera's frame), H36M-17.
            conf: (V, N, 17) in [0, 1]; 0 = not seen in that view.
            R: (V, N, 3, 3), t: (V, N, 3): X_cam = R · X_world + t, metres.
            steps: network passes.

        Returns:
            (world (N, 17, 3) float32 absolute joints, world frame, metres; ok (N,) bool, False
            where the result is non-finite).
        """
        n = conf.shape[1]
        views = (conf > 0).sum(axis=0)  # (N, 17) views that see each joint
        fused = (views[:, PELVIS] >= 2) | (views[:, [1, 4]] >= 2).all(axis=1)
        world = np.full((n, NUM_JOINTS, 3), np.nan, np.float32)
        ok = np.zeros(n, bool)
        if fused.any():
            f = np.flatnonzero(fused)
            world[f] = self._fuse(rays[:, f], conf[:, f], R[:, f], t[:, f], steps,
                                  None if init is None else init[f], t_start)  # fmt: skip
            ok[f] = np.isfinite(world[f]).all(axis=(1, 2))
        mono = np.flatnonzero(~fused)
        if mono.size:  # seen by one view only: lift from that view, sized by its floor
            b = np.argmax(conf[:, mono].sum(axis=2), axis=0)
            rb, cb, Rb, tb = rays[b, mono], conf[b, mono], R[b, mono], t[b, mono]
            x, root, good = self.lift(rb, cb, None, steps=steps, floor=(Rb, tb))
            world[mono] = camera_to_world(x + root[:, None], Rb, tb)
            ok[mono] = good & np.isfinite(world[mono]).all(axis=(1, 2))
        return world, ok

    def _fuse(self, rays: np.ndarray, conf: np.ndarray, R: np.ndarray, t: np.ndarray, steps: int,
              init: np.ndarray | None = None, t_start: int | None = None) -> np.ndarray:  # fmt: skip
        """:meth:`lift_rig` for persons whose pelvis or hips two views see -> (N, 17, 3) world metres."""
        s = self.sampler
        n = conf.shape[1]
        seen = (conf > 0).sum(axis=0)
        # (N,) views per seen joint, a harmonic mean: joints seen once count (a limb only one view sees
        # needs the prior's freedom; on held-out S8 its error fell from 0.78-0.94 to 0.67-0.77 of one view's)
        views = (seen > 0).sum(axis=1) / np.maximum(
            (np.where(seen > 0, 1.0 / np.maximum(seen, 1), 0.0)).sum(axis=1), 1e-9
        )
        # the guidance's pull grows with √(views): weigh each person as if one view saw each joint
        weight = conf**s.rig_conf_power / np.sqrt(np.maximum(views, 1.0))[None, :, None]
        R_ref = R[np.argmax(conf.sum(axis=2), axis=0), np.arange(n)]  # the camera that sees the person best
        rough = multiview.rays_in_frame(rays, R, t, weight, R_ref, np.zeros((n, 3)))
        start = multiview.triangulate(rough)  # about the world origin; moved to the pelvis below
        origin = np.einsum("nji,nj->ni", R_ref, start[:, PELVIS])  # world
        start = start - start[:, PELVIS, None]
        r = multiview.rays_in_frame(rays, R, t, weight, R_ref, origin)  # about the pelvis: body-size terms
        forms = multiview.joint_forms(r)
        # fewer views leave more to the prior: a higher start, a stronger pull (grouped by half views)
        settings = [s.rig_settings(float(v), steps) for v in np.round(2 * views) / 2]
        if init is not None:  # a warm start: the previous world pose, in this frame's sampling frame
            warm = np.isfinite(init).all(axis=(1, 2))
            prev = np.einsum("nij,nkj->nki", R_ref, init - origin[:, None])
            start = np.where(warm[:, None, None], prev, start)
            settings = [(t_start, rho) if w else (t0, rho) for (t0, rho), w in zip(settings, warm, strict=True)]
        inputs = multiview.graph_inputs(forms)
        x = np.empty((n, NUM_JOINTS, 3), np.float32)
        for t0, rho in sorted(set(settings)):
            g = np.flatnonzero([st == (t0, rho) for st in settings])
            x[g] = self._run("rig", {k: v[g] for k, v in inputs.items()}, start[g] - start[g, :1], t0, steps, rho)
        p = x + multiview.fitted_root(x, forms)[:, None]
        if s.rig_snap > 0:  # fuse the pose with the rays, trusting them as much as the views agree
            noise = np.maximum(np.nan_to_num(multiview.ray_noise(r), nan=1.0), 1e-4)
            gain = (s.rig_snap / noise)[None, :, None] ** s.rig_snap_power * conf**s.snap_power
            p = multiview.pull_to_rays(p, multiview.Rays(r.foot, r.direction, gain))
        return np.einsum("nji,nkj->nki", R_ref, p) + origin[:, None]

    def max_steps(self, t_start: int) -> int:
        """The most estimation steps a run from ``t_start`` holds: the first run's steps must fit
        below ``t_start`` and the restart run's below ``SamplerConfig.restart_t_start``."""
        key = (t_start, self.sampler)
        if key not in self._max_steps:
            self._max_steps[key] = self._count_max_steps(t_start)
        return self._max_steps[key]

    def _count_max_steps(self, t_start: int) -> int:
        best = 1
        for steps in range(1, t_start + self.sampler.restart_t_start + 1):
            first, restart = split_steps(steps, self.sampler.restart_fraction)
            try:
                make_tables(self.abar, self.sampler, t_start, first)
                if restart:
                    make_tables(self.abar, self.sampler, self.sampler.restart_t_start, restart)
            except ValueError:
                break
            best = steps
        return best

    def check_steps(self, steps: object, t_start: int) -> int:
        """``steps`` as an int, or a ValueError stating the valid range for a run from ``t_start``."""
        hi = self.max_steps(t_start)
        if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or not 1 <= steps <= hi:
            raise ValueError(f"steps must be an integer in [1, {hi}] (estimation from noise level {t_start}), "
                             f"got {steps!r}")  # fmt: skip
        return int(steps)

    def lift(self, rays: np.ndarray, conf: np.ndarray, root: np.ndarray | None = None, *, steps: int,
             init: np.ndarray | None = None, t_start: int | None = None, depth_guess: np.ndarray | None = None,
             floor: tuple[np.ndarray, np.ndarray] | None = None, bones: np.ndarray | None = None,
             bone_weight: np.ndarray | None = None,
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        """The estimation core, on inputs already validated (by :meth:`estimate`, or the node's wire
        decoder): the one path from rays to poses that the API, the node and the tools share.

        Args:
            rays: (N, 17, 2) K⁻¹[u, v, 1] of undistorted keypoints (x/z, y/z, camera frame),
                H36M-17 order, finite where ``conf`` > 0.
            conf: (N, 17) confidences in [0, 1]; 0 = unseen (the prior supplies that joint).
            root: (N, 3) pelvis, camera frame, metres, z > 0; rows of NaN (or None for all) are
                estimated: a body-size depth on the pelvis ray (:mod:`pads_stream.rootfind`).
            steps: network passes, within :meth:`max_steps` of ``t_start``.
            init: (N, 17, 3) pelvis-relative metres to start from (a warm start); None: the
                inverse projection, unseen joints at their nearest seen ancestor.
            t_start: starting noise level; default the sampler's.
            depth_guess: (N,) metres replacing the body-size depth of an estimated root (NaN: none),
                taken along this frame's pelvis ray.
            floor: (R (N, 3, 3), t (N, 3)) extrinsics of a world whose floor is z = 0 (rows of NaN:
                none); an estimated root then puts the lowest joint on the floor.
            bones: (N, 16) the person's bone lengths, metres, H36M parent order (bone j ends at
                joint j + 1; rows of NaN: unknown). With ``SamplerConfig.bone_hold`` on, every
                estimate keeps its bones within the human range (:mod:`pads_stream.bones`), and
                within that moves them towards these by ``bone_weight``.
            bone_weight: (N,) in [0, 1], how sure each person's ``bones`` are (default 1).

        Returns:
            (rel (N, 17, 3) float32 pelvis-relative metres, root (N, 3) float32 metres, ok (N,)
            bool); ok is False where the result is non-finite or no root could be sized.
        """
        n = len(rays)
        t0 = self.sampler.t_start if t_start is None else t_start
        given = np.zeros(n, bool) if root is None else np.isfinite(root).all(axis=1)
        r, ok = initial_root(rays, conf)
        if depth_guess is not None:  # the guess's depth, on this frame's pelvis ray (the person moves)
            r = np.where(np.isfinite(depth_guess)[:, None], r * (depth_guess / r[:, 2])[:, None], r)
        if root is not None:
            r, ok = np.where(given[:, None], root, r), ok | given
        hom = np.concatenate([rays, np.ones_like(rays[..., :1])], axis=-1)  # (N, 17, 3), z = 1
        unit = hom / np.linalg.norm(hom, axis=-1, keepdims=True)
        if init is None:  # an unseen joint starts on its body (its ray is unknown), the prior moves it
            init = fill_from_ancestors(sphere_start(unit, r), conf > 0)
        first, restart = split_steps(steps, self.sampler.restart_fraction)
        rho = self.sampler.rho_at(steps)
        estimated = ok & ~given
        skeleton = None
        if self.sampler.bone_hold:  # (bones, weight, relative): an estimated root's skeleton counts by its proportions
            known = np.full((n, 16), np.nan) if bones is None else np.asarray(bones, dtype=np.float64)
            weight = np.ones(n) if bone_weight is None else np.asarray(bone_weight, dtype=np.float64)
            skeleton = (known, weight, estimated)
        x = self._lift(rays, unit, r, conf, init, t0, first, rho, skeleton)
        # an estimated root moves with its pose along the rays: to the floor, else to a typical body size
        r, x = self._rescale(x, r, conf, estimated, floor, bone_scale(x, conf))
        if restart:
            x = self._lift(rays, unit, r, conf, x, self.sampler.restart_t_start, restart, rho, skeleton)
        x = self._complete_unseen(x, conf, steps)
        if skeleton is not None and (conf <= 0).any():  # completed joints keep the bones too (seen ones stay)
            x = held(x, *skeleton, fixed=conf > 0).astype(np.float32)
        if floor is not None:  # the final pose's lowest joint onto the floor (no network pass)
            r, x = self._rescale(x, r, conf, estimated, floor, np.ones(n))
        ok &= np.isfinite(x).all(axis=(1, 2)) & np.isfinite(r).all(axis=1)
        return x, r.astype(np.float32), ok

    @staticmethod
    def _rescale(x, r, c, ok, floor, factor) -> tuple[np.ndarray, np.ndarray]:
        """Root and pose moved together along the rays by ``factor``, or by the floor's where known."""
        if floor is not None:
            on_floor, known = floor_scale(x + r[:, None], *floor)
            factor = np.where(known, on_floor, factor)
        factor = np.where(ok, factor, 1.0)
        return r * factor[:, None], (x * factor[:, None, None]).astype(np.float32)

    def _complete_unseen(self, x: np.ndarray, conf: np.ndarray, steps: int) -> np.ndarray:
        """Joints unseen (confidence 0) completed from the seen ones by :meth:`complete`'s solver
        (the prior's posterior mean given them, where the estimate holds one sample), in
        ``complete_unseen`` × ``steps`` passes; persons with every joint seen are left as they are."""
        unseen = conf <= 0
        unseen[:, 0] = False  # the pelvis is the origin
        rows = np.flatnonzero(unseen.any(axis=1) & np.isfinite(x).all(axis=(1, 2)))
        passes = min(int(round(self.sampler.complete_unseen * steps)), self.sampler.complete_t_start)
        if rows.size and passes:
            x = x.copy()
            x[rows] = self._complete(x[rows], ~unseen[rows], passes)
        return x

    def _complete(self, y: np.ndarray, seen: np.ndarray, steps: int) -> np.ndarray:
        """The completion core on validated inputs: ``y`` (N, 17, 3) pelvis-relative metres,
        ``seen`` (N, 17) bool with the pelvis True -> (N, 17, 3) float32, the seen joints as given
        (rows may be non-finite: callers check)."""
        y = np.where(seen[..., None], y, 0.0)
        s = self.sampler
        inputs = {"y": y, "weights": seen.astype(np.float64)}
        x = self._run("identity", inputs, fill_from_ancestors(y, seen), s.complete_t_start, steps, s.complete_rho,
                      solver=s.complete_solver)  # fmt: skip
        return np.where(seen[..., None], y, x).astype(np.float32)

    def _lift(self, rays, unit, r, c, x_init, t0, steps, rho, skeleton=None) -> np.ndarray:
        """One sampler run of the estimation, then the final move onto the rays: keeping the bones
        with ``skeleton`` (bones, weight; :func:`pads_stream.bones.fit_rays`), else free per joint."""
        inputs = {"rays": rays, "root": r, "weights": c}
        x = self._run("projection", inputs, x_init, t0, steps, rho)
        if skeleton is None:
            return snap_to_rays(x, unit, r, c, self.sampler.snap_power).astype(np.float32)
        return fit_rays(x, r, unit, c, self.sampler.snap_power, *skeleton).astype(np.float32)

    def solve(self, operator, x_init: np.ndarray | None = None, n: int | None = None, steps: int = 20,
              t_start: int | None = None, rho: float = 2.0, seed: int = 0) -> np.ndarray:  # fmt: skip
        """Posterior sampling for any forward operator (torch backend only).

        Args:
            operator: the task (see :mod:`pads_stream.operators`): ``residual(x0)`` in metres.
            x_init: (n, 17, 3) metres to start from at ``t_start`` (not noised); None: pure noise.
            n: number of samples (default: ``len(x_init)``; required without it).
            steps: network passes (sampler steps). t_start: starting noise level (default: pure
                noise, ``t_noise``). rho: guidance step size. seed: the starting noise's.

        Returns:
            (n, 17, 3) float32 pelvis-relative poses, metres.
        """
        if not isinstance(self.backend, TorchBackend):
            raise BackendUnavailable(
                "solve() with a custom operator needs the torch backend: load_model(backend='torch')"
            )
        from .guidance import torch_denoiser

        if n is None and x_init is None:
            raise ValueError("n (the number of samples) is required when x_init is None")
        n = _as_int(len(x_init) if n is None else n, "n", 1)
        t_start = self.t_noise if t_start is None else _as_int(t_start, "t_start", 1, len(self.abar) - 1)
        tables = make_tables(self.abar, self.sampler, t_start, _as_int(steps, "steps", 1, t_start))
        if x_init is None:
            x = np.random.default_rng(seed).standard_normal((n, NUM_JOINTS, 3))
        else:
            x = tables.alpha[0] * _as_array(x_init, "x_init", (n, NUM_JOINTS, 3)) / self.scale
        y = sample(torch_denoiser(self.backend.net, operator, self.scale), tables, x.astype(np.float32), rho)
        y = y * self.scale
        return self._finite(y - y[:, :1])

    def denoise(
        self, noisy: np.ndarray, steps: int = DEFAULT_STEPS, noise_std: float | np.ndarray | None = None
    ) -> np.ndarray:
        """Denoise pelvis-relative poses (f = identity): the prior's posterior mean (Tweedie's
        formula, :func:`pads_stream.sampler.tweedie_denoise`) at the noise level of the input.

        Args:
            noisy: (N, 17, 3) pelvis-relative metres, camera frame (any frame works: the prior
                saw every orientation).
            steps: network passes (each re-estimates the translation the pelvis's noise caused).
            noise_std: the noise's std per coordinate, metres, a scalar or (N,); None: estimated
                per pose from its left/right bone-length differences
                (:func:`pads_stream.skeleton.noise_from_symmetry`).

        Returns:
            (N, 17, 3) float32 pelvis-relative metres.
        """
        y = _as_array(noisy, "noisy", (None, NUM_JOINTS, 3))
        if not np.all(np.isfinite(y)) or np.any(np.abs(y) > 10):
            raise ValueError("noisy must be finite, pelvis-relative metres (|x| <= 10 m)")
        y = y - y[:, :1]
        passes = _as_int(steps, "steps", 1, 1000)
        if noise_std is None:
            sigma = noise_from_symmetry(y)
        else:
            sigma = _as_array(noise_std, "noise_std", () if np.ndim(noise_std) == 0 else (len(y),))
            sigma = np.broadcast_to(sigma, (len(y),))
            if not np.all(np.isfinite(sigma)) or np.any(sigma < 0) or np.any(sigma > 1):
                raise ValueError("noise_std must be finite metres in [0, 1]")
        # the timestep whose noise-to-signal ratio σ_t/α_t is denoise_level × σ (normalised), on a
        # grid of ratio 2^(1/4) so that a batch runs in a few calls
        target = np.log2(np.maximum(self.sampler.denoise_level * sigma / self.scale, 1e-4))
        target = 2.0 ** (np.round(4 * target) / 4)
        ratio = np.sqrt((1 - self.abar) / self.abar)
        ts = np.clip(np.searchsorted(ratio, target), 1, self.t_noise)
        out = np.empty(y.shape, np.float32)
        for t in np.unique(ts):
            group = np.flatnonzero(ts == t)
            for lo in range(0, len(group), MAX_CHUNK):
                sl = group[lo : lo + MAX_CHUNK]
                denoise = self.backend.denoiser("prior", {}, len(sl))
                alpha = float(np.sqrt(self.abar[t]))
                out[sl] = tweedie_denoise(denoise, y[sl] / self.scale, float(t), alpha, passes) * self.scale
        return self._finite(out)

    def complete(self, partial: np.ndarray, mask: np.ndarray, steps: int = DEFAULT_STEPS) -> np.ndarray:
        """Fill in missing joints, keeping the observed ones.

        Starts from the observed joints (a missing joint placed at its nearest observed
        ancestor) at the sampler's ``complete_t_start``, not noised, and runs the
        ``complete_solver`` (iterated Tweedie: each step restarts from the data prediction, so
        the result tends to the posterior mean rather than one sample) guided by the observed
        joints (DPS through the network, which carries them to the missing ones); the observed
        joints are returned as given.

        Args:
            partial: (N, 17, 3) pelvis-relative metres; values where ``mask`` is False are ignored
                (NaN allowed there).
            mask: (N, 17) bool, True = observed (the pelvis, the origin, always counts as observed).
            steps: network passes.

        Returns:
            (N, 17, 3) float32 complete poses, metres.
        """
        y = _as_array(partial, "partial", (None, NUM_JOINTS, 3))
        m = np.asarray(mask)
        if m.shape != y.shape[:2] or m.dtype != bool:
            raise ValueError(f"mask must be a bool array of shape {y.shape[:2]}, got {m.dtype} {m.shape}")
        m = m.copy()
        m[:, 0] = True
        y = np.where(m[..., None], y, 0.0)
        if not np.all(np.isfinite(y)) or np.any(np.abs(y) > 10):
            raise ValueError("partial must be finite, pelvis-relative metres (|x| <= 10 m) at observed joints")
        return self._finite(self._complete(y - y[:, :1], m, steps))

    def generate(self, n: int, steps: int = 50, seed: int = 0) -> np.ndarray:
        """Draw ``n`` poses from the prior -> (n, 17, 3) float32 pelvis-relative, metres."""
        n = _as_int(n, "n", 1, 1_000_000)
        noise = np.random.default_rng(seed).standard_normal((n, NUM_JOINTS, 3))
        return self._finite(self._run("prior", {}, np.zeros_like(noise), self.t_noise, steps, 0.0, noise))
