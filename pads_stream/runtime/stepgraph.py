"""The exported step graphs' contract: tasks, tensor names and shapes, and their manifest.

``pads-stream export`` writes, per checkpoint, one ONNX graph per task into
``engines/<checkpoint name>/`` with a ``manifest.json``; the ONNX Runtime and TensorRT backends
read them. A graph computes stage 1 of the sampler step (:func:`pads_stream.prior.guidance.guided_denoise`)
for one task, described by one :class:`Task` record in :data:`TASKS` that the exporter, every
backend and the tests loop over (a new task is a forward operator and one record):

- ``projection`` (estimation): x_t, rays, root, weights, t, alpha -> x0, grad
- ``identity`` (denoising, completion; generation with zero weights): x_t, y, weights, t, alpha -> x0, grad
- ``rig`` (estimation from several calibrated views): x_t, sqrt_s, centre, slack, root_solve,
  root_offset, t, alpha -> x0, grad (the same shapes for any number of views)

The manifest carries everything a runtime needs besides the graph (normalisation scale,
diffusion schedule, sampler settings), so the ONNX Runtime path loads without torch. This
module is numpy- and json-only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..common.files import engine_roots

MANIFEST_FORMAT = "pads-stream-engine/2"
OUTPUTS = ("x0", "grad")


@dataclass(frozen=True)
class Task:
    """One exported step graph: its forward operator and the inputs a run binds once.

    ``operator`` names a class of :mod:`pads_stream.prior.operators`, built with the bound inputs as
    keyword arguments (torch tensors); ``bound`` lists those inputs with their per-person shapes.
    The graph's inputs are ``x_t`` (B, 17, 3), the bound ones (B, ...), ``t`` (1,) and ``alpha`` (1,).
    """

    operator: str
    bound: tuple[tuple[str, tuple[int, ...]], ...]

    @property
    def inputs(self) -> tuple[str, ...]:
        """The graph's input names, in order."""
        return ("x_t", *(name for name, _ in self.bound), "t", "alpha")

    def shapes(self, batch: int | str) -> dict[str, list[int | str]]:
        """The graph's input shapes (``batch`` a size or the dynamic dimension's name)."""
        return {"x_t": [batch, 17, 3], **{name: [batch, *shape] for name, shape in self.bound}, "t": [1], "alpha": [1]}


TASKS: dict[str, Task] = {
    "projection": Task("Projection", (("rays", (17, 2)), ("root", (3,)), ("weights", (17,)))),
    "identity": Task("Identity", (("y", (17, 3)), ("weights", (17,)))),
    "rig": Task(
        "Rig",
        (("sqrt_s", (17, 3, 3)), ("centre", (17, 3)), ("slack", (17,)), ("root_solve", (3, 3)), ("root_offset", (3,))),
    ),
}


class BackendUnavailable(RuntimeError):
    """The requested backend or its exported files cannot be used here; the message says why."""


def read_manifest(name: str, model_hash: str | None = None) -> tuple[Path, dict]:
    """The engine folder and manifest of the model called ``name`` (checkpoint file stem), searched
    in :func:`pads_stream.common.files.engine_roots` (a user's exports first, then the shipped ones).

    Raises:
        BackendUnavailable: no export, an old format, or one made from another checkpoint
            (``model_hash`` given and different); the first folder's problem is the one told.
    """
    problems = []
    for root in engine_roots():
        folder = root / name
        path = folder / "manifest.json"
        if not path.exists():
            continue
        manifest = json.loads(path.read_text())
        if manifest.get("format") != MANIFEST_FORMAT:
            problems.append(f"{path} has format {manifest.get('format')!r}, this version reads {MANIFEST_FORMAT!r}: "
                            "re-run export")  # fmt: skip
        elif model_hash is not None and manifest["model"]["hash"] != model_hash:
            problems.append(f"{path} was exported from model hash {manifest['model']['hash']}, this model is "
                            f"{model_hash}: re-run `pads-stream export --model <{name}.pt>`")  # fmt: skip
        else:
            return folder, manifest
    if problems:
        raise BackendUnavailable(problems[0])
    where = " or ".join(str(r / name) for r in engine_roots())
    raise BackendUnavailable(f"no exported model at {where}: run `pads-stream export --model <{name}.pt>`")
