"""pads-stream: real-time 3D human pose from 2D keypoints with a diffusion pose prior (PADS).

``load_model()`` returns a :class:`PoseModel` with ``estimate``, ``denoise``, ``complete`` and
``generate``; see :mod:`pads_stream.api`.
"""

__version__ = "0.1.0"

from .api import PoseModel, load_model  # noqa: E402 (after __version__, which modules import)

__all__ = ["PoseModel", "load_model"]
