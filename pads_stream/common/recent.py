"""The most recently used of costly objects made per key: bound ONNX Runtime steps
(:mod:`pads_stream.runtime.backends`) and captured CUDA graphs (:mod:`pads_stream.runtime.cudagraph`)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class Recent(Generic[V]):
    """Up to ``keep`` objects by key; the least recently used is dropped to make room."""

    def __init__(self, keep: int):
        self.keep = keep
        self.items: OrderedDict[Hashable, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self.items)

    def get(self, key: Hashable, make: Callable[[], V]) -> tuple[V, bool]:
        """(the object for ``key``, made by ``make`` if absent; whether it was made now)."""
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key], False
        self.items[key] = value = make()
        while len(self.items) > self.keep:
            self.items.popitem(last=False)
        return value, True
