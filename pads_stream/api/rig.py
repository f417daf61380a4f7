"""Estimation from several calibrated cameras at once: :meth:`estimate_rig` (validated) and
:meth:`lift_rig`, the core the node's rig fusion shares. A part of :class:`pads_stream.api.PoseModel`.

Inputs are per view (V, N, ...); outputs are absolute joints in the world frame, metres.
"""

from __future__ import annotations

import numpy as np

from ..geometry import multiview
from ..geometry.camera import camera_to_world, normalized_rays
from ..geometry.skeleton import NUM_JOINTS, PELVIS
from ..prior.sampler import DEFAULT_STEPS
from .inputs import check_camera, check_extrinsics, check_keypoints, per_view


class RigTasks:
    """Lifting the same persons seen by several calibrated cameras to one world pose each."""

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
        kp, c = check_keypoints(kp.reshape(v * n, *kp.shape[2:]), flat_conf, layout)
        kp, c = kp.reshape(v, n, NUM_JOINTS, 2), c.reshape(v, n, NUM_JOINTS)
        empty = np.flatnonzero(~(c > 0).any(axis=(0, 2)))
        if empty.size:
            raise ValueError(f"conf: person {empty[0]} has no joint with confidence > 0 in any view")
        if np.all(np.abs(kp[c > 0]) <= 1.5):
            raise ValueError("kp2d must be pixels; every coordinate is within [-1.5, 1.5] (normalised coordinates?)")
        K = per_view(K, "K", (3, 3), v, n)
        check_camera(K.reshape(-1, 3, 3), v * n)
        R, tt = per_view(R, "R", (3, 3), v, n), per_view(t, "t", (3,), v, n)
        check_extrinsics((R.reshape(-1, 3, 3), tt.reshape(-1, 3)), v * n)
        if not (np.isfinite(R).all() and np.isfinite(tt).all()):
            raise ValueError("R and t must be finite (every view of a rig is calibrated)")
        steps = self.check_steps(steps, min(self.sampler.rig_t_start))
        world, ok = self.lift_rig(normalized_rays(kp, K)[..., :2], c, R, tt, steps=steps)
        self._finite(np.where(ok[:, None, None], world, np.nan))
        return world

    def lift_rig(self, rays: np.ndarray, conf: np.ndarray, R: np.ndarray, t: np.ndarray, *, steps: int,
                 init: np.ndarray | None = None,
                 t_start: int | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """The rig's estimation core on validated inputs (by :meth:`estimate_rig` or the node).

        Each person is sampled in the frame of the camera that sees it best, about its triangulated
        pelvis (:mod:`pads_stream.geometry.multiview`), from the triangulated joints (a joint seen once on
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
