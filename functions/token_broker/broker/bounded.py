"""A map with a bound, for what a container remembers: tokens, verified proofs, cache keys."""

from __future__ import annotations

from collections import OrderedDict


class BoundedMap[K, V](OrderedDict[K, V]):
    """At most `size` entries, however they are written (`put` or `map[key] = value`): writing a
    new one past that forgets the one written longest ago (eviction by write, not by use: reading
    moves nothing), in constant time whatever the size (a dict's first entry can take a scan to find)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def __setitem__(self, key: K, value: V) -> None:
        if key not in self and len(self) >= self.size:
            self.popitem(last=False)
        super().__setitem__(key, value)

    def put(self, key: K, value: V) -> None:
        self[key] = value
