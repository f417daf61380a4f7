"""pads-stream: real-time 3D human pose from 2D keypoints with a diffusion pose prior (PADS).

``load_model()`` returns a :class:`PoseModel` with ``estimate``, ``denoise``, ``complete`` and
``generate``; see :mod:`pads_stream.api`. Both are imported on first use, so that the
``pads-stream`` command starts (and installs its signal handlers) before numpy loads.
"""

from .common.version import __version__

__all__ = ["PoseModel", "calibrate_rig", "load_model", "__version__"]


def __getattr__(name: str):
    if name in ("PoseModel", "load_model"):
        from . import api

        return getattr(api, name)
    if name == "calibrate_rig":
        from .geometry.selfcalib import calibrate_rig

        return calibrate_rig
    raise AttributeError(f"module 'pads_stream' has no attribute {name!r}")
