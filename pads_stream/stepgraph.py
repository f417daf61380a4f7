"""The exported step graphs' contract: tasks, tensor names and shapes, and their manifest.

``pads-stream export`` writes, per checkpoint, one ONNX graph per task into
``engines/<checkpoint name>/`` with a ``manifest.json``; the ONNX Runtime and TensorRT backends
read them. A graph computes stage 1 of the sampler step (:func:`pads_stream.guidance.guided_denoise`):

- ``projection`` (estimation): x_t, rays, root, weights, t, alpha -> x0, grad
- ``identity`` (denoising, completion; generation with zero weights): x_t, y, weights, t, alpha -> x0, grad

The manifest carries everything a runtime needs besides the graph (normalisation scale,
diffusion schedule, sampler settings), so the ONNX Runtime path loads without torch. This
module is numpy- and json-only.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path

MANIFEST_FORMAT = "pads-stream-engine/2"
TASKS: dict[str, tuple[str, ...]] = {
    "projection": ("x_t", "rays", "root", "weights", "t", "alpha"),
    "identity": ("x_t", "y", "weights", "t", "alpha"),
}
OUTPUTS = ("x0", "grad")


class BackendUnavailable(RuntimeError):
    """The requested backend or its exported files cannot be used here; the message says why."""


def input_shapes(task: str, batch: int | str) -> dict[str, list[int | str]]:
    """Shapes of ``task``'s graph inputs (``batch`` a size or the dynamic dimension's name)."""
    b = batch
    shapes: dict[str, list[int | str]] = {"x_t": [b, 17, 3], "rays": [b, 17, 2], "root": [b, 3], "y": [b, 17, 3],
                                          "weights": [b, 17], "t": [1], "alpha": [1]}  # fmt: skip
    return {name: shapes[name] for name in TASKS[task]}


def package_file(*parts: str) -> Path:
    """A file shipped inside the package (``pads_stream/<parts>``), e.g. ``("configs", "node.json")``."""
    return Path(str(resources.files("pads_stream").joinpath(*parts)))


def file_hash(path: str | Path) -> str:
    """First 16 hex digits of the file's SHA-256 (the model hash used in manifests and status)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def engines_root() -> Path:
    """The folder holding ``<model name>/manifest.json``: ``$PADS_STREAM_ENGINES`` or the package's."""
    env = os.environ.get("PADS_STREAM_ENGINES")
    return Path(env) if env else package_file("engines")


def read_manifest(name: str, model_hash: str | None = None) -> tuple[Path, dict]:
    """The engine folder and manifest of the model called ``name`` (checkpoint file stem).

    Raises:
        BackendUnavailable: no export, an old format, or one made from another checkpoint
            (``model_hash`` given and different).
    """
    folder = engines_root() / name
    path = folder / "manifest.json"
    if not path.exists():
        raise BackendUnavailable(f"no exported model at {folder}: run `pads-stream export --model <{name}.pt>`")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != MANIFEST_FORMAT:
        raise BackendUnavailable(
            f"{path} has format {manifest.get('format')!r}, this version reads {MANIFEST_FORMAT!r}: re-run export"
        )
    if model_hash is not None and manifest["model"]["hash"] != model_hash:
        raise BackendUnavailable(
            f"{path} was exported from model hash {manifest['model']['hash']}, this model is {model_hash}: "
            f"re-run `pads-stream export --model <{name}.pt>`"
        )
    return folder, manifest
