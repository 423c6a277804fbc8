"""private_key_jwt (RFC 7523 §2.2 and §3): the signed assertion that authenticates the client,
and the key (and certificate, for Entra ID's certificate credentials) that signs it.

PyJWT signs it: one call over the key object that `cryptography` already loaded to validate
the profile. Their imports (about 90 ms) are paid only by containers that serve such a profile.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Okta accepts assertions that expire at most an hour ahead, some servers only five minutes.
ASSERTION_LIFETIME_SECONDS = 300
# The JWS algorithms each kind of key may sign with; the first is the default.
RSA_ALGORITHMS: tuple[str, ...] = ("RS256", "PS256")
EC_P256_ALGORITHMS: tuple[str, ...] = ("ES256",)


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A parsed private key, the JWS algorithm it signs with, and the SHA-256 thumbprint of its
    certificate when it has one (`x5t#S256`); prints nothing of the key."""

    key: Any
    algorithm: str
    certificate_thumbprint: str | None = None

    def __repr__(self) -> str:
        return f"SigningKey({self.algorithm})"


def load_signing_key(
    pem: str,
    bad: Callable[[str], Exception],
    algorithm: str | None = None,
    certificate: str | None = None,
    now: datetime | None = None,
) -> SigningKey:
    """RSA keys sign RS256 (default) or PS256, EC P-256 keys ES256; a certificate must be valid
    now and hold this key's public key. Anything else raises `bad`'s error, naming the field."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    if pem.count("-----BEGIN ") != 1:  # cryptography reads the first and ignores the rest
        raise bad("private_key must hold exactly one PEM private key")
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise bad("private_key is not an unencrypted PEM private key") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise bad("private_key must be an RSA key of 2048 bits or more")
        allowed = RSA_ALGORITHMS
    elif isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        allowed = EC_P256_ALGORITHMS
    else:
        raise bad("private_key must be an RSA or EC P-256 key")
    if algorithm is not None and algorithm not in allowed:
        raise bad(f"signing_algorithm must be one of {', '.join(allowed)} for this private_key")
    thumbprint = _thumbprint(certificate, key, bad, now or datetime.now(UTC)) if certificate is not None else None
    return SigningKey(key, algorithm or allowed[0], thumbprint)


def _thumbprint(pem: str, key: Any, bad: Callable[[str], Exception], now: datetime) -> str:
    """The certificate's `x5t#S256`: base64url of the SHA-256 of its DER, unpadded (RFC 7515 §4.1.8)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    if pem.count("-----BEGIN ") != 1:
        raise bad("certificate must hold exactly one PEM certificate")
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise bad("certificate is not a PEM X.509 certificate") from None
    public = PublicFormat.SubjectPublicKeyInfo
    if certificate.public_key().public_bytes(Encoding.DER, public) != key.public_key().public_bytes(
        Encoding.DER, public
    ):
        raise bad("certificate does not hold the public key of private_key")
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise bad("certificate is expired or not yet valid")
    digest = hashlib.sha256(certificate.public_bytes(Encoding.DER)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def client_assertion(signing_key: SigningKey, client_id: str, token_url: str, key_id: str | None, now: float) -> str:
    """A fresh assertion: `iss` = `sub` = client id, `aud` = token URL, a new random `jti`."""
    import jwt

    issued_at = int(now)
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + ASSERTION_LIFETIME_SECONDS,
        "jti": secrets.token_urlsafe(24),
    }
    headers: dict[str, str] = {}
    if key_id:
        headers["kid"] = key_id
    if signing_key.certificate_thumbprint:
        headers["x5t#S256"] = signing_key.certificate_thumbprint
    return jwt.encode(claims, signing_key.key, algorithm=signing_key.algorithm, headers=headers or None)
