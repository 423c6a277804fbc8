"""A token as a client keeps it, and the client's plan: from what it holds for a key and the
clock, what a caller does next. No I/O, no lock and no clock of its own (STYLE point 14): the
client carries each move out, and tests drive every case in microseconds.

Two windows, as botocore's `RefreshableCredentials` has them: in the advisory window (the last
minute, or quarter of its life, before a token would fall below the caller's min TTL) one
caller asks the broker for the next token while the others keep the current one; below the min
TTL (the mandatory window) callers wait for one broker call, shared among threads.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from token_client.dpop import DpopKey

# The advisory window: this long before a token would fall below the caller's min TTL, or a
# quarter of the token's life if that is shorter.
ADVISORY_SECONDS = 60.0


@dataclass(frozen=True)
class Token:
    """An access token with what the broker said of it. Its repr never shows the value."""

    value: str = field(repr=False)
    expires_at: float  # epoch seconds
    scope: str
    token_type: str = "Bearer"
    received_at: float = field(default=0.0, repr=False, compare=False)  # epoch seconds
    dpop_key: DpopKey | None = field(default=None, repr=False, compare=False)  # a DPoP token's key

    def expires_in(self, now: float | None = None) -> float:
        return self.expires_at - (time.time() if now is None else now)

    @property
    def advisory_seconds(self) -> float:
        """How long before the mandatory window the advisory one opens, for this token."""
        return min(ADVISORY_SECONDS, (self.expires_at - self.received_at) / 4)

    @property
    def authorization(self) -> str:
        """The `Authorization` header's value."""
        return f"{self.token_type} {self.value}"

    def headers(self, method: str, url: str, nonce: str | None = None) -> dict[str, str]:
        """What one request to `url` carries: the `Authorization` header, and for a DPoP token
        a fresh proof for this method and URL (RFC 9449 §7.1)."""
        if self.dpop_key is None:
            return {"Authorization": self.authorization}
        return {"Authorization": self.authorization, "DPoP": self.dpop_key.proof(method, url, self.value, nonce)}


@dataclass(frozen=True)
class Held:
    """What a client holds for one key: its token, whether a broker call is in flight, whether
    the API refused the token (the next call asks with force_refresh), and the token that the
    last advisory call was made for."""

    token: Token | None
    calling: bool = False
    refused: bool = False
    advised_for: str | None = None


@dataclass(frozen=True)
class UseKept:
    token: Token


@dataclass(frozen=True)
class AskAhead:
    """In the advisory window: ask for a token with `min_ttl`; on failure, `token` serves on."""

    token: Token
    min_ttl: int


@dataclass(frozen=True)
class Ask:
    """No token serves: this caller asks the broker, and the others wait for it."""

    force_refresh: bool


@dataclass(frozen=True)
class WaitForOther:
    """Another caller is asking the broker: wait for it, then plan again."""


Move = UseKept | AskAhead | Ask | WaitForOther


def next_move(held: Held, floor: int, now: float) -> Move:
    """What a caller who needs `floor` seconds of life does next; `now` is epoch seconds."""
    kept = held.token
    if kept is not None and not held.refused and kept.expires_in(now) >= floor:
        advisory = kept.expires_in(now) < floor + kept.advisory_seconds
        if not advisory or held.calling or held.advised_for == kept.value:
            return UseKept(kept)
        return AskAhead(kept, floor + math.ceil(kept.advisory_seconds))
    return WaitForOther() if held.calling else Ask(force_refresh=held.refused)
