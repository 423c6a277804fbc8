"""The broker's errors, each carrying the contract's `error` code and status: the one mapping,
and the one mapping between a failed renewal and the failure the fleet remembers of it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from broker.rfc6749 import is_error_code

if TYPE_CHECKING:
    from broker.callers import CallerRule

# After a renewal failed for want of an answer (5xx, 429, timeout), nobody in the fleet tries
# that key again for the server's retry_after, kept within these bounds.
OUTAGE_BACKOFF_MIN_SECONDS = 5
OUTAGE_BACKOFF_MAX_SECONDS = 60


class BrokerError(Exception):
    """An answer the contract's error table names; `description` is safe to show a caller."""

    error: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500

    def __init__(
        self,
        description: str,
        *,
        retry_after: int | None = None,
        upstream_error: str | None = None,
    ) -> None:
        super().__init__(description)
        self.description = description
        self.retry_after = retry_after
        self.upstream_error = upstream_error

    def answer(self) -> dict[str, Any]:
        """The direct-invocation answer: `error`, `error_description`, `status`, and extras."""
        body: dict[str, Any] = {
            "error": self.error,
            "error_description": self.description,
            "status": self.status,
        }
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after
        if self.upstream_error is not None:
            body["upstream_error"] = self.upstream_error
        return body


class InvalidRequest(BrokerError):
    error = "invalid_request"
    status = 400


class InvalidScope(BrokerError):
    error = "invalid_scope"
    status = 400


class AccessDenied(BrokerError):
    error = "access_denied"
    status = 403


class UnknownProfile(BrokerError):
    error = "unknown_profile"
    status = 404


class ProfileMisconfigured(BrokerError):
    """The secret is not a valid profile. `detail` names the field for the log and the operator's
    CLI (never its value); the answer names nothing, so that no caller learns which fields a
    profile has. `allowed_callers` holds the profile's callers when those parsed, so that a caller
    they do not admit is refused before it hears of the misconfiguration."""

    error = "profile_misconfigured"
    status = 500

    def __init__(self, detail: str, allowed_callers: tuple[CallerRule, ...] | None = None) -> None:
        super().__init__("the profile is misconfigured; the broker's log names what to fix")
        self.args = (detail,)  # str() of the error, as logged, is the detail
        self.detail = detail
        self.allowed_callers = allowed_callers


class UpstreamError(BrokerError):
    """The authorization server refused, or answered with something that is not a token."""

    error = "upstream_error"
    status = 502


class UpstreamUnavailable(BrokerError):
    """No token after bounded retries: 5xx, 429, timeouts, connection failures."""

    error = "upstream_unavailable"
    status = 503


class AuthenticationUnavailable(BrokerError):
    """STS could not be asked to verify a caller proof: timeout, throttling, 5xx."""

    error = "authentication_unavailable"
    status = 503


class RouteNotFound(BrokerError):
    """An HTTP request for another path than the broker's one route."""

    error = "not_found"
    status = 404


class MethodNotAllowed(BrokerError):
    """An HTTP request to the route with another method than POST."""

    error = "method_not_allowed"
    status = 405


class InternalError(BrokerError):
    error = "internal_error"
    status = 500


class ConfigurationError(Exception):
    """The function's environment is invalid; raised at cold start, never answered."""


def is_refusal(error: Exception) -> bool:
    """Whether the authorization server itself said no (a 4xx with an RFC 6749 error code)."""
    return isinstance(error, (UpstreamError, InvalidScope)) and error.upstream_error is not None


@dataclass(frozen=True, slots=True)
class Failure:
    """Why the last renewal of a key failed, remembered so that the fleet does not ask again at
    once: the contract's code it is answered with, the authorization server's RFC 6749 code
    (empty for an outage), and until when (epoch seconds)."""

    error: str
    upstream_error: str
    until: int

    @property
    def is_outage(self) -> bool:
        return self.error == UpstreamUnavailable.error

    def well_formed(self) -> bool:
        """What a broker writes: a remembered kind, an RFC 6749 code for a refusal, none for an outage."""
        if self.error not in REMEMBERED:
            return False
        return self.upstream_error == "" if self.is_outage else is_error_code(self.upstream_error)

    def answer(self, now: float) -> BrokerError:
        """The error a request gets while the fleet remembers this failure."""
        retry_after = max(1, math.ceil(self.until - now))
        if self.is_outage:
            return UpstreamUnavailable(
                "the authorization server was unavailable moments ago; the fleet waits before asking again",
                retry_after=retry_after,
            )
        return REMEMBERED[self.error](
            f"the authorization server refused this token request recently: {self.upstream_error}",
            upstream_error=self.upstream_error,
            retry_after=retry_after,
        )


# The failures a fleet remembers, by the contract's error code they are answered with.
REMEMBERED: dict[str, type[BrokerError]] = {
    error.error: error for error in (UpstreamError, InvalidScope, UpstreamUnavailable)
}


def outage_backoff(retry_after: int | None) -> int:
    """Seconds the fleet leaves a key alone after a renewal found the authorization server down."""
    return min(OUTAGE_BACKOFF_MAX_SECONDS, max(OUTAGE_BACKOFF_MIN_SECONDS, retry_after or 0))


def remembered(error: BrokerError, now: float, negative_cache_seconds: int) -> tuple[Failure | None, BrokerError]:
    """What the fleet remembers of a renewal that failed with `error`, and the error to answer:
    a refusal for `NEGATIVE_CACHE_SECONDS`, an outage for a back-off (whose answer says the longer
    of the back-off and the server's own wish); None for any other failure, which nobody waits on."""
    if isinstance(error, UpstreamUnavailable):
        backoff = outage_backoff(error.retry_after)
        answer = UpstreamUnavailable(error.description, retry_after=max(backoff, error.retry_after or 0))
        return Failure(error.error, "", math.ceil(now + backoff)), answer
    if is_refusal(error) and negative_cache_seconds > 0:
        return Failure(error.error, error.upstream_error or "", int(now) + negative_cache_seconds), error
    return None, error
