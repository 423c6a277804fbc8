"""The consumer side of the broker: one broker call per key and token lifetime per process.

Needs only boto3 (and urllib3, which botocore brings). Tokens are kept in memory, with two
windows as botocore's `RefreshableCredentials` has them: in the advisory window (the last
minute, or quarter of its life, before a token would fall below the caller's min TTL) one thread
asks the broker for the next token while the others keep the current one; in the mandatory
window (below the min TTL) callers wait for one broker call, shared among threads.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from urllib3.util import parse_url

from token_client.dpop import DpopKey, KeyNotUsable
from token_client.errors import BrokerFailed, ClientMisconfigured, DpopRequired, TokenBrokerError
from token_client.tokens import Ask, AskAhead, Held, Token, UseKept, WaitForOther, next_move
from token_client.transports import HttpTransport, LambdaTransport

if TYPE_CHECKING:  # boto3-stubs' types, where installed; nothing is imported at run time
    from boto3.session import Session
    from mypy_boto3_lambda import LambdaClient

BROKER_FUNCTION_ENV = "TOKEN_BROKER_FUNCTION"
BROKER_URL_ENV = "TOKEN_BROKER_URL"
BROKER_AUDIENCE_ENV = "TOKEN_BROKER_AUDIENCE"
# The broker's own floor (MIN_TTL_SECONDS) is 60 s; a token is not kept past that here either.
DEFAULT_MIN_TTL_SECONDS = 60
# A thread waiting for another's broker call gives up after this long.
WAIT_FOR_OTHER_SECONDS = 25.0
# The resource servers' DPoP nonces a client keeps, one per origin.
NONCES_MAX = 256
_NONCE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,512}")  # RFC 9449 §8.1: NQCHAR

logger = logging.getLogger("token_client")

_Key = tuple[str, frozenset[str] | None]
# Scopes as a list, or as OAuth writes them: one string, space-separated ("orders.read orders.write").
Scopes = str | Iterable[str]


@dataclass
class _Call:
    """One broker call in flight; other threads asking for the same key wait on it."""

    done: threading.Event = field(default_factory=threading.Event)
    error: TokenBrokerError | None = None
    advisory: bool = False  # its failure leaves the current token in place


class TokenClient:
    """Gets tokens from the broker and keeps them in memory until they near `min_ttl`.

    Thread-safe: threads asking for the same key share one broker call.
    """

    def __init__(  # the contract's keyword options, each a way to name the broker or its credentials
        self,
        function_arn: str | None = None,
        lambda_client: LambdaClient | None = None,
        *,
        url: str | None = None,
        audience: str | None = None,
        region: str | None = None,
        session: Session | None = None,
        clock: Callable[[], float] = time.time,
        function_name: str | None = None,
    ) -> None:
        """The broker is its function, by its alias ARN (`function_arn`, the stack output
        TokenBrokerAliasArn; else env `TOKEN_BROKER_FUNCTION`), invoked directly with a caller
        proof; or, for services that are not Lambdas, its HTTP route (`url`, else env
        `TOKEN_BROKER_URL`; `region`, else the URL's or the session's), signed with SigV4, with a
        caller proof for the broker's `audience` (else env `TOKEN_BROKER_AUDIENCE`: the stack
        output TokenBrokerAudience). `session` (a boto3 Session, default: a new one) provides the
        credentials; the client signs each Invoke itself unless `lambda_client` is given.
        `function_name` is the contract's first name for `function_arn`: the same ARN."""
        if function_arn and function_name and function_arn != function_name:
            raise ClientMisconfigured("name the broker once: function_arn and function_name are the same parameter")
        function_arn = function_arn or function_name
        self._session = session
        self._clock = clock
        name = function_arn or (None if url else os.environ.get(BROKER_FUNCTION_ENV))
        address = url or (None if function_arn else os.environ.get(BROKER_URL_ENV))
        if name and address:
            raise ClientMisconfigured("name the broker once: by function ARN or by URL, not both")
        self._transport: LambdaTransport | HttpTransport
        if name:
            self._transport = LambdaTransport(name, self._boto_session, lambda_client, clock)
        elif address:
            audience = audience or os.environ.get(BROKER_AUDIENCE_ENV)
            if not audience:
                raise ClientMisconfigured(
                    f"name the broker's audience for its HTTP route: TokenClient(url=..., audience=...) or env "
                    f"{BROKER_AUDIENCE_ENV} (the stack output TokenBrokerAudience, the direct function's ARN)"
                )
            self._transport = HttpTransport(address, self._boto_session, audience, region, clock)
        else:
            raise ClientMisconfigured(
                f"name the broker: TokenClient(function_arn=...) or env {BROKER_FUNCTION_ENV} (its alias ARN, the "
                f"stack output TokenBrokerAliasArn), or TokenClient(url=...) or env {BROKER_URL_ENV} (its HTTP route)"
            )
        self.function_arn = name
        self._lock = threading.Lock()
        self._tokens: dict[_Key, Token] = {}
        self._calls: dict[_Key, _Call] = {}
        self._refused: set[_Key] = set()
        self._advised: dict[_Key, str] = {}  # the token each key's advisory call was made for
        self._nonces: dict[tuple[str | None, str | None, int | None], str] = {}  # resource servers' DPoP nonces

    def token(self, profile: str, scopes: Scopes | None = None, min_ttl: int | None = None) -> Token:
        """A token for `profile` with at least `min_ttl` seconds (default 60) left, with its
        expiry, scope and type. `scopes` is a list, or one space-separated string; default: the
        profile's. What to do is `next_move`'s; this carries it out."""
        key = _key(profile, scopes)
        floor = DEFAULT_MIN_TTL_SECONDS if min_ttl is None else min_ttl
        while True:
            with self._lock:
                held = Held(self._tokens.get(key), key in self._calls, key in self._refused, self._advised.get(key))
                move = next_move(held, floor, self._clock())
                match move:  # what the move claims is claimed under the lock
                    case AskAhead():
                        self._advised[key] = move.token.value
                        call = self._calls[key] = _Call(advisory=True)
                    case Ask():
                        call = self._calls[key] = _Call()
                    case WaitForOther():
                        call = self._calls[key]
            match move:
                case UseKept():
                    return move.token
                case AskAhead():
                    return self._advise(key, call, move.token, move.min_ttl)
                case Ask():
                    return self._lead(key, call, min_ttl, move.force_refresh)
            if not call.done.wait(WAIT_FOR_OTHER_SECONDS):
                raise TokenBrokerError("broker_unreachable", 503, "timed out waiting for another thread's broker call")
            if call.error is not None and not call.advisory:
                raise call.error
            # the other thread's token may still be too short for this caller's min_ttl: look again

    def get_token(self, profile: str, scopes: Scopes | None = None, min_ttl: int | None = None) -> str:
        """An access token for `profile` with at least `min_ttl` seconds (default 60) left."""
        return self.token(profile, scopes, min_ttl).value

    def auth_header(self, profile: str, scopes: Scopes | None = None, min_ttl: int | None = None) -> dict[str, str]:
        """`{"Authorization": "Bearer …"}` for `profile`; a DPoP profile needs `headers`."""
        token = self.token(profile, scopes, min_ttl)
        if token.dpop_key is not None:
            raise DpopRequired(
                f"profile {profile}'s tokens are DPoP-bound: use headers(profile, method, url), which adds a proof "
                "for each request"
            )
        return {"Authorization": token.authorization}

    def headers(
        self, profile: str, method: str, url: str, scopes: Scopes | None = None, min_ttl: int | None = None
    ) -> dict[str, str]:
        """What one request to `url` needs: `{"Authorization": "Bearer …"}`, or for a DPoP token
        `{"Authorization": "DPoP …", "DPoP": "<a fresh proof for method and url>"}`, with the
        nonce that `url`'s origin gave last (see `remember_nonce`)."""
        return self.request_headers(self.token(profile, scopes, min_ttl), method, url)

    def request_headers(self, token: Token, method: str, url: str) -> dict[str, str]:
        """`token.headers` with the nonce this client keeps for `url`'s origin."""
        return token.headers(method, url, self._nonces.get(_origin(url)) if token.dpop_key is not None else None)

    def remember_nonce(self, url: str, nonce: object) -> bool:
        """Keeps a resource server's `DPoP-Nonce` for its origin; whether it was one to keep."""
        if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
            return False
        origin = _origin(url)
        with self._lock:
            if origin not in self._nonces and len(self._nonces) >= NONCES_MAX:
                del self._nonces[next(iter(self._nonces))]
            self._nonces[origin] = nonce
        return True

    def invalidate(self, profile: str, scopes: Scopes | None = None, *, token: Token | str | None = None) -> None:
        """The API refused a token: forget it, and ask the broker for a new one (with
        `force_refresh`) next time. With `token`, only if that is still the one kept, so that a
        thread holding an old token never evicts a newer one."""
        key = _key(profile, scopes)
        refused = token.value if isinstance(token, Token) else token
        with self._lock:
            kept = self._tokens.get(key)
            if refused is not None and (kept is None or kept.value != refused):
                return
            self._tokens.pop(key, None)
            self._refused.add(key)

    def _advise(self, key: _Key, call: _Call, current: Token, wanted: int) -> Token:
        """One advisory call, for a token that outlives the advisory window; if it fails, the
        current token serves on (the mandatory window will ask again) and the failure is logged."""
        try:
            return self._lead(key, call, wanted, force_refresh=False)
        except TokenBrokerError as error:
            logger.info(
                "no token ahead of expiry; keeping the current one",
                extra={"profile": key[0], "error": error.error, "expires_in": int(current.expires_in(self._clock()))},
            )
            return current

    def _lead(self, key: _Key, call: _Call, min_ttl: int | None, force_refresh: bool) -> Token:
        try:
            token = self._ask(key, min_ttl, force_refresh)
        except TokenBrokerError as error:
            call.error = error
            raise
        finally:
            with self._lock:
                del self._calls[key]
                if call.error is None:
                    self._refused.discard(key)
            call.done.set()
        with self._lock:
            self._tokens[key] = token
        return token

    def _ask(self, key: _Key, min_ttl: int | None, force_refresh: bool) -> Token:
        profile, scopes = key
        request: dict[str, Any] = {"profile": profile}
        if scopes is not None:
            request["scopes"] = sorted(scopes)
        if min_ttl is not None:
            request["min_ttl"] = min_ttl
        if force_refresh:
            request["force_refresh"] = True
        # one id per broker call, in this library's log lines and (direct calls) in the broker's
        said = {"profile": profile, "transport": self._transport.name, "request_id": uuid.uuid4().hex}
        try:
            token = self._token_of(self._transport.ask(request, said["request_id"]))
        except TokenBrokerError as error:
            logger.warning(
                "no token from the broker", extra={**said, "error": error.error, "retryable": error.retryable}
            )
            raise
        logger.debug("token from the broker", extra={**said, "expires_in": int(token.expires_in(self._clock()))})
        return token

    def _token_of(self, answer: dict[str, Any]) -> Token:
        if "error" in answer:
            retry_after = answer.get("retry_after")
            raise TokenBrokerError(
                str(answer["error"]),
                int(answer.get("status", 500)),
                str(answer.get("error_description", "")),
                retry_after if isinstance(retry_after, int) else None,
            )
        value, expires_in = answer.get("access_token"), answer.get("expires_in")
        if not isinstance(value, str) or not value or not isinstance(expires_in, int):
            raise BrokerFailed("the broker's answer has no access_token and expires_in")
        scope, token_type, jwk = answer.get("scope"), answer.get("token_type"), answer.get("dpop_key")
        if (token_type == "DPoP") != isinstance(jwk, dict):
            raise BrokerFailed("the broker's answer pairs a DPoP token and its key wrongly")
        try:
            dpop_key = DpopKey(jwk) if isinstance(jwk, dict) else None
        except KeyNotUsable as problem:
            raise BrokerFailed(f"the broker's DPoP key cannot sign: {problem}") from None
        now = self._clock()
        return Token(
            value,
            now + expires_in,
            scope if isinstance(scope, str) else "",
            token_type if isinstance(token_type, str) and token_type else "Bearer",
            received_at=now,
            dpop_key=dpop_key,
        )

    def _boto_session(self) -> Session:
        if self._session is None:
            import boto3  # made on first use, so importing this module costs no session

            self._session = boto3.session.Session()
        return self._session


def same_origin(first: str, second: str) -> bool:
    """Whether two URLs have one origin (scheme, host, port), read as urllib3 reads them: a token
    sent to one origin is never sent to another by an adapter's retry."""
    return _origin(first) == _origin(second)


def _origin(url: str) -> tuple[str | None, str | None, int | None]:
    parsed = parse_url(url)
    scheme = (parsed.scheme or "").lower()
    return scheme, (parsed.host or "").lower(), parsed.port or {"http": 80, "https": 443}.get(scheme)


def _key(profile: str, scopes: Scopes | None) -> _Key:
    return profile, scope_set(scopes)


def scope_set(scopes: Scopes | None) -> frozenset[str] | None:
    """A string is OAuth's space-separated scope list, never its characters."""
    if scopes is None:
        return None
    if isinstance(scopes, str):
        return frozenset(scopes.split())
    listed = list(scopes)
    if not all(isinstance(scope, str) for scope in listed):
        raise TypeError("scopes are strings: a list of them, or one space-separated string")
    return frozenset(listed)
