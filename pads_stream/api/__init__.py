"""The estimation core, one class for every task: :class:`PoseModel` (from :func:`load_model`).

Layer: may import ``runtime``, ``prior``, ``data``, ``geometry`` and ``common``; the stream, the
cluster, the commands and the evaluation sit above it and call it, never the other way round.
"""

from ..common.files import DEFAULT_MODEL, default_model_path
from .pose_model import PoseModel, load_model

__all__ = ["DEFAULT_MODEL", "PoseModel", "default_model_path", "load_model"]
