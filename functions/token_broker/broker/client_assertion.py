"""private_key_jwt (RFC 7523 §2.2 and §3): the signed assertion that authenticates the client.

PyJWT signs it: one call over the key object that `cryptography` already loaded to validate
the profile. Its import (about 90 ms) is paid only by containers that serve such a profile.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Okta accepts assertions that expire at most an hour ahead, some servers only five minutes.
ASSERTION_LIFETIME_SECONDS = 300


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A parsed private key and the JWS algorithm it signs with; prints nothing of the key."""

    key: Any
    algorithm: str

    def __repr__(self) -> str:
        return f"SigningKey({self.algorithm})"


def load_signing_key(pem: str, bad: Callable[[str], Exception]) -> SigningKey:
    """RSA keys sign RS256, EC P-256 keys ES256; anything else raises `bad`'s error."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise bad("private_key is not an unencrypted PEM private key") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise bad("private_key must be an RSA key of 2048 bits or more")
        return SigningKey(key, "RS256")
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return SigningKey(key, "ES256")
    raise bad("private_key must be an RSA or EC P-256 key")


def client_assertion(signing_key: SigningKey, client_id: str, token_url: str, key_id: str | None, now: float) -> str:
    """A fresh assertion: `iss` = `sub` = client id, `aud` = token URL, a new random `jti`."""
    import jwt

    issued_at = int(now)
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "iat": issued_at,
        "exp": issued_at + ASSERTION_LIFETIME_SECONDS,
        "jti": secrets.token_urlsafe(24),
    }
    headers = {"kid": key_id} if key_id else None
    return jwt.encode(claims, signing_key.key, algorithm=signing_key.algorithm, headers=headers)
