"""A real OAuth 2.0 authorization server (Authlib's client-credentials grant) on loopback.

Tests and the demo register clients, then point profiles at `token_url`. Every token request
is recorded (client, authentication method, scope, form), and the server can be told to
answer slowly, with 5xx or 429, or with garbage, to exercise the broker's failure handling.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from flask import Flask, Response, request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OctKey, RSAKey

from devstack.loopback import LoopbackServer

JWT_SIGNING_KEY = OctKey.generate_key(256)
logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request is noise here


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]


class PrivateKeyJwt(JWTBearerClientAssertion):  # type: ignore[misc]
    """RFC 7523 client authentication: checks the signature with the client's public key,
    `aud` against this server's token URL, and refuses a `jti` it has seen before."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, server: LocalAuthorizationServer) -> None:
        super().__init__(validate_jti=True, leeway=5)
        self._server = server
        self.seen_jti: set[str] = set()

    def get_audiences(self) -> list[str]:
        return [self._server.token_url]

    def validate_jti(self, claims: Any, jti: str) -> bool:
        if jti in self.seen_jti:
            return False
        self.seen_jti.add(jti)
        return True

    def resolve_client_public_key(self, client: LocalClient) -> Any:
        pem = client.public_key_pem or ""
        try:
            return RSAKey.import_key(pem)
        except (JoseError, ValueError):
            return ECKey.import_key(pem)


@dataclass
class LocalClient(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str
    auth_method: str = "client_secret_basic"
    public_key_pem: str | None = None
    scopes: tuple[str, ...] = ("customScope", "orders.read", "orders.write")

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return ""

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in (scope or "").split() if s in self.scopes)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


@dataclass(frozen=True)
class Fault:
    """An answer the server gives instead of a token (or before one, with `delay` alone)."""

    status: int = 503
    body: str = '{"error": "temporarily_unavailable"}'
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content_type: str = "application/json"
    trickle: float = 0.0  # seconds between the body's bytes, sent one at a time

    def response(self) -> Response:
        """The answer, after `delay`; the body trickled when `trickle` says so."""
        time.sleep(self.delay)
        body: Any = _trickled(self.body, self.trickle) if self.trickle else self.body
        return Response(body, status=self.status, headers=self.headers, content_type=self.content_type)


class Faults:
    """The answers a local server gives instead of its own, one per request, in order."""

    def __init__(self) -> None:
        self._queue: deque[Fault] = deque()
        self._lock = threading.Lock()

    def add(self, *faults: Fault) -> None:
        with self._lock:
            self._queue.extend(faults)

    def next(self) -> Fault | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()


@dataclass(frozen=True)
class TokenRequestRecord:
    client_id: str | None
    auth_method: str
    scope: str | None
    form: dict[str, str]
    status: int
    arrived: float  # epoch seconds


