"""A resource server on loopback, standing in for an API behind Okta (such as its Management
API): it accepts a token the local authorization server issued, a DPoP-bound one only with a
valid proof from the key it is bound to (RFC 9449 §7), and can ask for a nonce as Okta's
resource servers may (`require_nonce`: a 401 with `use_dpop_nonce` and `DPoP-Nonce`).

Every request is recorded, with its answer, so tests can see what a consumer sent.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

from devstack.local.authserver import LocalAuthorizationServer
from devstack.local.dpop_check import Nonces, ProofChecker, ProofRefused
from devstack.local.loopback import LoopbackServer


@dataclass(frozen=True)
class ResourceRequest:
    method: str
    path: str
    scheme: str  # "Bearer", "DPoP", or "" without an Authorization header
    status: int
    refusal: str  # what failed ("" when the request was served): an RFC 6750 / 9449 code and claim


class LocalResourceServer:
    def __init__(self, authorization_server: LocalAuthorizationServer, port: int = 0) -> None:
        self._authorization_server = authorization_server
        self.nonces = Nonces()
        self.proofs = ProofChecker()  # no nonce unless require_nonce
        self.requests: list[ResourceRequest] = []
        self._lock = threading.Lock()
        self._server = LoopbackServer(self._wsgi, "local-resource", port)

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def require_nonce(self) -> bool:
        return self.proofs.nonces is not None

    @require_nonce.setter
    def require_nonce(self, required: bool) -> None:
        self.proofs.nonces = self.nonces if required else None

    def start(self) -> LocalResourceServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        self.require_nonce = False
        with self._lock:
            self.requests.clear()

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        response, refusal = self._answer(request, scheme, token)
        with self._lock:
            self.requests.append(ResourceRequest(request.method, request.path, scheme, response.status_code, refusal))
        return response(environ, start_response)

    def _answer(self, request: Request, scheme: str, token: str) -> tuple[Response, str]:
        known: dict[str, Any] = self._authorization_server.introspect(token) if token else {"active": False}
        if not known["active"]:
            return _refused(scheme or "Bearer", "invalid_token", "The access token is invalid."), "invalid_token"
        jkt = known.get("cnf", {}).get("jkt")
        if jkt is None:
            if scheme != "Bearer":
                return _refused("Bearer", "invalid_token", "A Bearer token is sent as Bearer."), "invalid_token"
            return _served(known), ""
        if scheme != "DPoP":  # RFC 9449 §7.1: a bound token presented as Bearer is refused
            return _refused("DPoP", "invalid_token", "The access token is DPoP-bound."), "invalid_token bearer"
        url = f"{request.scheme}://{request.host}{request.path}"
        try:
            proof = self.proofs.check(request.headers.getlist("DPoP"), request.method, url, access_token=token)
        except ProofRefused as refused:
            headers = {"DPoP-Nonce": self.nonces.current} if refused.error == "use_dpop_nonce" else {}
            return _refused("DPoP", refused.error, refused.description, headers), f"{refused.error} {refused.claim}"
        if proof.jkt != jkt:
            return _refused(
                "DPoP", "invalid_dpop_proof", "The proof is not from the bound key."
            ), "invalid_dpop_proof jkt"
        return _served(known), ""


def _served(known: dict[str, Any]) -> Response:
    body = {"ok": True, "client_id": known["client_id"], "token_type": known["token_type"]}
    return Response(json.dumps(body), 200, content_type="application/json")


def _refused(scheme: str, error: str, description: str, headers: dict[str, str] | None = None) -> Response:
    challenge = f'{scheme} error="{error}", error_description="{description}"'
    if scheme == "DPoP":
        challenge += ', algs="ES256 RS256 PS256"'
    body = {"error": error, "error_description": description}
    return Response(
        json.dumps(body),
        401,
        headers={"WWW-Authenticate": challenge, **(headers or {})},
        content_type="application/json",
    )
