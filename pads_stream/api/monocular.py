"""Estimation from one camera: :meth:`estimate` (validated) and :meth:`lift`, the core the node and
the tools share. A part of :class:`pads_stream.api.PoseModel`, which holds the sampler loop
(``_run``) and the step checks these methods use.

Poses are pelvis-relative in the camera frame (OpenCV axes), metres; keypoints are pixels.
"""

from __future__ import annotations

import time

import numpy as np

from ..geometry.bones import fit_rays, held
from ..geometry.camera import floor_scale, normalized_rays, snap_to_rays, sphere_start, unit_rays
from ..geometry.rootfind import bone_scale, initial_root
from ..geometry.skeleton import NUM_JOINTS, fill_from_ancestors, size_from_stature
from ..prior.sampler import DEFAULT_STEPS, split_steps
from .inputs import (
    as_array,
    as_int,
    check_bones,
    check_camera,
    check_extrinsics,
    check_keypoints,
    check_root,
    check_stature,
)

AUTO_STEPS = (10, 40)  # estimate(steps="auto"): the fewest and the most steps


class MonocularTasks:
    """Lifting 2D keypoints of one camera to 3D (perspective projection as the forward operator)."""

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
        stature_m: np.ndarray | float | None = None,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Lift 2D keypoints to 3D (perspective projection).

        Args:
            kp2d: (N, J, 2) pixels in ``layout`` order (J joints of that layout), undistorted.
            K: (3, 3) or (N, 3, 3) intrinsics, pixels.
            root: (N, 3) pelvis position in the camera frame, metres, z > 0; None: estimated
                from the 2D and K (a body-size depth from the 2D, corrected by the bone lengths of
                the pose fitted there; see :mod:`pads_stream.geometry.rootfind`).
            conf: (N, J) confidences in [0, 1] weighting the 2D residual; 0 = unseen joint.
            steps: sampler steps (network passes), split between the first run from ``t_start``
                and the restart run (``SamplerConfig.restart_fraction``); ``"auto"``: as many as
                fit in ``budget_ms`` by the cost per step this model has measured on its earlier
                calls (:class:`pads_stream.api.budget.StepCost`, as the node does), within
                :data:`AUTO_STEPS` (the low end until a call has been measured).
            init: (N, 17, 3) pelvis-relative metres to start from instead of the inverse
                projection (a warm start from the previous frame).
            t_start: starting noise level; default the sampler's ``t_start``.
            layout: ``h36m17``, ``coco17``, ``halpe26`` or ``coco_wholebody133``
                (:mod:`pads_stream.geometry.layout`; converted to H36M-17).
            return_root: also return the (N, 3) root used (given or estimated).
            extrinsics: (R, t) of the camera, X_cam = R · X_world + t, in a world whose floor is
                z = 0 (Z up, metres); R (3, 3) or (N, 3, 3), t (3,) or (N, 3); rows of NaN mark
                persons without. With ``root`` None, the depth then puts the lowest joint on the
                floor (camera-frame output; :func:`pads_stream.geometry.camera.camera_to_world` gives world
                joints).
            bones: (N, 16) each person's bone lengths, metres, in H36M parent order (bone j runs
                from joint ``H36M_PARENTS[j + 1]`` to joint j + 1); a row of NaN: unknown. The
                final fit to the rays keeps them; without them every bone stays within ±10 % of
                the mean adult's at the person's size (:mod:`pads_stream.geometry.bones`).
            budget_ms: with ``steps="auto"``, the time the call may take, milliseconds.
            stature_m: (N,) or one number: each person's standing height, metres (0.5-2.5; NaN:
                unknown). With ``root`` None and no ``extrinsics`` it sizes the person (and so
                the depth) instead of the mean adult's 1.65 m: from one camera a person's absolute
                size cannot be seen, only assumed or given.

        Returns:
            (N, 17, 3) float32 pelvis-relative joints in H36M-17 order, camera frame, metres
            (and the root, if asked).

        Raises:
            ValueError: a bad argument (named). NonFiniteResult: a non-finite result.
        """
        kp, c = check_keypoints(kp2d, conf, layout)
        n = len(kp)
        empty = np.flatnonzero(~(c > 0).any(axis=1))
        if empty.size:
            raise ValueError(f"conf: sample {empty[0]} has no joint with confidence > 0 (nothing to lift)")
        if np.all(np.abs(kp[c > 0]) <= 1.5):
            raise ValueError("kp2d must be pixels; every coordinate is within [-1.5, 1.5] (normalised coordinates?)")
        K = check_camera(K, n)
        t0 = self.sampler.t_start if t_start is None else as_int(t_start, "t_start", 1, len(self.abar) - 1)
        timed = steps == "auto"
        if timed:
            if budget_ms is None or not (np.isfinite(budget_ms) and budget_ms > 0):
                raise ValueError(f"steps='auto' needs budget_ms, a time in milliseconds > 0, got {budget_ms!r}")
            steps = self.step_cost.steps(n, 1e-3 * budget_ms, AUTO_STEPS[0], min(AUTO_STEPS[1], self.max_steps(t0)))
        steps = self.check_steps(steps, t0)
        started, inside = time.monotonic(), self.sampler_s
        r = None if root is None else check_root(root, n)
        if init is not None:
            init = as_array(init, "init", (n, NUM_JOINTS, 3))
            if not np.all(np.isfinite(init)):
                raise ValueError("init has NaN or infinite values")
        floor = None if extrinsics is None else check_extrinsics(extrinsics, n)
        b = None if bones is None else check_bones(bones, n)
        size = None if stature_m is None else size_from_stature(check_stature(stature_m, n))
        x, r, ok = self.lift(normalized_rays(kp, K)[..., :2], c, r, steps=steps, init=init, t_start=t0, floor=floor,
                             bones=b, size=size)  # fmt: skip
        if timed:
            self.step_cost.observe(n, steps, time.monotonic() - started, self.sampler_s - inside)
        unsized = np.flatnonzero(~ok & np.isfinite(x).all(axis=(1, 2)))
        if unsized.size:
            raise ValueError(f"sample {unsized[0]}: no root given and no bone with both ends seen to size the person")
        self._finite(np.where(ok[:, None, None], x, np.nan))
        return (x, r) if return_root else x

    def lift(self, rays: np.ndarray, conf: np.ndarray, root: np.ndarray | None = None, *, steps: int,
             init: np.ndarray | None = None, t_start: int | None = None, depth_guess: np.ndarray | None = None,
             floor: tuple[np.ndarray, np.ndarray] | None = None, bones: np.ndarray | None = None,
             bone_weight: np.ndarray | None = None, size: np.ndarray | None = None,
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        """The estimation core, on inputs already validated (by :meth:`estimate`, or the node's wire
        decoder): the one path from rays to poses that the API, the node and the tools share.

        Args:
            rays: (N, 17, 2) K⁻¹[u, v, 1] of undistorted keypoints (x/z, y/z, camera frame),
                H36M-17 order, finite where ``conf`` > 0.
            conf: (N, 17) confidences in [0, 1]; 0 = unseen (the prior supplies that joint).
            root: (N, 3) pelvis, camera frame, metres, z > 0; rows of NaN (or None for all) are
                estimated: a body-size depth on the pelvis ray (:mod:`pads_stream.geometry.rootfind`).
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
                estimate keeps its bones within the human range (:mod:`pads_stream.geometry.bones`), and
                within that moves them towards these by ``bone_weight``.
            bone_weight: (N,) in [0, 1], how sure each person's ``bones`` are (default 1).
            size: (N,) each person's size as a factor of the mean adult's, for an estimated root
                without a floor (its depth: a person 10 % larger stands 10 % further along the
                rays); NaN or None: the mean adult. From a stature:
                :func:`pads_stream.geometry.skeleton.size_from_stature`.

        Returns:
            (rel (N, 17, 3) float32 pelvis-relative metres, root (N, 3) float32 metres, ok (N,)
            bool); ok is False where the result is non-finite or no root could be sized.
        """
        n = len(rays)
        t0 = self.sampler.t_start if t_start is None else t_start
        given = np.zeros(n, bool) if root is None else np.isfinite(root).all(axis=1)
        r, ok = initial_root(rays, conf)
        typical = np.ones(n) if size is None else np.nan_to_num(np.asarray(size, dtype=np.float64), nan=1.0)
        r = r * typical[:, None]  # a body-size depth: the person's size, else the mean adult's
        if depth_guess is not None:  # the guess's depth, on this frame's pelvis ray (the person moves)
            r = np.where(np.isfinite(depth_guess)[:, None], r * (depth_guess / r[:, 2])[:, None], r)
        if root is not None:
            r, ok = np.where(given[:, None], root, r), ok | given
        unit = unit_rays(rays)  # (N, 17, 3)
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
        r, x = self._rescale(x, r, conf, estimated, floor, typical * bone_scale(x, conf))
        if restart:
            x = self._lift(rays, unit, r, conf, x, self.sampler.restart_t_start, restart, rho, skeleton)
        x = self._complete_unseen(x, conf, steps)
        if skeleton is not None and (conf <= 0).any():  # completed joints keep the bones too (seen ones stay)
            x = held(x, *skeleton, fixed=conf > 0).astype(np.float32)
        # a known skeleton's estimated root ends at the person's size exactly: the restart and the bone fit leave
        # it a little off, differently each frame, and a held skeleton's bones would breathe with it (docs/bones.md)
        if skeleton is not None:
            known, weight, _ = skeleton
            sized = estimated & np.isfinite(known).all(axis=1) & (weight > 0)
            r, x = self._rescale(x, r, conf, sized, None, typical * bone_scale(x, conf))
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

    def _lift(self, rays, unit, r, c, x_init, t0, steps, rho, skeleton=None) -> np.ndarray:
        """One sampler run of the estimation, then the final move onto the rays: keeping the bones
        with ``skeleton`` (bones, weight; :func:`pads_stream.geometry.bones.fit_rays`), else free per joint."""
        inputs = {"rays": rays, "root": r, "weights": c}
        x = self._run("projection", inputs, x_init, t0, steps, rho)
        if skeleton is None:
            return snap_to_rays(x, unit, r, c, self.sampler.snap_power).astype(np.float32)
        return fit_rays(x, r, unit, c, self.sampler.snap_power, *skeleton).astype(np.float32)
