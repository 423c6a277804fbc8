"""The authorization server's token endpoint: the client-credentials POST, retried within a deadline."""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import urllib3
from urllib3.util import Retry

from broker import dpop, observability, xray
from broker.bounded import BoundedMap
from broker.client_auth import Attempt
from broker.decisions import token_lifetime
from broker.errors import InvalidScope, UpstreamError, UpstreamUnavailable
from broker.http_exchange import Answer, ExchangeFailed, ExchangeTimeout, Limits, pool_manager, post
from broker.profiles import Profile
from broker.rfc6749 import is_access_token, is_error_code, is_granted_scope
from broker.sensitive import Sensitive
from broker.token_binding import ProofOfPossession
from broker.web_identity import WebIdentityTokens

CONNECT_TIMEOUT_SECONDS = 3.05
READ_TIMEOUT_SECONDS = 10.0
MAX_ATTEMPTS = 4
MAX_RESPONSE_BYTES = 64 * 1024
BACKOFF_BASE_SECONDS = 0.25
BACKOFF_MAX_SECONDS = 4.0
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

# One pool per container: TLS sessions to the authorization server are reused across requests.
# Certificate verification is urllib3's default (CERT_REQUIRED) and is never turned off.
POOL = pool_manager(num_pools=8, maxsize=4)
# The latest DPoP nonce of each token URL a container asks (RFC 9449 §8): a bound.
NONCES_MAX = 256
# What an `invalid_dpop_proof` may name, as the log says it (never the server's own words).
PROOF_PARTS = re.compile(r"\b(htm|htu|iat|jti|nonce|typ|alg|jwk|ath|signature)\b")


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A successful token response, validated."""

    access_token: Sensitive
    token_type: str
    expires_in: int
    scope: str | None
    dpop_key: Sensitive | None = None  # the private JWK a DPoP token is bound to


class TokenEndpoint:
    """Asks an authorization server for tokens; the only module that speaks HTTP to one."""

    def __init__(
        self,
        pool: urllib3.PoolManager = POOL,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        web_identity: WebIdentityTokens | None = None,
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._sleep = sleep
        self._web_identity = web_identity
        self._nonces: BoundedMap[str, str] = BoundedMap(NONCES_MAX)

    def fetch(
        self, profile: Profile, scopes: frozenset[str], deadline: float, attempts: int = MAX_ATTEMPTS
    ) -> IssuedToken:
        """One token, retrying 429, 5xx and transport failures until `deadline` (epoch seconds),
        in at most `attempts` requests."""
        with xray.subsegment("token request", {"profile": profile.name, "service": observability.SERVICE}):
            return self._fetch(profile, scopes, deadline, attempts)

    def _fetch(self, profile: Profile, scopes: frozenset[str], deadline: float, attempts: int) -> IssuedToken:
        retry_after: float | None = None
        unresolved = False  # the token URL's host name did not resolve, at the last attempt
        bound = profile.binding.for_request()  # a DPoP token's key is made once, for it alone
        for attempt in range(1, attempts + 1):
            left = deadline - self._clock()
            if left <= 0:
                break
            started = self._clock()
            try:
                answer = self._exchange(profile, scopes, bound, deadline)
            except (ExchangeTimeout, ExchangeFailed) as failure:
                observability.token_request_done(profile.name, "unreachable", self._clock() - started, attempt)
                unresolved = str(failure) == "NameResolutionError"
                observability.logger.warning(
                    "token endpoint unreachable",
                    extra={
                        "profile": profile.name,
                        "attempt": attempt,
                        "failure": str(failure) or type(failure).__name__,
                    },
                )
                retry_after = None
            else:
                status = answer.status
                observability.token_request_done(profile.name, str(status), self._clock() - started, attempt)
                if status not in RETRYABLE_STATUSES:
                    return self._token_response(profile, answer, bound)
                retry_after = self._retry_after(answer.headers)
                observability.logger.warning(
                    "token endpoint busy",
                    extra={"profile": profile.name, "attempt": attempt, "status": status, "retry_after": retry_after},
                )
            wait = retry_after if retry_after is not None else _backoff(attempt)
            if attempt == attempts or self._clock() + wait >= deadline:
                break
            self._sleep(wait)
        observability.token_fetch_ended("unavailable")
        raise UpstreamUnavailable(
            "the token URL's host name does not resolve"
            if unresolved
            else "the authorization server did not issue a token in time",
            # always a hint: the contract promises retry_after with every upstream_unavailable
            retry_after=max(1, math.ceil(retry_after)) if retry_after is not None else 1,
        )

    def _retry_after(self, headers: urllib3.HTTPHeaderDict) -> float | None:
        """Seconds to wait from `Retry-After` (seconds or HTTP date) or Okta's `X-Rate-Limit-Reset`."""
        value = headers.get("Retry-After")
        if value:
            try:
                return Retry().parse_retry_after(value)
            except urllib3.exceptions.InvalidHeader:
                pass
        reset = headers.get("X-Rate-Limit-Reset")
        if reset and reset.isdigit():
            return max(0.0, int(reset) - self._clock())
        return None

    def _exchange(self, profile: Profile, scopes: frozenset[str], bound: ProofOfPossession, deadline: float) -> Answer:
        """One token request, and once more at once with the server's nonce if it answers
        `use_dpop_nonce` (RFC 9449 §8): that is no failure, and costs no attempt. The latest
        nonce of the token URL is kept from every answer, so a warm container sends it at first."""
        challenged = False
        while True:
            now = self._clock()
            form = {"grant_type": "client_credentials"}
            if scopes:
                form["scope"] = " ".join(sorted(scopes))
            form.update(profile.token_params)
            attempt = Attempt(profile.name, profile.client_id, profile.token_url, now, deadline, self._web_identity)
            credentials = profile.client_auth.credentials(attempt)  # a fresh assertion each time
            form.update(credentials.form)
            headers = {
                "Accept": "application/json",
                "Content-Type": "application/x-www-form-urlencoded",
                **credentials.headers,
                **bound.headers(profile.token_url, now, self._nonces.get(profile.token_url)),
            }
            # the deadline bounds the whole exchange: a server trickling its answer is cut off
            limits = Limits(deadline, CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS, MAX_RESPONSE_BYTES)
            answer = post(credentials.pool or self._pool, profile.token_url, urlencode(form), headers, limits)
            nonce = answer.headers.get(dpop.NONCE_HEADER)
            if not dpop.is_nonce(nonce):
                return answer
            self._nonces.put(profile.token_url, nonce)
            if challenged or bound.key is None or not _asks_for_nonce(answer):
                return answer
            challenged = True
            observability.logger.info(
                "the token endpoint gave a DPoP nonce; asking again with it", extra={"profile": profile.name}
            )

    def _token_response(self, profile: Profile, answer: Answer, bound: ProofOfPossession) -> IssuedToken:
        document, status = answer.json_object(), answer.status
        if status != 200:
            code = document.get("error") if document else None
            if not is_error_code(code):
                raise UpstreamError(f"the authorization server answered HTTP {status} without an OAuth error")
            named = PROOF_PARTS.search(str(document.get("error_description", ""))) if document else None
            observability.logger.warning(
                "token request refused",
                extra={
                    "profile": profile.name,
                    "status": status,
                    "upstream_error": code,
                    **({"proof_part": named.group(1)} if named and code == "invalid_dpop_proof" else {}),
                },
            )
            observability.token_fetch_ended("refused")
            refusal = InvalidScope if code == "invalid_scope" else UpstreamError
            raise refusal(f"the authorization server refused the token request: {code}", upstream_error=code)
        if document is None:
            raise UpstreamError("the authorization server's answer is not a JSON object")
        access_token = document.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise UpstreamError("the authorization server's answer has no access_token")
        if not is_access_token(access_token):  # a token that could be neither stored nor answered
            raise UpstreamError("the authorization server's access_token is not RFC 6749 text (printable ASCII)")
        token_type = document.get("token_type", "Bearer")
        wanted = profile.binding.token_type
        if not isinstance(token_type, str) or token_type.lower() != wanted.lower():
            # never an unbound token for a dpop profile, nor a bound one for a bearer profile
            raise UpstreamError(f"the authorization server issued a token that is not a {wanted} token")
        lifetime = token_lifetime(document.get("expires_in"), access_token, self._clock())
        if lifetime is None:
            raise UpstreamError("the authorization server's answer has no usable expires_in")
        scope = document.get("scope")
        if scope is not None:
            scope = " ".join(scope.split()) if isinstance(scope, str) else scope  # one space apart, as stored
            if not is_granted_scope(scope):
                raise UpstreamError("the authorization server's scope is not a list of RFC 6749 scope tokens")
        return IssuedToken(
            access_token=Sensitive(access_token),
            token_type=wanted,
            expires_in=lifetime,
            scope=scope,
            dpop_key=bound.key,
        )


def _asks_for_nonce(answer: Answer) -> bool:
    """A `use_dpop_nonce` refusal (RFC 9449 §8: HTTP 400 with the nonce in `DPoP-Nonce`)."""
    document = answer.json_object() if answer.status == 400 else None
    return document is not None and document.get("error") == dpop.USE_NONCE


def _backoff(attempt: int) -> float:
    """Exponential backoff with full jitter, so a fleet that failed together does not retry together."""
    # jitter, not cryptography: the standard generator is the right tool
    return random.uniform(0, min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))  # noqa: S311  # nosec B311
