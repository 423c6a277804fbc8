"""Keys and certificates for the tests of private_key_jwt and certificate credentials; every
private key is registered with the suite's leak check as it is made."""

from __future__ import annotations

import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def private_key(kind: str = "rsa") -> Any:
    """An RSA 2048 key, or an EC key on P-256 (`ec`) or P-384 (`ec384`)."""
    if kind == "rsa":
        return rsa.generate_private_key(65537, 2048)
    return ec.generate_private_key(ec.SECP384R1() if kind == "ec384" else ec.SECP256R1())


def private_pem(key: Any, secrets_used: set[str]) -> str:
    pem: str = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    secrets_used.add(pem)
    secrets_used.update(line for line in pem.splitlines() if not line.startswith("-----"))
    return pem


def public_pem(key: Any) -> str:
    public: str = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return public


def certificate_pem(key: Any, *, valid_from_days: int = -1, valid_until_days: int = 365) -> str:
    """A self-signed certificate of `key`'s public key, valid from and until these days from now."""
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token-broker-client")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=valid_from_days))
        .not_valid_after(now + datetime.timedelta(days=valid_until_days))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()
