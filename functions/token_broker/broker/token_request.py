"""A caller's request for a token: parsed and validated from an untrusted JSON object."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from broker.errors import InvalidRequest
from broker.rfc6749 import SCOPE_TOKEN

PROFILE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
MAX_SCOPES = 50
MAX_MIN_TTL = 86_400
FIELDS = ("profile", "scopes", "min_ttl", "force_refresh", "caller_proof")


@dataclass(frozen=True, slots=True)
class TokenRequest:
    profile: str
    scopes: frozenset[str] | None = None
    min_ttl: int | None = None
    force_refresh: bool = False
    # checked by caller_identity, after the request's shape; never printed (it holds a session token)
    caller_proof: object = field(default=None, repr=False, compare=False)


def parse_request(event: object) -> TokenRequest:
    """Validates every field (a direct event, or the HTTP route's body); anything else raises
    `InvalidRequest` naming the field. The `caller_proof` is checked after the request's shape."""
    if not isinstance(event, dict):
        raise InvalidRequest("the request must be a JSON object")
    for name in event:
        if name not in FIELDS:
            raise InvalidRequest(f"unknown field {_shown(name)}; allowed: {', '.join(FIELDS)}")
    return TokenRequest(
        profile=_profile(event.get("profile")),
        # an empty list names no scopes, like an absent one: the profile's defaults apply
        scopes=parse_scopes(event["scopes"], "scopes") or None if event.get("scopes") is not None else None,
        min_ttl=_min_ttl(event.get("min_ttl")),
        force_refresh=_force_refresh(event.get("force_refresh")),
        caller_proof=event.get("caller_proof"),
    )


def parse_scopes(value: object, field: str, error: Callable[[str], Exception] = InvalidRequest) -> frozenset[str]:
    """A list of RFC 6749 scope tokens as a set: order and duplicates do not matter."""
    if not isinstance(value, list):
        raise error(f"{field} must be a list of scope strings")
    if len(value) > MAX_SCOPES:
        raise error(f"{field} may hold at most {MAX_SCOPES} scopes")
    for scope in value:
        if not isinstance(scope, str) or not SCOPE_TOKEN.fullmatch(scope):
            raise error(
                f"{field} must hold RFC 6749 scope tokens (1 to 200 printable ASCII characters, "
                "no space, quote or backslash)"
            )
    return frozenset(value)


def _profile(value: object) -> str:
    if value is None:
        raise InvalidRequest("profile is required")
    if not isinstance(value, str) or not PROFILE_PATTERN.fullmatch(value):
        raise InvalidRequest("profile must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    return value


def _min_ttl(value: object) -> int | None:
    if value is None:
        return None
    # bool is an int in Python; JSON true is not a number of seconds
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_MIN_TTL:
        raise InvalidRequest(f"min_ttl must be a whole number of seconds from 0 to {MAX_MIN_TTL}")
    return value


def _force_refresh(value: object) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequest("force_refresh must be true or false")
    return value


def _shown(field: Any) -> str:
    """A field name fit to echo back: quoted, and cut short if it is long."""
    text = repr(field)
    return text if len(text) <= 40 else text[:37] + "...'"
