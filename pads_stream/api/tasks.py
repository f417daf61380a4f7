"""The prior's other tasks: denoising (f = identity), completion (a joint mask), generation, and
posterior sampling for any forward operator (torch). A part of :class:`pads_stream.api.PoseModel`.

Poses are pelvis-relative metres in any frame the prior saw (every orientation).
"""

from __future__ import annotations

import numpy as np

from ..geometry.skeleton import NUM_JOINTS, fill_from_ancestors, noise_from_symmetry
from ..prior.sampler import DEFAULT_STEPS, make_tables, sample, tweedie_denoise
from ..runtime.backends import TorchBackend
from ..runtime.stepgraph import BackendUnavailable
from .inputs import as_array, as_int

MAX_CHUNK = 2048  # persons per sampler call; larger inputs are processed in chunks


class PriorTasks:
    """Denoising, completion, generation and custom operators, each a run of the one sampler."""

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

    def solve(self, operator, x_init: np.ndarray | None = None, n: int | None = None, steps: int = 20,
              t_start: int | None = None, rho: float = 2.0, seed: int = 0) -> np.ndarray:  # fmt: skip
        """Posterior sampling for any forward operator (torch backend only).

        Args:
            operator: the task (see :mod:`pads_stream.prior.operators`): ``residual(x0)`` in metres.
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
        from ..prior.guidance import torch_denoiser

        if n is None and x_init is None:
            raise ValueError("n (the number of samples) is required when x_init is None")
        n = as_int(len(x_init) if n is None else n, "n", 1)
        t_start = self.t_noise if t_start is None else as_int(t_start, "t_start", 1, len(self.abar) - 1)
        tables = make_tables(self.abar, self.sampler, t_start, as_int(steps, "steps", 1, t_start))
        if x_init is None:
            x = np.random.default_rng(seed).standard_normal((n, NUM_JOINTS, 3))
        else:
            x = tables.alpha[0] * as_array(x_init, "x_init", (n, NUM_JOINTS, 3)) / self.scale
        y = sample(torch_denoiser(self.backend.net, operator, self.scale), tables, x.astype(np.float32), rho)
        y = y * self.scale
        return self._finite(y - y[:, :1])

    def denoise(
        self, noisy: np.ndarray, steps: int = DEFAULT_STEPS, noise_std: float | np.ndarray | None = None
    ) -> np.ndarray:
        """Denoise pelvis-relative poses (f = identity): the prior's posterior mean (Tweedie's
        formula, :func:`pads_stream.prior.sampler.tweedie_denoise`) at the noise level of the input.

        Args:
            noisy: (N, 17, 3) pelvis-relative metres, camera frame (any frame works: the prior
                saw every orientation).
            steps: network passes (each re-estimates the translation the pelvis's noise caused).
            noise_std: the noise's std per coordinate, metres, a scalar or (N,); None: estimated
                per pose from its left/right bone-length differences
                (:func:`pads_stream.geometry.skeleton.noise_from_symmetry`).

        Returns:
            (N, 17, 3) float32 pelvis-relative metres.
        """
        y = as_array(noisy, "noisy", (None, NUM_JOINTS, 3))
        if not np.all(np.isfinite(y)) or np.any(np.abs(y) > 10):
            raise ValueError("noisy must be finite, pelvis-relative metres (|x| <= 10 m)")
        y = y - y[:, :1]
        passes = as_int(steps, "steps", 1, 1000)
        if noise_std is None:
            sigma = noise_from_symmetry(y)
        else:
            sigma = as_array(noise_std, "noise_std", () if np.ndim(noise_std) == 0 else (len(y),))
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
        y = as_array(partial, "partial", (None, NUM_JOINTS, 3))
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
        n = as_int(n, "n", 1, 1_000_000)
        noise = np.random.default_rng(seed).standard_normal((n, NUM_JOINTS, 3))
        return self._finite(self._run("prior", {}, np.zeros_like(noise), self.t_noise, steps, 0.0, noise))
