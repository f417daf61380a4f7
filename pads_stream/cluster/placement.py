"""Which worker owns a stream: rendezvous (highest-random-weight) hashing with bounded loads, pure functions.

Every (worker, key) pair gets a weight from a keyed BLAKE2b hash; a key's preference list is the
live workers by weight, highest first. The choice is stable across processes and machines (no
Python ``hash()``): a worker that leaves moves only its own keys, and a key goes back to its
first choice when that worker returns. Plain rendezvous hashing of a few keys is lumpy (4 streams
on 2 workers land 3 + 1 more often than 2 + 2), so a key takes the first worker on its list that
holds fewer than :func:`capacity` keys: consistent hashing with bounded loads (Mirrokni, Thorup and
Zadimoghaddam, 2018). The key of a stream is its rig's name when its camera names a rig (all views
of a rig land on one worker), else the stream's own name.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping


def weight(worker: str, key: str) -> int:
    """The 64-bit rendezvous weight of ``key`` on ``worker``."""
    digest = hashlib.blake2b(key.encode(), digest_size=8, key=worker.encode()[:64], person=b"pads-stream").digest()
    return int.from_bytes(digest, "big")


def preference(key: str, workers: Iterable[str]) -> list[str]:
    """``workers`` in ``key``'s order of preference (ties, never seen with 64-bit weights, by name)."""
    return sorted(workers, key=lambda w: (-weight(w, key), w))


def capacity(keys: int, workers: int, balance: float = 1.0) -> int:
    """The most keys one of ``workers`` takes when ``keys`` are placed: ⌈balance · keys / workers⌉
    (``balance`` ≥ 1; 1 is as even as whole keys allow)."""
    return max(1, math.ceil(balance * keys / max(workers, 1)))


def owner(
    key: str, workers: Iterable[str], loads: Mapping[str, int] | None = None, cap: int | None = None
) -> str | None:
    """The worker that takes ``key``: the first on its preference list holding fewer than ``cap``
    keys (``loads``: keys held per worker); without a bound, or when all are full, its first choice.
    None when there is no worker."""
    ranked = preference(key, workers)
    if loads is not None and cap is not None:
        for w in ranked:
            if loads.get(w, 0) < cap:
                return w
    return ranked[0] if ranked else None


def route_key(stream: str, rig: str | None) -> str:
    """The key a stream's frames are placed by: ``rig:<name>`` for a rig's member, else ``stream:<name>``
    (prefixed, so a rig and a stream of the same name never collide)."""
    return f"rig:{rig}" if rig else f"stream:{stream}"
