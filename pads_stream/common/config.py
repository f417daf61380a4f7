"""Frozen dataclass configs and the one way to load them: JSON files whose keys override fields.

Each concern has its own dataclass (prior network, diffusion schedule, training, sampler,
node). A JSON file in ``configs/`` overrides some fields; an unknown key raises, listing the
valid ones. The config travels inside checkpoints and exported-model manifests as a plain dict.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def from_dict(cls: type[T], values: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from its defaults overridden by ``values``; unknown keys raise."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown} for {cls.__name__}; valid: {sorted(names)}")
    casted = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in values:
            v = values[f.name]
            casted[f.name] = tuple(v) if isinstance(v, list) else v
    return cls(**casted)


def load_json(cls: type[T], path: str | Path | None) -> T:
    """Load ``cls`` from a JSON file of overrides, or its defaults when ``path`` is None."""
    if path is None:
        return cls()
    return from_dict(cls, json.loads(Path(path).read_text()), where=str(path))


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass."""
    return dataclasses.asdict(cfg)
