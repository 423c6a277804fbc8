"""The authorization server's token endpoint: the client-credentials POST, retried within a deadline."""

from __future__ import annotations

import base64
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote_plus, urlencode

import urllib3
from urllib3.util import Retry

from broker import observability, xray
from broker.client_assertion import ASSERTION_TYPE, client_assertion
from broker.decisions import token_lifetime
from broker.errors import InvalidScope, ProfileMisconfigured, UpstreamError, UpstreamUnavailable
from broker.http_exchange import Answer, ExchangeFailed, ExchangeTimeout, pool_manager, post
from broker.profiles import AuthMethod, Profile
from broker.rfc6749 import is_access_token, is_error_code, is_granted_scope
from broker.sensitive import Sensitive
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


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A successful token response, validated."""

    access_token: Sensitive
    token_type: str
    expires_in: int
    scope: str | None


# How a client authenticates one token request: it adds to the request's form and headers.
# `deadline` bounds what it may ask of others (STS, for a web identity token).
Authentication = Callable[[Profile, dict[str, str], dict[str, str], float, float], None]


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
        # client authentication methods as strategies, one per auth_method
        self._authentications: dict[AuthMethod, Authentication] = {
            AuthMethod.CLIENT_SECRET_BASIC: _client_secret_basic,
            AuthMethod.CLIENT_SECRET_POST: _client_secret_post,
            AuthMethod.PRIVATE_KEY_JWT: _private_key_jwt,
            AuthMethod.AWS_WEB_IDENTITY_TOKEN: self._aws_web_identity_token,
        }

    def fetch(
        self, profile: Profile, scopes: frozenset[str], deadline: float, attempts: int = MAX_ATTEMPTS
    ) -> IssuedToken:
        """One token, retrying 429, 5xx and transport failures until `deadline` (epoch seconds),
        in at most `attempts` requests."""
        with xray.subsegment("token request", {"profile": profile.name, "service": observability.SERVICE}):
            return self._fetch(profile, scopes, deadline, attempts)

    def _fetch(self, profile: Profile, scopes: frozenset[str], deadline: float, attempts: int) -> IssuedToken:
        retry_after: float | None = None
        for attempt in range(1, attempts + 1):
            left = deadline - self._clock()
            if left <= 0:
                break
            started = self._clock()
            body, headers = self._token_request(profile, scopes, started, deadline)  # a fresh assertion each time
            try:
                # the deadline bounds the whole exchange: a server trickling its answer is cut off
                answer = post(
                    self._pool,
                    profile.token_url,
                    body,
                    headers,
                    deadline=deadline,
                    connect_timeout=CONNECT_TIMEOUT_SECONDS,
                    read_timeout=READ_TIMEOUT_SECONDS,
                    max_bytes=MAX_RESPONSE_BYTES,
                )
            except (ExchangeTimeout, ExchangeFailed) as failure:
                observability.token_request_done(profile.name, "unreachable", self._clock() - started, attempt)
                observability.logger.warning(
                    "token endpoint unreachable",
                    extra={"profile": profile.name, "attempt": attempt, "failure": type(failure).__name__},
                )
                retry_after = None
            else:
                status = answer.status
                observability.token_request_done(profile.name, str(status), self._clock() - started, attempt)
                if status not in RETRYABLE_STATUSES:
                    return self._token_response(profile, answer)
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
            "the authorization server did not issue a token in time",
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

    def _token_response(self, profile: Profile, answer: Answer) -> IssuedToken:
        document, status = answer.json_object(), answer.status
        if status != 200:
            code = document.get("error") if document else None
            if not is_error_code(code):
                raise UpstreamError(f"the authorization server answered HTTP {status} without an OAuth error")
            observability.logger.warning(
                "token request refused", extra={"profile": profile.name, "status": status, "upstream_error": code}
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
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise UpstreamError("the authorization server issued a token that is not a Bearer token")
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
            token_type="Bearer",
            expires_in=lifetime,
            scope=scope,
        )

    def _token_request(
        self, profile: Profile, scopes: frozenset[str], now: float, deadline: float
    ) -> tuple[str, dict[str, str]]:
        """The form body and headers for one client-credentials request (RFC 6749 §4.4.2)."""
        form = {"grant_type": "client_credentials"}
        if scopes:
            form["scope"] = " ".join(sorted(scopes))
        form.update(profile.token_params)
        headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
        self._authentications[profile.auth_method](profile, form, headers, now, deadline)
        return urlencode(form), headers

    def _aws_web_identity_token(
        self, profile: Profile, form: dict[str, str], headers: dict[str, str], now: float, deadline: float
    ) -> None:
        """The client assertion is a JWT STS issues the broker's role (Entra ID's federated
        identity credentials trust its issuer, subject and audience)."""
        if self._web_identity is None or profile.assertion_audience is None:
            raise ProfileMisconfigured(f"profile {profile.name}: no web identity tokens for {profile.auth_method}")
        assertion = self._web_identity.assertion(
            profile.assertion_audience, profile.assertion_algorithm, profile.name, deadline
        )
        form.update(
            client_id=profile.client_id, client_assertion_type=ASSERTION_TYPE, client_assertion=assertion.reveal()
        )


def _client_secret_basic(
    profile: Profile, form: dict[str, str], headers: dict[str, str], now: float, deadline: float
) -> None:
    # RFC 6749 §2.3.1: form-encode id and secret before joining and Base64-encoding them.
    user_pass = f"{quote_plus(profile.client_id)}:{quote_plus(_secret(profile).reveal())}"
    headers["Authorization"] = "Basic " + base64.b64encode(user_pass.encode()).decode()


def _client_secret_post(
    profile: Profile, form: dict[str, str], headers: dict[str, str], now: float, deadline: float
) -> None:
    form.update(client_id=profile.client_id, client_secret=_secret(profile).reveal())


def _private_key_jwt(
    profile: Profile, form: dict[str, str], headers: dict[str, str], now: float, deadline: float
) -> None:
    if profile.signing_key is None:
        raise ProfileMisconfigured(f"profile {profile.name}: no private_key for {profile.auth_method}")
    assertion = client_assertion(profile.signing_key, profile.client_id, profile.token_url, profile.key_id, now)
    form.update(client_id=profile.client_id, client_assertion_type=ASSERTION_TYPE, client_assertion=assertion)


def _secret(profile: Profile) -> Sensitive:
    if profile.client_secret is None:
        raise ProfileMisconfigured(f"profile {profile.name}: no client_secret for {profile.auth_method}")
    return profile.client_secret


def _backoff(attempt: int) -> float:
    """Exponential backoff with full jitter, so a fleet that failed together does not retry together."""
    # jitter, not cryptography: the standard generator is the right tool
    return random.uniform(0, min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))  # noqa: S311  # nosec B311
