"""The broker's errors, each carrying the contract's `error` code and status: the one mapping."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from broker.callers import CallerRule


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
