"""private_key_jwt against the local authorization server, which verifies each assertion."""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from devstack.local.authserver import LocalAuthorizationServer
from tests.conftest import CONSUMER_ROLE_ARN, SECRETS_USED, Broker, Profiles


def key_pair(kind: str) -> tuple[str, str]:
    private: Any = rsa.generate_private_key(65537, 2048) if kind == "rsa" else ec.generate_private_key(ec.SECP256R1())
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    SECRETS_USED.add(private_pem)
    SECRETS_USED.update(line for line in private_pem.splitlines() if not line.startswith("-----"))
    return private_pem, public_pem


def jwt_profile(
    profiles: Profiles, server: LocalAuthorizationServer, private_pem: str, public_pem: str, **fields: Any
) -> str:
    client_id = f"jwt-client-{secrets.token_hex(4)}"
    server.add_client(client_id, auth_method="private_key_jwt", public_key_pem=public_pem)
    name = f"p-{secrets.token_hex(4)}"
    profiles.put(
        name,
        {
            "token_url": server.token_url,
            "client_id": client_id,
            "auth_method": "private_key_jwt",
            "private_key": private_pem,
            "allowed_callers": [CONSUMER_ROLE_ARN],
            **fields,
        },
    )
    return name


@pytest.mark.parametrize(("kind", "algorithm", "key_id"), [("rsa", "RS256", "key-2026"), ("ec", "ES256", None)])
def test_both_key_types_work_twice_without_jti_reuse(
    broker: Broker,
    profiles: Profiles,
    auth_server: LocalAuthorizationServer,
    kind: str,
    algorithm: str,
    key_id: str | None,
) -> None:
    # Given a profile that authenticates with a private key
    private_pem, public_pem = key_pair(kind)
    fields = {"key_id": key_id} if key_id else {}
    profile = jwt_profile(profiles, auth_server, private_pem, public_pem, **fields)

    # When two tokens are fetched (two scope sets)
    first = broker.invoke({"profile": profile, "scopes": ["orders.read"]}).answer
    second = broker.invoke({"profile": profile, "scopes": ["orders.write"]}).answer

    # Then the server accepted both assertions, each with its own jti and the contract's claims
    assert "access_token" in first
    assert "access_token" in second
    requests = auth_server.token_requests()
    assert [r.auth_method for r in requests] == ["private_key_jwt"] * 2
    assertions = [r.form["client_assertion"] for r in requests]
    headers = [jwt.get_unverified_header(a) for a in assertions]
    claims = [jwt.decode(a, options={"verify_signature": False}) for a in assertions]
    assert {h["alg"] for h in headers} == {algorithm}
    assert all(h.get("kid") == key_id for h in headers)
    assert claims[0]["jti"] != claims[1]["jti"]
    for claim in claims:
        assert claim["iss"] == claim["sub"] == profiles.client_id(profile)
        assert claim["aud"] == auth_server.token_url
        assert 0 < claim["exp"] - claim["iat"] <= 300


def test_a_key_that_does_not_match_is_invalid_client(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    private_pem, _ = key_pair("rsa")
    _, other_public = key_pair("rsa")
    profile = jwt_profile(profiles, auth_server, private_pem, other_public)

    answer = broker.invoke({"profile": profile}).answer

    assert answer["error"] == "upstream_error"
    assert answer["upstream_error"] == "invalid_client"


@pytest.mark.parametrize(
    "pem",
    [
        "not a key",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ec.generate_private_key(ec.SECP384R1())
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode(),
    ],
    ids=["text", "truncated", "p384"],
)
def test_a_malformed_or_unsupported_key_is_profile_misconfigured_and_never_shown(
    broker: Broker,
    profiles: Profiles,
    auth_server: LocalAuthorizationServer,
    broker_log: list[logging.LogRecord],
    pem: str,
) -> None:
    SECRETS_USED.add(pem)
    profile = jwt_profile(profiles, auth_server, pem, "")

    answer = broker.invoke({"profile": profile}).answer

    assert answer["error"] == "profile_misconfigured"
    (logged,) = [record for record in broker_log if record.getMessage() == "profile misconfigured"]
    assert "private_key" in str(getattr(logged, "problem", ""))
    assert pem not in json.dumps(answer)
    assert auth_server.token_requests() == []
