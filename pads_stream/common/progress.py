"""Progress bars for the long-running commands: tqdm when it is installed, else none.

tqdm comes with the ``[train]`` and ``[test]`` extras; the base install (the node's) stays
numpy, onnxruntime, pyzmq and msgpack, and its commands then simply run without a bar.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    """``items`` with a progress bar on stderr (tqdm) when available."""
    try:
        from tqdm import tqdm
    except ImportError:
        yield from items
        return
    yield from tqdm(items, desc=desc, total=total, dynamic_ncols=True, leave=False)
