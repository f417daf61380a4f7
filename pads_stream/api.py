"""The public Python API: ``load_model()`` and the four tasks of :class:`PoseModel`.

All arrays are numpy; poses are pelvis-relative in the camera frame (OpenCV axes), metres;
2D keypoints are pixels. Every task runs the one sampler (:func:`pads_stream.sampler.sample`);
estimation reaches it through the chosen backend, the other tasks through torch.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch

from .backends import Backend, make_backend
from .camera import check_intrinsics, inverse_projection, normalized_rays
from .checkpoint import build_denoiser, file_hash, load_checkpoint
from .config import from_dict
from .operators import ForwardOperator, Identity, JointMask
from .sampler import SamplerConfig, make_schedule, sample, torch_step
from .schedule import alphas_cumprod
from .skeleton import NUM_JOINTS

DEFAULT_MODEL = "pads_h36m.pt"
MAX_CHUNK = 2048  # persons per sampler call; larger inputs are processed in chunks


def default_model_path() -> Path:
    """The shipped default checkpoint, inside the package."""
    return Path(str(resources.files("pads_stream") / "weights" / DEFAULT_MODEL))


def load_model(
    path: str | Path | None = None, backend: str = "auto", sampler: SamplerConfig | None = None
) -> PoseModel:
    """Load a prior checkpoint (the shipped default when ``path`` is None).

    Args:
        path: a ``.pt`` checkpoint written by ``pads-stream train``.
        backend: ``auto``, ``torch``, ``onnxruntime`` or ``tensorrt`` (see :mod:`backends`).
        sampler: sampler settings; default: those stored in the checkpoint (tuned on
            validation data), else :class:`SamplerConfig` defaults.
    """
    path = Path(path) if path is not None else default_model_path()
    if not path.exists():
        raise FileNotFoundError(f"no model checkpoint at {path}")
    ckpt = load_checkpoint(path)
    net, diffusion, scale = build_denoiser(ckpt)
    if sampler is None:
        sampler = from_dict(SamplerConfig, ckpt.get("sampler", {}), f"{path} sampler")
    return PoseModel(net, alphas_cumprod(diffusion), scale, sampler, path, backend)


def _as_array(value: object, name: str, shape: tuple[int | None, ...]) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape, strict=True)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    return arr


class PoseModel:
    """A loaded pose prior with its sampler settings and estimation backend."""

    def __init__(
        self,
        net: torch.nn.Module,
        abar: np.ndarray,
        scale: float,
        sampler: SamplerConfig,
        path: Path,
        backend: str | Backend = "auto",
    ):
        self.net, self.abar, self.scale, self.sampler, self.path = net, abar, scale, sampler, path
        # Start of sampling from pure noise: the last timestep with ᾱ ≥ 1e-3. The cosine
        # schedule's final ᾱ fall to ~1e-9, where x̂₀ = (x_t − √(1−ᾱ) ε) / √ᾱ is undefined.
        self.t_noise = int(np.flatnonzero(abar >= 1e-3)[-1])
        self.model_hash = file_hash(path)
        self.backend = make_backend(backend, self) if isinstance(backend, str) else backend

    # -- validation ----------------------------------------------------------------------

    @staticmethod
    def _check_keypoints(kp2d: object, conf: object | None) -> tuple[np.ndarray, np.ndarray]:
        kp = _as_array(kp2d, "kp2d", (None, NUM_JOINTS, 2))
        c = np.ones(kp.shape[:2]) if conf is None else _as_array(conf, "conf", (kp.shape[0], NUM_JOINTS))
        if not np.all(np.isfinite(c)) or np.any((c < 0) | (c > 1)):
            raise ValueError("conf must be finite and within [0, 1]")
        bad = ~np.isfinite(kp).all(axis=-1) & (c > 0)
        if bad.any():
            n, j = np.argwhere(bad)[0]
            raise ValueError(f"kp2d has NaN or infinite values where conf > 0 (sample {n}, joint {j})")
        return np.where(c[..., None] > 0, kp, 0.0), c

    @staticmethod
    def _check_camera(K: object, root: object, n: int) -> tuple[np.ndarray, np.ndarray]:
        K = np.asarray(K, dtype=np.float64)
        if K.shape == (3, 3):
            K = np.broadcast_to(K, (n, 3, 3))
        if K.shape != (n, 3, 3):
            raise ValueError(f"K must have shape (3, 3) or ({n}, 3, 3), got {K.shape}")
        check_intrinsics(K, "K")
        r = _as_array(root, "root", (n, 3))
        if not np.all(np.isfinite(r)):
            raise ValueError("root has NaN or infinite values")
        if np.any(r[:, 2] <= 0):
            raise ValueError(f"root depth must be > 0 m (camera looks along +z), got min {r[:, 2].min():.3g}")
        return K, r

    def _noise(self, seed: int, steps: int, n: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return torch.randn((steps + 1, n, NUM_JOINTS, 3), generator=gen)

    # -- tasks ---------------------------------------------------------------------------

    def estimate(
        self,
        kp2d: np.ndarray,
        K: np.ndarray,
        root: np.ndarray,
        conf: np.ndarray | None = None,
        steps: int = 10,
        seed: int = 0,
        init: np.ndarray | None = None,
        t_start: int | None = None,
    ) -> np.ndarray:
        """Lift 2D keypoints to 3D (perspective projection, known root).

        Args:
            kp2d: (N, 17, 2) pixels, H36M-17 order (undistorted).
            K: (3, 3) or (N, 3, 3) intrinsics, pixels.
            root: (N, 3) pelvis position in the camera frame, metres, z > 0.
            conf: (N, 17) confidences in [0, 1] weighting the 2D residual; 0 = missing joint.
            steps: DDIM steps from the sampler's ``t_start``.
            seed: noise seed; the same inputs and seed give the same output.
            init: (N, 17, 3) pelvis-relative metres to start from instead of the inverse
                projection (a warm start from the previous frame).
            t_start: starting noise level; default the sampler's ``t_start``.

        Returns:
            (N, 17, 3) float32 pelvis-relative joints, camera frame, metres.
        """
        kp, c = self._check_keypoints(kp2d, conf)
        K, r = self._check_camera(K, root, kp.shape[0])
        if init is None:
            x_init = inverse_projection(kp, K, r)  # (N, 17, 3) m
        else:
            x_init = _as_array(init, "init", (kp.shape[0], NUM_JOINTS, 3))
        rays = normalized_rays(kp, K)[..., :2]  # (N, 17, 2)
        t0 = self.sampler.t_start if t_start is None else t_start
        sched = make_schedule(self.abar, t0, steps, self.sampler.eta, device=self.backend.device)
        h = self.sampler.hypotheses
        noise = self._noise(seed, steps, kp.shape[0] * h)
        dev = self.backend.device
        out = np.empty((kp.shape[0], NUM_JOINTS, 3), dtype=np.float32)
        for lo in range(0, kp.shape[0], MAX_CHUNK):
            n = min(MAX_CHUNK, kp.shape[0] - lo)
            idx = np.concatenate([np.arange(lo, lo + n) + k * kp.shape[0] for k in range(h)])  # h copies

            def batch(a: np.ndarray, idx: np.ndarray = idx % kp.shape[0]) -> torch.Tensor:
                return torch.as_tensor(a[idx], dtype=torch.float32, device=dev)  # (h * n, ...)

            step = self.backend.estimation_step(sched, batch(rays), batch(r), batch(c), self.sampler.rho)
            x = sample(step, sched, self.scale, batch(x_init), noise[:, idx].to(dev))
            out[lo : lo + n] = x.reshape(h, n, NUM_JOINTS, 3).mean(0).cpu().numpy()
        return out

    def solve(
        self,
        operator: ForwardOperator | None,
        x_init: np.ndarray | None,
        n: int,
        steps: int,
        seed: int,
        t_start: int,
        rho: float,
    ) -> np.ndarray:
        """Posterior sampling for any forward operator (torch backend).

        Args:
            operator: the task (see :mod:`pads_stream.operators`), None for generation.
            x_init: (n, 17, 3) metres to start from, lifted to ``t_start``; None: pure noise.
            n: number of samples.
            steps: DDIM steps; t_start: starting timestep (``t_noise`` for pure noise); rho: step size.

        Returns:
            (n, 17, 3) float32 pelvis-relative poses, metres.
        """
        dev = next(self.net.parameters()).device
        sched = make_schedule(self.abar, t_start, steps, self.sampler.eta, device=dev)
        step = torch_step(self.net, sched, self.scale, operator, rho, self.sampler.guidance)
        init = None if x_init is None else torch.as_tensor(x_init, dtype=torch.float32, device=dev)
        return sample(step, sched, self.scale, init, self._noise(seed, steps, n).to(dev)).cpu().numpy()

    def denoise(self, noisy: np.ndarray, steps: int = 10, seed: int = 0) -> np.ndarray:
        """Denoise (N, 17, 3) pelvis-relative poses in metres (f = identity) -> (N, 17, 3)."""
        y = _as_array(noisy, "noisy", (None, NUM_JOINTS, 3))
        if not np.all(np.isfinite(y)):
            raise ValueError("noisy has NaN or infinite values")
        y = y - y[:, :1]
        dev = next(self.net.parameters()).device
        op = Identity(torch.as_tensor(y, dtype=torch.float32, device=dev), torch.ones(y.shape[:2], device=dev))
        s = self.sampler
        return self.solve(op, y, y.shape[0], steps, seed, s.denoise_t_start, s.denoise_rho)

    def complete(self, partial: np.ndarray, mask: np.ndarray, steps: int = 10, seed: int = 0) -> np.ndarray:
        """Fill in missing joints.

        Args:
            partial: (N, 17, 3) pelvis-relative metres; values where ``mask`` is False are ignored
                (NaN allowed there).
            mask: (N, 17) bool, True = observed.

        Returns:
            (N, 17, 3) float32 complete poses, metres.
        """
        y = _as_array(partial, "partial", (None, NUM_JOINTS, 3))
        m = np.asarray(mask)
        if m.shape != y.shape[:2] or m.dtype != bool:
            raise ValueError(f"mask must be a bool array of shape {y.shape[:2]}, got {m.dtype} {m.shape}")
        if not np.all(np.isfinite(y[m])):
            raise ValueError("partial has NaN or infinite values at observed joints")
        y = np.where(m[..., None], y, 0.0)
        dev = next(self.net.parameters()).device
        op = JointMask(
            torch.as_tensor(y, dtype=torch.float32, device=dev), torch.as_tensor(m, dtype=torch.float32, device=dev)
        )
        return self.solve(op, None, y.shape[0], steps, seed, self.t_noise, self.sampler.complete_rho)

    def generate(self, n: int, steps: int = 50, seed: int = 0) -> np.ndarray:
        """Draw ``n`` poses from the prior -> (n, 17, 3) float32 pelvis-relative, metres."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        return self.solve(None, None, n, steps, seed, self.t_noise, 0.0)
