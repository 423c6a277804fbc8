"""The broker's decisions as plain functions of plain data and a clock reading, free of I/O."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import TypeGuard

from broker.sensitive import Sensitive

# A token response without `expires_in` and without a JWT `exp` is trusted for this long.
DEFAULT_LIFETIME_SECONDS = 300
# DynamoDB's TTL deletes an item up to two days late; every read checks expiry itself, and
# this grace keeps an item around a little past its token's expiry for the renewal bookkeeping.
TTL_GRACE_SECONDS = 3_600
# A renewal lease lapses after this long, so a dead holder delays the fleet by seconds only.
# The broker never writes a lease further ahead: a longer one in the table is corrupt or forged.
LEASE_SECONDS = 10.0
# How far the clocks of two containers (or of a container and an item's writer) may disagree.
CLOCK_SKEW_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class CachedToken:
    """A token as the caches hold it: what the answer needs, with absolute times."""

    access_token: Sensitive
    token_type: str
    scope: str
    expires_at: int
    fetched_at: float
    dpop_key: Sensitive | None = None  # a DPoP token's private JWK: the token is bound to it

    @property
    def lifetime(self) -> float:
        """How long the token lived when it was fetched."""
        return self.expires_at - self.fetched_at


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


def unreachable_min_ttl(token: CachedToken | None, now: float, min_ttl: int) -> TypeGuard[CachedToken]:
    """Whether no fresh token can meet `min_ttl`: the key's current token (not yet expired)
    lived no longer than that when it was fetched, and the next one will not live longer."""
    return token is not None and token.expires_at > now and min_ttl >= token.lifetime


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
    claims = jwt_claims(access_token)
    return _whole_seconds(claims.get("exp")) if claims is not None else None


def jwt_claims(token: str) -> dict[str, object] | None:
    """A JWT's claims, unverified (None when it is not a JWT): only ever read, never trusted."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, RecursionError):
        return None
    return claims if isinstance(claims, dict) else None


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
