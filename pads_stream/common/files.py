"""Where pads-stream's files are: the package's own data, the shipped graphs and configs, a user's exports.

The repository's top level holds ``engines/`` (exported step graphs, one folder per model) and
``configs/`` (node, training and tuning settings a user edits). A wheel carries both inside the
package as ``pads_stream/_shipped/{engines,configs}`` (mapped there by the build backend), so one
resolver finds them in a checkout, an editable install and an installed wheel alike.

Exports a user makes (``pads-stream export``: new graphs, TensorRT plans built for one GPU and one
TensorRT version) go to a folder the user owns, never into site-packages: ``$PADS_STREAM_ENGINES``
when set; else, in a checkout, its ``engines/``; else ``$XDG_CACHE_HOME/pads-stream/engines``
(``~/.cache/pads-stream/engines``).
"""

from __future__ import annotations

import hashlib
import os
from importlib import resources
from pathlib import Path

SHIPPED_KINDS = ("engines", "configs")
DEFAULT_MODEL = "pads_h36m"  # the shipped prior: pads_stream/weights/<name>.pt, engines/<name>/


def package_file(*parts: str) -> Path:
    """A file inside the package (``pads_stream/<parts>``), e.g. ``("weights", "pads_h36m.pt")``."""
    return Path(str(resources.files("pads_stream").joinpath(*parts)))


def default_model_path() -> Path:
    """The shipped prior's checkpoint (torch weights, metres): ``pads_stream/weights/pads_h36m.pt``."""
    return package_file("weights", DEFAULT_MODEL + ".pt")


def _checkout() -> Path | None:
    """The repository's top level when the package runs from a checkout (or an editable install)."""
    top = package_file().parent
    return top if (top / "pyproject.toml").exists() and (top / "engines").is_dir() else None


def shipped(kind: str, *parts: str) -> Path:
    """A shipped file of ``kind`` (``"engines"`` or ``"configs"``): the wheel's copy, else the checkout's.

    ``shipped("configs", "node.json")`` is ``configs/node.json`` at the repository's top level in
    a checkout and ``pads_stream/_shipped/configs/node.json`` in an installed wheel.
    """
    if kind not in SHIPPED_KINDS:
        raise ValueError(f"shipped files are one of {SHIPPED_KINDS}, not {kind!r}")
    inside = package_file("_shipped", kind)
    if inside.is_dir():
        return inside.joinpath(*parts)
    top = _checkout()
    if top is None:
        raise FileNotFoundError(f"the shipped {kind}/ folder was not found (not in {inside}, no checkout)")
    return top.joinpath(kind, *parts)


def user_engines() -> Path:
    """Where a user's own exports go: ``$PADS_STREAM_ENGINES``, a checkout's ``engines/``, or the user's cache."""
    env = os.environ.get("PADS_STREAM_ENGINES")
    if env:
        return Path(env)
    top = _checkout()
    if top is not None:
        return top / "engines"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "pads-stream" / "engines"


def engine_roots() -> list[Path]:
    """The folders searched for ``<model name>/manifest.json``, first match first.

    ``$PADS_STREAM_ENGINES`` alone when set; else the user's export folder, then the shipped graphs.
    """
    if os.environ.get("PADS_STREAM_ENGINES"):
        return [user_engines()]
    roots = [user_engines()]
    try:
        roots.append(shipped("engines"))
    except FileNotFoundError:
        pass
    return list(dict.fromkeys(roots))


def file_hash(path: str | Path) -> str:
    """First 16 hex digits of the file's SHA-256 (the model hash used in manifests and status)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
