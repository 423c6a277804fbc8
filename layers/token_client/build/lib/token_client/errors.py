"""What can go wrong when asking the broker, as exceptions a caller can act on.

`TokenBrokerError` carries the broker contract's `error`, `status`, `description` and
`retry_after`. Its subclasses are the failures of asking itself: `BrokerUnreachable` is worth
retrying; `BrokerForbidden`, `BrokerNotFound` and `ClientMisconfigured` are not until someone
changes a permission or a setting. The cause (botocore's or urllib3's exception) is kept as
`__cause__`.
"""

from __future__ import annotations

# The broker's own answers that a retry after `retry_after` may turn into a token.
RETRYABLE_ERRORS = frozenset({"upstream_unavailable", "authentication_unavailable", "broker_unreachable"})


class TokenBrokerError(Exception):
    """The broker answered with an error, or could not be asked.

    `error` and `status` are the broker contract's (`invalid_scope`, 400; `upstream_unavailable`,
    503; ...) or one of this library's subclasses'. `retry_after` is in seconds, when known.
    """

    def __init__(self, error: str, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(f"{error} ({status}): {description}")
        self.error = error
        self.status = status
        self.description = description
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """Whether the same call may succeed later without anyone changing anything."""
        return self.error in RETRYABLE_ERRORS


class BrokerUnreachable(TokenBrokerError):
    """The broker could not be asked: a timeout, a connection failure, throttling. Retryable."""

    def __init__(self, description: str, retry_after: int | None = None) -> None:
        super().__init__("broker_unreachable", 503, description, retry_after)


class BrokerFailed(TokenBrokerError):
    """The broker was asked but did not answer as its contract says (a crash, a timeout inside it)."""

    def __init__(self, description: str) -> None:
        super().__init__("broker_failed", 502, description)


class BrokerForbidden(TokenBrokerError):
    """This caller may not invoke the broker (`lambda:InvokeFunction`) or call its route
    (`execute-api:Invoke`): a permission to grant, not a call to retry."""

    def __init__(self, description: str) -> None:
        super().__init__("broker_forbidden", 403, description)


class BrokerNotFound(TokenBrokerError):
    """No broker where the configuration points: a wrong function ARN, alias, region or URL."""

    def __init__(self, description: str) -> None:
        super().__init__("broker_not_found", 404, description)


class ClientMisconfigured(TokenBrokerError, ValueError):
    """The client cannot ask at all: no broker named, an ARN that is not one, no AWS credentials."""

    def __init__(self, description: str) -> None:
        super().__init__("client_misconfigured", 500, description)
