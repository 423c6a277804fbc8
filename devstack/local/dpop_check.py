"""DPoP proofs (RFC 9449 §4.3) checked as strictly as Okta checks them, for the local
authorization server and the local resource server. Written with joserfc, apart from the
broker's and token_client's code: a stand-in that shared their code would confirm their mistakes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

# What a proof may be signed with: asymmetric algorithms only, as RFC 9449 §4.2 requires.
ALGORITHMS = ("ES256", "RS256", "PS256")
# How far a proof's `iat` may be from this server's clock (Okta allows about a minute).
IAT_WINDOW_SECONDS = 60
# The members a public JWK may hold; a proof carrying a private one is refused outright.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class ProofRefused(Exception):
    """A proof that does not hold; `error` is RFC 9449's code and `claim` names what failed."""

    def __init__(self, error: str, claim: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.claim = claim
        self.description = description


@dataclass(frozen=True)
class CheckedProof:
    jkt: str  # the RFC 7638 thumbprint of the proof's key
    claims: dict[str, Any]


def thumbprint(public_jwk: dict[str, Any]) -> str:
    """RFC 7638, computed here from the required members, not by a library."""
    required = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}[public_jwk["kty"]]
    canonical = json.dumps({name: public_jwk[name] for name in required}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def token_hash(access_token: str) -> str:
    """`ath`: base64url of the SHA-256 of the access token's ASCII."""
    return base64.urlsafe_b64encode(hashlib.sha256(access_token.encode()).digest()).rstrip(b"=").decode()


class Nonces:
    """A server's DPoP nonces: the current one and the one before it are accepted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current = secrets.token_urlsafe(24)
        self._previous: str | None = None

    @property
    def current(self) -> str:
        return self._current

    def rotate(self) -> str:
        with self._lock:
            self._previous, self._current = self._current, secrets.token_urlsafe(24)
            return self._current

    def accepts(self, nonce: object) -> bool:
        return isinstance(nonce, str) and nonce in (self._current, self._previous)


class ProofChecker:
    """Checks proofs for one server: signature, `typ`, `alg`, a public `jwk`, `htm`, `htu`, the
    `iat` window, `jti` replay, the nonce (when required) and, at a resource, `ath`."""

    def __init__(self, nonces: Nonces | None = None) -> None:
        self.nonces = nonces  # None: no nonce asked for
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def check(self, proofs: list[str], method: str, url: str, access_token: str | None = None) -> CheckedProof:
        if len(proofs) != 1:
            raise ProofRefused("invalid_dpop_proof", "header", "The DPoP proof JWT header is missing.")
        proof = proofs[0]
        header = jws_part(proof, 0)
        if header.get("typ") != "dpop+jwt":
            raise ProofRefused("invalid_dpop_proof", "typ", "The DPoP proof typ is not dpop+jwt.")
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise ProofRefused("invalid_dpop_proof", "alg", "The DPoP proof alg is not an asymmetric algorithm.")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict) or PRIVATE_MEMBERS & set(jwk) or jwk.get("kty") not in ("EC", "RSA"):
            raise ProofRefused("invalid_dpop_proof", "jwk", "The DPoP proof jwk is not a public key.")
        try:
            key = (ECKey if jwk["kty"] == "EC" else RSAKey).import_key(jwk)
            signed = jws.deserialize_compact(proof, key, algorithms=[algorithm], registry=_registry(algorithm))
            claims = json.loads(signed.payload)
        except (JoseError, ValueError, KeyError, TypeError):
            raise ProofRefused("invalid_dpop_proof", "signature", "The DPoP proof signature is invalid.") from None
        if not isinstance(claims, dict):
            raise ProofRefused("invalid_dpop_proof", "payload", "The DPoP proof has no claims.")
        if claims.get("htm") != method:
            raise ProofRefused("invalid_dpop_proof", "htm", "The DPoP proof htm does not match the request.")
        if claims.get("htu") != url.split("?", 1)[0].split("#", 1)[0]:
            raise ProofRefused("invalid_dpop_proof", "htu", "The DPoP proof htu does not match the request.")
        issued_at = claims.get("iat")
        if not isinstance(issued_at, int) or abs(time.time() - issued_at) > IAT_WINDOW_SECONDS:
            raise ProofRefused("invalid_dpop_proof", "iat", "The DPoP proof iat is outside the allowed window.")
        if access_token is not None and claims.get("ath") != token_hash(access_token):
            raise ProofRefused("invalid_dpop_proof", "ath", "The DPoP proof ath does not match the access token.")
        if self.nonces is not None and not self.nonces.accepts(claims.get("nonce")):
            raise ProofRefused("use_dpop_nonce", "nonce", "Authorization server requires nonce in DPoP proof.")
        jti = claims.get("jti")
        with self._lock:
            if not isinstance(jti, str) or not jti or jti in self._seen:
                raise ProofRefused("invalid_dpop_proof", "jti", "The DPoP proof jti was already used.")
            self._seen.add(jti)
        return CheckedProof(thumbprint(jwk), claims)


def _registry(algorithm: str) -> jws.JWSRegistry:
    """joserfc's own limit on a header (512 bytes) is below an RSA-2048 `jwk`'s size."""
    registry = jws.JWSRegistry(algorithms=[algorithm])
    registry.max_header_length = 2048
    return registry


def jws_part(compact: str, index: int) -> dict[str, Any]:
    """A compact JWS's header (0) or payload (1), unverified; {} when it is not JSON."""
    try:
        encoded = compact.split(".")[index]
        part = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, IndexError):
        return {}
    return part if isinstance(part, dict) else {}
