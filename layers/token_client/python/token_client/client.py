"""The consumer side of the broker: one invocation per key and token lifetime per container.

Needs only boto3 and the standard library, both of which every Python Lambda runtime has.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from token_client.caller_proof import Broker, sign_caller_proof

BROKER_FUNCTION_ENV = "TOKEN_BROKER_FUNCTION"
# The broker's own floor (MIN_TTL_SECONDS) is 60 s; a token is not kept past that here either.
DEFAULT_MIN_TTL_SECONDS = 60
# A thread waiting for another's broker call gives up after this long and calls itself.
WAIT_FOR_OTHER_SECONDS = 20.0
# The broker accepts a proof for 5 minutes after it was signed; a new one is made after 4.
PROOF_REUSE_SECONDS = 240.0

_Key = tuple[str, frozenset[str] | None]


class TokenBrokerError(Exception):
    """The broker answered with an error, or could not be asked.

    `error` and `status` are the broker contract's (`invalid_scope`, 400; `upstream_unavailable`,
    503; ...); `broker_unreachable` (503) and `broker_failed` (502) mean the invocation itself
    failed. `retry_after` is in seconds, when known.
    """

    def __init__(self, error: str, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(f"{error} ({status}): {description}")
        self.error = error
        self.status = status
        self.description = description
        self.retry_after = retry_after


@dataclass
class _Token:
    value: str
    expires_at: float

    def __repr__(self) -> str:  # never print the token itself
        return f"_Token(expires_at={self.expires_at})"


@dataclass
class _Call:
    """One broker invocation in flight; other threads asking for the same key wait on it."""

    done: threading.Event = field(default_factory=threading.Event)
    error: TokenBrokerError | None = None


@dataclass
class _Proof:
    fields: dict[str, Any]
    credentials: tuple[str, str | None]  # access key id and session token it was signed with
    signed_at: float

    def __repr__(self) -> str:  # the proof holds a session token
        return f"_Proof(signed_at={self.signed_at})"


class TokenClient:
    """Gets tokens from the broker and keeps them in memory until they near `min_ttl`.

    Thread-safe: threads asking for the same key share one broker invocation.
    """

    def __init__(
        self,
        function_name: str | None = None,
        lambda_client: Any = None,
        *,
        session: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`function_name`, the broker's function ARN (an alias ARN too), defaults to env
        `TOKEN_BROKER_FUNCTION`. `session` (a boto3 Session, default: a new one) signs the caller
        proofs and makes the Lambda client, unless `lambda_client` is given."""
        name = function_name or os.environ.get(BROKER_FUNCTION_ENV)
        if not name:
            raise ValueError(f"name the broker: TokenClient(function_name=...) or env {BROKER_FUNCTION_ENV}")
        self._broker = Broker(name)
        self.function_name = name
        self._lambda = lambda_client
        self._session = session
        self._proof: _Proof | None = None
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[_Key, _Token] = {}
        self._calls: dict[_Key, _Call] = {}
        self._refused: set[_Key] = set()

    def get_token(self, profile: str, scopes: Iterable[str] | None = None, min_ttl: int | None = None) -> str:
        """An access token for `profile` with at least `min_ttl` seconds (default 60) left."""
        key = _key(profile, scopes)
        floor = DEFAULT_MIN_TTL_SECONDS if min_ttl is None else min_ttl
        while True:
            with self._lock:
                token = self._tokens.get(key)
                if token is not None and key not in self._refused and token.expires_at - self._clock() >= floor:
                    return token.value
                force_refresh = key in self._refused
                call = self._calls.get(key)
                leader = call is None
                if call is None:
                    call = self._calls[key] = _Call()
            if leader:
                return self._lead(key, call, min_ttl, force_refresh)
            if not call.done.wait(WAIT_FOR_OTHER_SECONDS):
                raise TokenBrokerError("broker_unreachable", 503, "timed out waiting for the broker")
            if call.error is not None:
                raise call.error
            # the other thread's token may still be too short for this caller's min_ttl: look again

    def auth_header(
        self, profile: str, scopes: Iterable[str] | None = None, min_ttl: int | None = None
    ) -> dict[str, str]:
        """`{"Authorization": "Bearer …"}` for `profile`."""
        return {"Authorization": f"Bearer {self.get_token(profile, scopes, min_ttl)}"}

    def invalidate(self, profile: str, scopes: Iterable[str] | None = None) -> None:
        """The API refused the token: forget it, and ask the broker for a new one next time."""
        key = _key(profile, scopes)
        with self._lock:
            self._tokens.pop(key, None)
            self._refused.add(key)

    def _lead(self, key: _Key, call: _Call, min_ttl: int | None, force_refresh: bool) -> str:
        try:
            token = self._invoke(key, min_ttl, force_refresh)
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
        return token.value

    def _invoke(self, key: _Key, min_ttl: int | None, force_refresh: bool) -> _Token:
        profile, scopes = key
        request: dict[str, Any] = {"profile": profile}
        if scopes is not None:
            request["scopes"] = sorted(scopes)
        if min_ttl is not None:
            request["min_ttl"] = min_ttl
        if force_refresh:
            request["force_refresh"] = True
        request["caller_proof"] = self._caller_proof()
        try:
            response = self._client().invoke(
                FunctionName=self.function_name, InvocationType="RequestResponse", Payload=json.dumps(request).encode()
            )
            payload = response["Payload"].read()
        except Exception as error:  # botocore's ClientError, BotoCoreError and transport failures alike
            raise TokenBrokerError(
                "broker_unreachable", 503, f"the broker could not be invoked: {type(error).__name__}"
            ) from None
        if response.get("FunctionError"):
            raise TokenBrokerError("broker_failed", 502, f"the broker failed ({response['FunctionError']})")
        try:
            answer = json.loads(payload)
        except ValueError:
            raise TokenBrokerError("broker_failed", 502, "the broker's answer is not JSON") from None
        if not isinstance(answer, dict):
            raise TokenBrokerError("broker_failed", 502, "the broker's answer is not a JSON object")
        if "error" in answer:
            raise TokenBrokerError(
                str(answer["error"]),
                int(answer.get("status", 500)),
                str(answer.get("error_description", "")),
                answer.get("retry_after"),
            )
        value, expires_in = answer.get("access_token"), answer.get("expires_in")
        if not isinstance(value, str) or not isinstance(expires_in, int):
            raise TokenBrokerError("broker_failed", 502, "the broker's answer has no access_token and expires_in")
        return _Token(value, self._clock() + expires_in)

    def _caller_proof(self) -> dict[str, Any]:
        """One proof per 4 minutes and set of credentials; a new one when the credentials change."""
        credentials = self._boto_session().get_credentials()
        if credentials is None:
            raise TokenBrokerError("no_credentials", 500, "no AWS credentials to sign a caller proof with")
        frozen = credentials.get_frozen_credentials()
        identity = (frozen.access_key, frozen.token)
        now = self._clock()
        with self._lock:
            proof = self._proof
            if proof is not None and proof.credentials == identity and now - proof.signed_at < PROOF_REUSE_SECONDS:
                return proof.fields
        proof = _Proof(sign_caller_proof(frozen, self._broker), identity, now)
        with self._lock:
            self._proof = proof
        return proof.fields

    def _boto_session(self) -> Any:
        if self._session is None:
            import boto3  # made on first use, so importing this module costs no session

            self._session = boto3.session.Session()
        return self._session

    def _client(self) -> Any:
        if self._lambda is None:
            self._lambda = self._boto_session().client("lambda")
        return self._lambda


def _key(profile: str, scopes: Iterable[str] | None) -> _Key:
    return profile, frozenset(scopes) if scopes is not None else None
