"""A profile secret's JSON object as its parsers read it: typed fields or a refusal naming the
field, never quoting its value."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from broker.errors import ProfileMisconfigured


class ProfileDocument:
    """The fields of one profile's secret, and the refusal to raise for a bad one."""

    __slots__ = ("_document", "_refusal")

    def __init__(self, document: dict[str, Any], refusal: Callable[[str], ProfileMisconfigured]) -> None:
        """`refusal(message)` makes the error a bad field raises (it carries the profile's name
        and callers)."""
        self._document = document
        self._refusal = refusal

    def bad(self, message: str) -> ProfileMisconfigured:
        return self._refusal(message)

    def __contains__(self, name: str) -> bool:
        return name in self._document

    def names(self) -> Iterable[str]:
        return self._document.keys()

    def raw(self, name: str, default: Any = None) -> Any:
        """The value as JSON gave it, for a parser of its own (scopes, token_params)."""
        return self._document.get(name, default)

    def text(self, name: str) -> str | None:
        """A non-empty string, or None when the field is absent."""
        value = self._document.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise self.bad(f"{name} must be a non-empty string")
        return value

    def required(self, name: str, why: str = "") -> str:
        value = self.text(name)
        if value is None:
            raise self.bad(f"{name} is required{why}")
        return value

    def choice(self, name: str, options: tuple[str, ...]) -> str:
        """One of `options`; the first when the field is absent."""
        value = self._document.get(name, options[0])
        if value not in options:
            raise self.bad(f"{name} must be one of {', '.join(options)}")
        return str(value)
