"""A real OAuth 2.0 authorization server (Authlib's client-credentials grant) on loopback.

Tests and the demo register clients, then point profiles at `token_url`. Every token request
is recorded (client, authentication method, scope, form), and the server can be told to
answer slowly, with 5xx or 429, or with garbage, to exercise the broker's failure handling.

Longer than the house's 350 lines: it is one server, whose every client authentication method
and fault shares one request's recording and one lock; its DPoP checks are `dpop_check`'s.
"""

from __future__ import annotations

import base64
import hashlib
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
from authlib.oauth2.rfc6749 import ClientMixin, InvalidClientError, grants
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7523.client import ASSERTION_TYPE
from flask import Flask, Response, g, request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

from devstack.local.dpop_check import Nonces, ProofChecker, ProofRefused, jws_part
from devstack.local.loopback import LoopbackServer

JWT_SIGNING_KEY = OctKey.generate_key(256)
logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request is noise here


FEDERATED = "aws_web_identity_token"  # the auth method of a client with a federated credential
# What private_key_jwt assertions may be signed with (Entra ID's certificate credentials: PS256).
ASSERTION_ALGORITHMS = ["RS256", "PS256", "ES256"]


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", FEDERATED, "private_key_jwt"]


class PrivateKeyJwt(JWTBearerClientAssertion):  # type: ignore[misc]
    """RFC 7523 client authentication: checks the signature with the client's public key,
    `aud` against this server's token URL, and refuses a `jti` it has seen before. A client
    registered with a certificate (Entra ID's certificate credentials) must name it in the
    header: `x5t#S256`, the SHA-256 thumbprint of its DER."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, server: LocalAuthorizationServer) -> None:
        super().__init__(validate_jti=True, leeway=5)
        self._server = server
        self.seen_jti: set[str] = set()

    def __call__(self, query_client: Any, request: Any) -> Any:
        client = super().__call__(query_client, request)
        if client is not None and client.certificate_pem is not None:
            header = jws_part(request.form.get("client_assertion", ""), 0)
            if header.get("x5t#S256") != certificate_thumbprint(client.certificate_pem):
                raise InvalidClientError(description="x5t#S256 does not name the registered certificate")
        return client

    def get_audiences(self) -> list[str]:
        return [self._server.token_url]

    def validate_jti(self, claims: Any, jti: str) -> bool:
        if jti in self.seen_jti:
            return False
        self.seen_jti.add(jti)
        return True

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGORITHMS)
        except JoseError as error:
            raise InvalidClientError(description=error.description) from error
        self.verify_claims(token.claims)
        return token.claims

    def resolve_client_public_key(self, client: LocalClient) -> Any:
        certificate = client.certificate_pem
        pem = _public_key_of(certificate) if certificate is not None else client.public_key_pem or ""
        try:
            return RSAKey.import_key(pem)
        except (JoseError, ValueError):
            return ECKey.import_key(pem)


@dataclass(frozen=True)
class FederatedCredential:
    """What Entra ID's federated identity credential names: the issuer it trusts, the subject
    (the AWS role's ARN, for AWS's outbound identity federation), the audience and algorithms."""

    issuer: str
    subject: str
    audience: str = "api://AzureADTokenExchange"
    algorithms: tuple[str, ...] = ("RS256",)


class FederatedAssertion:
    """A client assertion issued by another identity provider, as Entra ID accepts one through a
    federated identity credential: `client_id` names the client; the JWT is verified against the
    issuer's keys (its OIDC discovery's JWKS, fetched over HTTP), and its issuer, subject,
    audience, algorithm and expiry against the credential. Any mismatch is `invalid_client`."""

    def __call__(self, query_client: Any, request: Any) -> Any:
        form = request.form
        client = query_client(form.get("client_id") or "")
        credential = client.federated if client is not None else None
        if form.get("client_assertion_type") != ASSERTION_TYPE or credential is None:
            return None  # not this method's client: the next method may take it
        assertion = form.get("client_assertion") or ""
        if jws_part(assertion, 0).get("alg") not in credential.algorithms:
            raise InvalidClientError(description="the assertion is not signed with an algorithm the credential allows")
        if jws_part(assertion, 1).get("iss") != credential.issuer:  # keys come only from the trusted issuer
            raise InvalidClientError(description="the assertion's issuer is not the credential's")
        try:
            keys = KeySet.import_key_set(_issuer_keys(credential.issuer))  # type: ignore[arg-type]
            claims = jwt.decode(assertion, keys, algorithms=list(credential.algorithms)).claims
            jwt.JWTClaimsRegistry(
                leeway=5,
                iss={"essential": True, "value": credential.issuer},
                sub={"essential": True, "value": credential.subject},
                aud={"essential": True, "value": credential.audience},
                exp={"essential": True},
            ).validate(claims)
        except JoseError as error:
            raise InvalidClientError(description=f"the assertion is not trusted: {error.description}") from error
        return client


@dataclass
class LocalClient(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str
    auth_method: str = "client_secret_basic"
    public_key_pem: str | None = None
    scopes: tuple[str, ...] = ("customScope", "orders.read", "orders.write")
    certificate_pem: str | None = None  # private_key_jwt with a certificate credential
    federated: FederatedCredential | None = None
    dpop: bool = False  # "Require DPoP header in token requests", as Okta's API Services apps have it

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
class IssuedTokenRecord:
    """What introspection (RFC 7662) says of a token this server issued."""

    client_id: str
    token_type: str
    scope: str
    expires_at: int
    jkt: str | None  # `cnf.jkt`: the thumbprint of the key a DPoP token is bound to


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
        self.tokens: dict[str, IssuedTokenRecord] = {}
        self.requests: list[TokenRequestRecord] = []
        # DPoP clients' proofs, checked as Okta does: a nonce is required unless this is None
        self.dpop_nonces = Nonces()
        self.dpop = ProofChecker(self.dpop_nonces)
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
        certificate_pem: str | None = None,
        federated: FederatedCredential | None = None,
        dpop: bool = False,
    ) -> LocalClient:
        """A client that authenticates with a secret; with `private_key_jwt` and a public key or a
        certificate; or with a federated credential (auth method `aws_web_identity_token`). With
        `dpop`, every token request must carry a valid DPoP proof, and its tokens are bound to it."""
        client = LocalClient(
            client_id,
            client_secret,
            auth_method,
            public_key_pem,
            certificate_pem=certificate_pem,
            federated=federated,
            dpop=dpop,
        )
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
        self.dpop.nonces = self.dpop_nonces

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662's answer for `token`: active while unexpired, with `cnf.jkt` for a DPoP token."""
        record = self.tokens.get(token)
        if record is None or record.expires_at <= time.time():
            return {"active": False}
        answer: dict[str, Any] = {
            "active": True,
            "client_id": record.client_id,
            "token_type": record.token_type,
            "scope": record.scope,
            "exp": record.expires_at,
        }
        if record.jkt is not None:
            answer["cnf"] = {"jkt": record.jkt}
        return answer

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
        server.register_client_auth_method(FEDERATED, FederatedAssertion())
        server.register_token_generator("client_credentials", self._generate_token)

        @app.post("/oauth2/v1/introspect")
        def introspect() -> Response:
            return Response(json.dumps(self.introspect(request.form.get("token", ""))), content_type="application/json")

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
        client = self.clients.get(self._client_id() or "")
        if client is not None and client.dpop:
            try:
                g.dpop_jkt = self.dpop.check(request.headers.getlist("DPoP"), "POST", self.token_url).jkt
            except ProofRefused as refused:
                body = {"error": refused.error, "error_description": refused.description}
                return Response(json.dumps(body), 400, headers=self._nonce_header(), content_type="application/json")
        response: Response = server.create_token_response()
        if client is not None and client.dpop:
            response.headers.update(self._nonce_header())
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
                **({"cnf": {"jkt": g.dpop_jkt}} if g.get("dpop_jkt") else {}),
            }
            access_token = jwt.encode({"alg": "HS256"}, claims, JWT_SIGNING_KEY)
        else:
            access_token = secrets.token_urlsafe(32)
        jkt = g.get("dpop_jkt")
        token_type = "DPoP" if jkt is not None else "Bearer"
        with self._lock:
            self.issued.append(access_token)
            self.tokens[access_token] = IssuedTokenRecord(client.client_id, token_type, scope, now + self.lifetime, jkt)
        token = {"access_token": access_token, "token_type": token_type, "expires_in": self.lifetime}
        if scope:
            token["scope"] = scope
        return token

    def _nonce_header(self) -> dict[str, str]:
        return {"DPoP-Nonce": self.dpop_nonces.current} if self.dpop.nonces is not None else {}

    def _client_id(self) -> str | None:
        """The client a token request names: in its Basic credentials, else in its form."""
        if request.authorization is not None and request.authorization.type == "basic":
            return request.authorization.username
        return request.form.get("client_id")

    def _record(self, status: int, generation: int, arrived: float) -> None:
        form = request.form.to_dict()
        authorization = request.headers.get("Authorization", "")
        if authorization.startswith("Basic "):
            method = "client_secret_basic"
            client_id = request.authorization.username if request.authorization else None
        elif "client_assertion" in form:
            client = self.clients.get(form.get("client_id") or "")
            method = FEDERATED if client is not None and client.federated else "private_key_jwt"
            client_id = form.get("client_id")
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


def certificate_thumbprint(pem: str) -> str:
    """`x5t#S256`: base64url of the SHA-256 of the certificate's DER, unpadded."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def _public_key_of(certificate_pem: str) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public_key = x509.load_pem_x509_certificate(certificate_pem.encode()).public_key()
    return public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def _issuer_keys(issuer: str) -> dict[str, Any]:
    """The issuer's signing keys, as an Entra ID would find them: OIDC discovery, then JWKS."""
    import urllib3

    discovery = urllib3.request("GET", f"{issuer}/.well-known/openid-configuration", timeout=5).json()
    keys: dict[str, Any] = urllib3.request("GET", discovery["jwks_uri"], timeout=5).json()
    return keys
