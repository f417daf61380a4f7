"""The public Python API: ``load_model()`` and :class:`PoseModel`, whose tasks live by kind in
:mod:`.monocular` (``estimate``, ``lift``), :mod:`.rig` (``estimate_rig``, ``lift_rig``) and
:mod:`.tasks` (``denoise``, ``complete``, ``generate``, ``solve``); this module holds the loading,
the one sampler loop they all run (``_run``) and the step checks.

All arrays are numpy; poses are pelvis-relative in the camera frame (OpenCV axes: x right,
y down, z forward), metres; 2D keypoints are pixels. Every task runs the one sampler
(:func:`pads_stream.prior.sampler.sample`) through the chosen backend. With the ``onnxruntime``
backend nothing here imports torch.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from ..common.config import from_dict
from ..common.files import default_model_path, file_hash
from ..geometry.skeleton import NUM_JOINTS
from ..prior.sampler import SamplerConfig, make_tables, sample, split_steps
from ..prior.schedule import DiffusionConfig, alphas_cumprod
from ..runtime.backends import BACKENDS, Backend, OnnxRuntimeBackend, TensorRTBackend, TorchBackend
from ..runtime.stepgraph import BackendUnavailable, read_manifest
from .budget import StepCost
from .inputs import as_int
from .monocular import MonocularTasks
from .rig import RigTasks
from .tasks import MAX_CHUNK, PriorTasks


class NonFiniteResult(RuntimeError):
    """The sampler produced NaN or infinite joints for some samples (``.index`` lists them)."""

    def __init__(self, index: np.ndarray):
        self.index = index
        super().__init__(
            f"the sampler produced non-finite joints for samples {index[:10].tolist()} (input out of range?)"
        )


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
        from ..prior.checkpoint import build_denoiser, load_checkpoint

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


class PoseModel(MonocularTasks, RigTasks, PriorTasks):
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

    def _run(self, task: str, inputs: dict[str, np.ndarray], start: np.ndarray, t_start: int, steps: int,
             rho: float, noise: np.ndarray | None = None, solver: str | None = None) -> np.ndarray:  # fmt: skip
        """Sample from ``start`` (B, 17, 3) metres at ``t_start`` (noised with ``noise`` (B, 17, 3)
        standard normal when given) with ``solver`` (default the sampler's); returns (B, 17, 3)
        float32 pelvis-relative metres (rows may be non-finite: callers check)."""
        t_start = as_int(t_start, "t_start", 1, len(self.abar) - 1)
        key = (self.sampler, t_start, as_int(steps, "steps", 1, t_start), solver)
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
