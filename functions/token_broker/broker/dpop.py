"""DPoP (RFC 9449) on the broker's side: a new key pair for each token it asks for, and the
proof that goes with the token request. The key is the token's: it is cached, sealed and handed
out with it, as its private JWK (RFC 7517), so that every container and caller of one cache key
shares one token and its one key.

`cryptography` makes the keys and PyJWT signs the proofs, as for private_key_jwt; their imports
are paid only by containers that serve a `dpop` profile.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any, TypeGuard

from broker.sensitive import Sensitive

PROOF_TYPE = "dpop+jwt"
PROOF_HEADER = "DPoP"  # RFC 9449 §4.1: the header a proof travels in
# RFC 9449 §8.1 and §9: `use_dpop_nonce` comes with the server's nonce in this header.
NONCE_HEADER = "DPoP-Nonce"
USE_NONCE = "use_dpop_nonce"
# A nonce is NQCHAR (RFC 9449 §8.1); one longer than this is not one a server means.
_NONCE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,512}")
# The algorithms a key may be made for, with its kind: the first is the default.
ALGORITHMS = ("ES256", "RS256", "PS256")
RSA_BITS = 2048
# The members of each kind's public JWK, in RFC 7638's order (the thumbprint hashes exactly these).
PUBLIC_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}


def is_nonce(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _NONCE.fullmatch(value) is not None


# A private JWK's members by kind: each base64url of a big-endian integer of at most so many
# bytes (None: a name, not a number); and the algorithms each kind signs with.
PRIVATE_MEMBERS: dict[str, dict[str, int | None]] = {
    "EC": {"crv": None, "x": 32, "y": 32, "d": 32},
    "RSA": {"n": 512, "e": 8, "d": 512, "p": 256, "q": 256, "dp": 256, "dq": 256, "qi": 256},
}
KIND_ALGORITHMS = {"EC": ("ES256",), "RSA": ("RS256", "PS256")}
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


def parse_private_jwk(text: str) -> Sensitive | None:
    """A private JWK as the broker makes them (P-256 with ES256, RSA with RS256 or PS256, nothing
    else in it), kept as its JSON; None for anything else. Read from the table: never trusted."""
    try:
        jwk = json.loads(text)
    except ValueError:
        return None
    kind = jwk.get("kty") if isinstance(jwk, dict) else None
    if not isinstance(kind, str) or kind not in PRIVATE_MEMBERS:
        return None
    members = PRIVATE_MEMBERS[kind]
    if set(jwk) != {"kty", "alg", *members} or jwk["alg"] not in KIND_ALGORITHMS[kind]:
        return None
    if kind == "EC" and jwk["crv"] != "P-256":
        return None
    for name, most in members.items():
        value = jwk[name]
        if most is not None and not (
            isinstance(value, str) and _BASE64URL.fullmatch(value) and len(value) <= -(-most * 4 // 3)
        ):
            return None
    return Sensitive(text)


def thumbprint(public_jwk: dict[str, str]) -> str:
    """RFC 7638: base64url of the SHA-256 of the required members, sorted, without white space."""
    members = {name: public_jwk[name] for name in PUBLIC_MEMBERS[public_jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def key_thumbprint(private_jwk: Sensitive) -> str:
    """The thumbprint of a private JWK's public part (no secret member is read)."""
    return thumbprint(json.loads(private_jwk.reveal()))


def target_uri(url: str) -> str:
    """`htu`: the URL without its query and fragment (RFC 9449 §4.2)."""
    return url.split("#", 1)[0].split("?", 1)[0]


@dataclass(frozen=True, slots=True)
class DpopKey:
    """One token's key pair; prints nothing of it."""

    algorithm: str
    key: Any  # cryptography's private key
    public_jwk: dict[str, str]
    private_jwk: Sensitive  # JSON: the public members, the private ones and `alg`

    def __repr__(self) -> str:
        return f"DpopKey({self.algorithm})"

    def proof(self, method: str, url: str, now: float, nonce: str | None = None) -> str:
        """A fresh proof for one request (RFC 9449 §4.2)."""
        import jwt

        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(24),
            "htm": method,
            "htu": target_uri(url),
            "iat": int(now),
        }
        if nonce is not None:
            claims["nonce"] = nonce
        headers = {"typ": PROOF_TYPE, "jwk": self.public_jwk}
        return jwt.encode(claims, self.key, algorithm=self.algorithm, headers=headers)


def new_key(algorithm: str) -> DpopKey:
    """A new key pair: P-256 for ES256, RSA-2048 for RS256 and PS256."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm

    if algorithm == "ES256":
        key: Any = ec.generate_private_key(ec.SECP256R1())
        private = ECAlgorithm.to_jwk(key, as_dict=True)
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        private = RSAAlgorithm.to_jwk(key, as_dict=True)
    kind = private["kty"]
    public = {name: private[name] for name in PUBLIC_MEMBERS[kind]}
    # exactly the members the contract's dpop_key has (PyJWT adds key_ops to RSA keys)
    jwk = {"kty": kind, "alg": algorithm, **{name: private[name] for name in PRIVATE_MEMBERS[kind]}}
    return DpopKey(algorithm, key, public, Sensitive(json.dumps(jwk, separators=(",", ":"))))
