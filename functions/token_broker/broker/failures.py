"""What the fleet remembers of a renewal that failed, so that nobody asks again at once: an
`Outage` (no answer: 5xx, 429, a timeout), waited out for a back-off, or a `Refusal` (the
authorization server said no, with an RFC 6749 code), answered as such for
`NEGATIVE_CACHE_SECONDS`. The one home of both kinds, of the form the table stores them in, and
of the errors they are answered with."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from broker.errors import BrokerError, InvalidScope, UpstreamError, UpstreamUnavailable
from broker.rfc6749 import is_error_code

# After a renewal failed for want of an answer, nobody in the fleet tries that key again for the
# server's retry_after, kept within these bounds.
OUTAGE_BACKOFF_MIN_SECONDS = 5
OUTAGE_BACKOFF_MAX_SECONDS = 60
# The refusals a fleet remembers, by the contract's error they are answered with.
REFUSED: dict[str, type[BrokerError]] = {error.error: error for error in (UpstreamError, InvalidScope)}


@dataclass(frozen=True, slots=True)
class Outage:
    """The authorization server did not answer; `until` is epoch seconds."""

    until: int
    error: ClassVar[str] = UpstreamUnavailable.error
    code: ClassVar[str] = ""  # as the table stores it: an outage has no RFC 6749 code

    def well_formed(self) -> bool:
        return True

    def answer(self, now: float) -> BrokerError:
        """The error a request gets while the fleet remembers this outage."""
        return UpstreamUnavailable(
            "the authorization server was unavailable moments ago; the fleet waits before asking again",
            retry_after=max(1, math.ceil(self.until - now)),
        )


@dataclass(frozen=True, slots=True)
class Refusal:
    """The authorization server refused with `code` (RFC 6749 §5.2), answered as `error`."""

    error: str
    code: str
    until: int

    def well_formed(self) -> bool:
        """What a broker writes: a remembered error, and an RFC 6749 code (a table writer's text is not one)."""
        return self.error in REFUSED and is_error_code(self.code)

    def answer(self, now: float) -> BrokerError:
        """The error a request gets while the fleet remembers this refusal."""
        return REFUSED[self.error](
            f"the authorization server refused this token request recently: {self.code}",
            upstream_error=self.code,
            retry_after=max(1, math.ceil(self.until - now)),
        )


Failure = Outage | Refusal
# Every failure a broker writes, by the contract's error it is answered with.
REMEMBERED = frozenset({Outage.error, *REFUSED})


def stored_failure(error: str, code: str, until: int) -> Failure | None:
    """A failure as the table stores it (its error, code and time), or None for an error no broker
    remembers. A refusal's code is not checked here: `well_formed` says whether a broker wrote it."""
    if error == Outage.error:
        return Outage(until) if code == "" else Refusal(error, code, until)  # an outage with a code: not well formed
    return Refusal(error, code, until) if error in REFUSED else None


def outage_backoff(retry_after: int | None) -> int:
    """Seconds the fleet leaves a key alone after a renewal found the authorization server down."""
    return min(OUTAGE_BACKOFF_MAX_SECONDS, max(OUTAGE_BACKOFF_MIN_SECONDS, retry_after or 0))


def is_refusal(error: Exception) -> bool:
    """Whether the authorization server itself said no (a 4xx with an RFC 6749 error code)."""
    return isinstance(error, (UpstreamError, InvalidScope)) and error.upstream_error is not None


def remembered(error: BrokerError, now: float, negative_cache_seconds: int) -> tuple[Failure | None, BrokerError]:
    """What the fleet remembers of a renewal that failed with `error`, and the error to answer:
    a refusal for `NEGATIVE_CACHE_SECONDS`, an outage for a back-off (whose answer says the longer
    of the back-off and the server's own wish); None for any other failure, which nobody waits on."""
    if isinstance(error, UpstreamUnavailable):
        backoff = outage_backoff(error.retry_after)
        answer = UpstreamUnavailable(error.description, retry_after=max(backoff, error.retry_after or 0))
        return Outage(math.ceil(now + backoff)), answer
    if is_refusal(error) and negative_cache_seconds > 0:
        return Refusal(error.error, error.upstream_error or "", int(now) + negative_cache_seconds), error
    return None, error
