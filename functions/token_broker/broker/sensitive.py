"""A value that must never be printed: secrets, private keys and access tokens."""

from __future__ import annotations

import hashlib
from typing import NoReturn


class Sensitive:
    """Holds a secret string; every way of printing it prints a mask instead.

    Redaction by construction: a `Sensitive` can be passed to a logger, a metric, an
    f-string or `repr()` and only the mask comes out. `reveal()` is the one way to the
    value, and is called only where the value goes on the wire or into the cache.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def fingerprint(self) -> str:
        """A short, non-reversible label, to tell two values apart in a demo or a test."""
        return hashlib.sha256(self._value.encode()).hexdigest()[:10]

    def __repr__(self) -> str:
        return "Sensitive('***')"

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sensitive) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Sensitive value cannot be pickled")

    def __len__(self) -> int:
        return len(self._value)
