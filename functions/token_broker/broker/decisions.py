"""The broker's decisions as plain functions of plain data and a clock reading, free of I/O."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import TypeGuard

from broker.profiles import Profile
from broker.sensitive import Sensitive

# A token response without `expires_in` and without a JWT `exp` is trusted for this long.
DEFAULT_LIFETIME_SECONDS = 300
# DynamoDB's TTL deletes an item up to two days late; every read checks expiry itself, and
# this grace keeps an item around a little past its token's expiry for the renewal bookkeeping.
TTL_GRACE_SECONDS = 3_600


@dataclass(frozen=True, slots=True)
class CachedToken:
    """A token as the caches hold it: what the answer needs, with absolute times."""

    access_token: Sensitive
    token_type: str
    scope: str
    expires_at: int
    fetched_at: float

    @property
    def lifetime(self) -> float:
        """How long the token lived when it was fetched."""
        return self.expires_at - self.fetched_at


def cache_key(profile: Profile, scopes: frozenset[str]) -> str:
    """One key per (client identity and token URL, scope set, token_params), hashed.

    The hash keeps client ids, URLs and scopes out of the table; the secret is no part of
    it, so a rotated secret keeps serving the same cached token.
    """
    identity = [profile.token_url, profile.client_id, sorted(scopes), sorted(profile.token_params.items())]
    canonical = json.dumps(identity, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def effective_min_ttl(configured: int, requested: int | None) -> int:
    """`MIN_TTL_SECONDS` is the floor; a request may ask for more, never for less."""
    return configured if requested is None else max(configured, requested)


def life_left(token: CachedToken, now: float) -> float:
    return token.expires_at - now


def is_usable(token: CachedToken | None, now: float, min_ttl: int) -> TypeGuard[CachedToken]:
    return token is not None and life_left(token, now) >= min_ttl


def refresh_window(token: CachedToken, refresh_ahead: int) -> float:
    """Renewal starts this long before expiry: `REFRESH_AHEAD_SECONDS`, but at most half the
    token's life, so that tokens shorter-lived than the setting are not renewed on every request."""
    return min(refresh_ahead, token.lifetime / 2)


def needs_refresh(token: CachedToken, now: float, refresh_ahead: int) -> bool:
    return life_left(token, now) < refresh_window(token, refresh_ahead)


def expires_in(token: CachedToken, now: float) -> int:
    """The whole seconds left, rounded down so a caller never trusts a token too long."""
    return max(0, int(token.expires_at - now))


def expiry_item_ttl(expires_at: int) -> int:
    """The epoch second at which DynamoDB's TTL may delete the item."""
    return expires_at + TTL_GRACE_SECONDS


def token_lifetime(expires_in_field: object, access_token: str, now: float) -> int | None:
    """Seconds a fresh token lives: `expires_in`, else the JWT's `exp`, else the default.

    None when the response names no usable lifetime (zero, negative, or not a number).
    """
    if expires_in_field is not None:
        seconds = _whole_seconds(expires_in_field)
        return seconds if seconds is not None and seconds > 0 else None
    exp = jwt_expiry(access_token)
    if exp is None:
        return DEFAULT_LIFETIME_SECONDS
    seconds = int(exp - now)
    return seconds if seconds > 0 else None


def jwt_expiry(access_token: str) -> int | None:
    """The `exp` claim of a JWT access token, read without verifying: it only sets our cache life."""
    parts = access_token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, RecursionError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return _whole_seconds(exp)


def _whole_seconds(value: object) -> int | None:
    # Some servers (Entra ID v1, older Keycloak) send expires_in as a string of digits.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def caller_admitted(allowed_callers: tuple[str, ...] | None, caller_arn: str) -> bool:
    """Whether a profile's `allowed_callers` admits an IAM caller.

    An entry matches a caller ARN equal to it, or the `assumed-role` sessions of the role it
    names (`arn:aws:iam::A:role/R` admits `arn:aws:sts::A:assumed-role/R/<session>`; an
    assumed-role ARN carries no role path, so the entry's path is not compared). `*` matches
    any run of characters. No `allowed_callers` admits every IAM caller.
    """
    if allowed_callers is None:
        return True
    role = _role_of_session(caller_arn)
    for entry in allowed_callers:
        if _wildcard(entry).fullmatch(caller_arn):
            return True
        if role is not None:
            entry_role = _role_of_entry(entry)
            if entry_role is not None and _wildcard(entry_role).fullmatch(role):
                return True
    return False


_SESSION = re.compile(r"arn:(?P<partition>[^:]+):sts::(?P<account>[^:]*):assumed-role/(?P<role>[^/]+)/[^/]+")
_ROLE = re.compile(r"arn:(?P<partition>[^:]+):iam::(?P<account>[^:]*):role/(?:.*/)?(?P<role>[^/]+)")


def _role_of_session(caller_arn: str) -> str | None:
    match = _SESSION.fullmatch(caller_arn)
    return f"{match['partition']}:{match['account']}:{match['role']}" if match else None


def _role_of_entry(entry: str) -> str | None:
    match = _ROLE.fullmatch(entry)
    return f"{match['partition']}:{match['account']}:{match['role']}" if match else None


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))
