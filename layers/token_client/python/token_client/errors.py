"""What can go wrong when asking the broker, as exceptions a caller can act on.

`TokenBrokerError` carries the broker contract's `error`, `status`, `description` and
`retry_after`. Its subclasses are the failures of asking itself: `BrokerUnreachable` is worth
retrying; `BrokerForbidden`, `BrokerNotFound` and `ClientMisconfigured` are not until someone
changes a permission or a setting. The cause (botocore's or urllib3's exception) is kept as
`__cause__`. An HTTP client's adapter raises them as its library's errors too (`raised_as`),
with no token or proof left in the request or response they hold.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, cast

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


class DpopRequired(TokenBrokerError, TypeError):
    """A DPoP-bound token asked for as a bare `Authorization` header: each request needs its own
    proof, which `TokenClient.headers(profile, method, url)` and the adapters add."""

    def __init__(self, description: str) -> None:
        super().__init__("dpop_required", 400, description)


@contextlib.contextmanager
def raised_as(library_error: type[Exception], **arguments: Any) -> Iterator[None]:
    """A `TokenBrokerError` raised inside is raised again, from it, as an exception of both its
    own class and `library_error` (made with `arguments`): an adapter's caller catches it with
    `except requests.RequestException` or `except BrokerUnreachable` alike."""
    try:
        yield
    except TokenBrokerError as error:
        for held in arguments.values():
            _forget_credentials(held)
        raise _also(error, library_error, arguments) from error


# The headers that carry a token or its proof: never kept in an error that may be logged.
CREDENTIAL_HEADERS = ("Authorization", "DPoP")


def _forget_credentials(held: object) -> None:
    """Takes the token (and its proof) out of a request or response that the library's error will
    hold, and out of the request a response holds: the error may be logged, or kept."""
    for item in (held, _request_of(held)):
        headers = getattr(item, "headers", None)
        if headers is not None:
            for name in CREDENTIAL_HEADERS:
                headers.pop(name, None)


def _request_of(response: object) -> object:
    try:
        return getattr(response, "request", None)
    except RuntimeError:  # httpx: a response made without a request
        return None


def _also(error: TokenBrokerError, library_error: type[Exception], arguments: dict[str, Any]) -> TokenBrokerError:
    kind = _combined(type(error), library_error)
    combined = kind.__new__(kind, str(error))
    library_error.__init__(combined, str(error), **arguments)
    combined.__dict__.update(vars(error))
    return combined


class _Made(Exception):
    """Ends the chain of `__init__` calls of the library's error: what the broker's error holds
    is copied, not made again."""

    def __init__(self, *args: object, **_: object) -> None:
        BaseException.__init__(self, *args)


_COMBINED: dict[tuple[type[TokenBrokerError], type[Exception]], type[TokenBrokerError]] = {}


def _combined(kind: type[TokenBrokerError], library_error: type[Exception]) -> type[TokenBrokerError]:
    """`kind` and `library_error` in one class, made once; the library's first, so that an
    `OSError` (requests') lays the instance out."""
    if (kind, library_error) not in _COMBINED:
        namespace = {"__module__": kind.__module__, "__doc__": kind.__doc__}
        combined = type(kind.__name__, (library_error, _Made, kind), namespace)
        _COMBINED[kind, library_error] = cast("type[TokenBrokerError]", combined)
    return _COMBINED[kind, library_error]
