"""A map with a bound, for what a container remembers: tokens, verified proofs, cache keys."""

from __future__ import annotations

from collections import OrderedDict


class BoundedMap[K, V](OrderedDict[K, V]):
    """At most `size` entries; writing a new one past that forgets the oldest written, in
    constant time whatever the size (a dict's first entry can take a scan to find)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: K, value: V) -> None:
        if key not in self and len(self) >= self.size:
            self.popitem(last=False)
        self[key] = value