class LocalAuthorizationServer:
    """Start with `start()`, stop with `stop()`; or use it as a context manager."""

    def __init__(self, port: int = 0) -> None:
        self.clients: dict[str, LocalClient] = {}
        self.lifetime = 3600
        self.send_expires_in = True
        self.jwt_tokens = False
        self.delay = 0.0
        # while set, every request gets this answer: an outage, where `fail_next` is a blip
        self.outage: Fault | None = None
        self.arrived = 0  # token requests received, answered or not yet
        # the most token requests it was answering at once (since a reset: hung ones from before
        # do not count)
        self.peak_in_flight = 0
        self._in_flight: Counter[int] = Counter()  # by generation
        self.issued: list[str] = []
        self.requests: list[TokenRequestRecord] = []
        self.faults = Faults()
        self._generation = 0
        self._lock = threading.Lock()
        self._server = LoopbackServer(self._build_app(), "local-oauth", port)

    @property
    def token_url(self) -> str:
        return f"{self._server.url}/oauth2/v1/token"

    def start(self) -> LocalAuthorizationServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> LocalAuthorizationServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_client(
        self,
        client_id: str,
        client_secret: str = "",
        auth_method: str = "client_secret_basic",
        public_key_pem: str | None = None,
    ) -> LocalClient:
        """A client that authenticates with a secret, or with `private_key_jwt` and a public key."""
        client = LocalClient(client_id, client_secret, auth_method, public_key_pem)
        self.clients[client_id] = client
        return client

    def fail_next(self, *faults: Fault) -> None:
        """The next requests get these answers, one each, in order."""
        self.faults.add(*faults)

    def reset(self) -> None:
        self.faults.clear()
        with self._lock:
            self.requests.clear()
            self._generation += 1
            self.peak_in_flight = 0
            self.arrived = 0
        self.lifetime, self.send_expires_in, self.jwt_tokens, self.delay = 3600, True, False, 0.0
        self.outage = None

    def token_requests(self, client_id: str | None = None) -> list[TokenRequestRecord]:
        with self._lock:
            return [r for r in self.requests if client_id is None or r.client_id == client_id]

    def _build_app(self) -> Flask:
        app = Flask("local-oauth")
        app.config["OAUTH2_SCOPES_SUPPORTED"] = ["customScope", "orders.read", "orders.write", "admin"]
        server = AuthorizationServer(app, query_client=self.clients.get, save_token=lambda token, req: None)
        server.register_grant(ClientCredentialsGrant)
        self.private_key_jwt = PrivateKeyJwt(self)
        server.register_client_auth_method(PrivateKeyJwt.CLIENT_AUTH_METHOD, self.private_key_jwt)
        server.register_token_generator("client_credentials", self._generate_token)

        @app.post("/oauth2/v1/token")
        def token() -> Response:
            arrived = time.time()
            generation = self._generation
            with self._lock:
                self.arrived += 1
                self._in_flight[generation] += 1
                self.peak_in_flight = max(self.peak_in_flight, self._in_flight[self._generation])
            try:
                response = self._answer(server)
            finally:
                with self._lock:
                    self._in_flight[generation] -= 1
            self._record(response.status_code, generation, arrived)
            return response

        return app

    def _answer(self, server: AuthorizationServer) -> Response:
        if self.delay:
            time.sleep(self.delay)
        fault = self.faults.next() or self.outage
        if fault is not None:
            return fault.response()
        response: Response = server.create_token_response()
        if response.status_code == 200 and not self.send_expires_in:
            document = response.get_json()
            document.pop("expires_in", None)
            response.set_data(json.dumps(document))
        return response

    def _generate_token(
        self, client: LocalClient, grant_type: str, user: Any, scope: str, **kwargs: Any
    ) -> dict[str, Any]:
        now = int(time.time())
        if self.jwt_tokens:
            claims = {
                "iss": "local-oauth",
                "sub": client.client_id,
                "iat": now,
                "exp": now + self.lifetime,
                "scp": scope,
            }
            access_token = jwt.encode({"alg": "HS256"}, claims, JWT_SIGNING_KEY)
        else:
            access_token = secrets.token_urlsafe(32)
        with self._lock:
            self.issued.append(access_token)
        token = {"access_token": access_token, "token_type": "Bearer", "expires_in": self.lifetime}
        if scope:
            token["scope"] = scope
        return token

    def _record(self, status: int, generation: int, arrived: float) -> None:
        form = request.form.to_dict()
        authorization = request.headers.get("Authorization", "")
        if authorization.startswith("Basic "):
            method = "client_secret_basic"
            client_id = request.authorization.username if request.authorization else None
        elif "client_assertion" in form:
            method, client_id = "private_key_jwt", form.get("client_id")
        elif "client_secret" in form:
            method, client_id = "client_secret_post", form.get("client_id")
        else:
            method, client_id = "none", form.get("client_id")
        record = TokenRequestRecord(client_id, method, form.get("scope"), form, status, arrived)
        with self._lock:
            if generation == self._generation:  # a request that outlived a reset is not counted
                self.requests.append(record)


def _trickled(body: str, pause: float) -> Iterator[bytes]:
    """The body a byte at a time, `pause` seconds apart, as a slow or hostile server sends it."""
    for byte in body.encode():
        time.sleep(pause)
        yield bytes([byte])
