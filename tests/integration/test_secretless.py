"""Clients without a secret in the profile: web identity tokens STS issues the broker's role
(`aws_web_identity_token`, as Entra ID's federated identity credentials accept them) and Entra
ID's certificate credentials (`private_key_jwt` with `x5t#S256`), against the strict local STS
(which issues and publishes its keys as outbound identity federation does) and the local
authorization server (which verifies each assertion as Entra ID would)."""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
import urllib3
from joserfc import jwt as jose_jwt
from joserfc.jwk import RSAKey

from devstack.local.authserver import Fault, FederatedCredential, LocalAuthorizationServer, certificate_thumbprint
from devstack.local.sts import LocalSts, with_proof
from tests.conftest import BROKER_ROLE_ARN, CONSUMER_ROLE_ARN, SECRETS_USED, Broker, Profiles
from tests.credentials import certificate_pem, private_key, private_pem

ENTRA_AUDIENCE = "api://AzureADTokenExchange"


class TestWebIdentityTokens:
    def test_a_token_with_no_secret_anywhere(
        self, broker: Broker, profiles: Profiles, local_sts: LocalSts, auth_server: LocalAuthorizationServer
    ) -> None:
        # Given an app that trusts the profile's own role, and a profile with no secret
        profile = profiles.create_web_identity()
        role = profiles.document(profile)["web_identity_role"]

        # When two tokens are asked for (two scope sets)
        first = broker.invoke({"profile": profile, "scopes": ["orders.read"]}).answer
        second = broker.invoke({"profile": profile, "scopes": ["orders.write"]}).answer

        # Then both were issued against one web identity token, sent as the client assertion
        assert first["access_token"] != second["access_token"]
        requests = auth_server.token_requests()
        assert [r.auth_method for r in requests] == ["aws_web_identity_token"] * 2
        form = requests[0].form
        assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        assert form["client_id"] == profiles.client_id(profile)
        assert "client_secret" not in form
        claims = jwt.decode(form["client_assertion"], options={"verify_signature": False})
        assert (claims["iss"], claims["sub"], claims["aud"]) == (local_sts.issuer, role, ENTRA_AUDIENCE)
        assert requests[1].form["client_assertion"] == form["client_assertion"]  # reused: > 60 s left
        assert local_sts.web_identity_requests == [(ENTRA_AUDIENCE, "RS256")]
        # and the role was assumed once, tagged with the profile's name and in a session named after it
        assert local_sts.assume_role_requests == [(role, profile, profile)]

    def test_es384_when_the_credential_asks_for_it(
        self, broker: Broker, profiles: Profiles, local_sts: LocalSts
    ) -> None:
        profile = profiles.create_web_identity({"algorithms": ("ES384",)}, assertion_algorithm="ES384")

        answer = broker.invoke({"profile": profile}).answer

        assert "access_token" in answer, answer
        assert local_sts.web_identity_requests == [(ENTRA_AUDIENCE, "ES384")]

    @pytest.mark.parametrize(
        "credential",
        [
            {"issuer": "https://another-account.tokens.sts.global.api.aws"},
            {"subject": "arn:aws:iam::123456789012:role/someone-else"},
            {"audience": "api://another-audience"},
            {"algorithms": ("ES384",)},
        ],
        ids=["issuer", "subject", "audience", "algorithm"],
    )
    def test_a_credential_that_does_not_trust_what_sts_says_is_invalid_client(
        self,
        broker: Broker,
        profiles: Profiles,
        local_sts: LocalSts,
        auth_server: LocalAuthorizationServer,
        credential: dict[str, Any],
    ) -> None:
        profile = profiles.create_web_identity(credential, assertion_audience=ENTRA_AUDIENCE)

        answer = broker.invoke({"profile": profile}).answer

        assert (answer["error"], answer["upstream_error"]) == ("upstream_error", "invalid_client")

    @pytest.mark.parametrize("tamper", ["expired", "signature"])
    def test_an_expired_or_forged_assertion_is_invalid_client(
        self, profiles: Profiles, local_sts: LocalSts, auth_server: LocalAuthorizationServer, tamper: str
    ) -> None:
        # an assertion as an attacker would present it: expired, or re-signed with its own key
        client_id = f"client-{secrets.token_hex(4)}"
        credential = FederatedCredential(local_sts.issuer, BROKER_ROLE_ARN, ENTRA_AUDIENCE)
        auth_server.add_client(client_id, auth_method="aws_web_identity_token", federated=credential)
        now = int(time.time())
        claims = {"iss": local_sts.issuer, "sub": BROKER_ROLE_ARN, "aud": ENTRA_AUDIENCE, "jti": "x"}
        claims |= {"iat": now - 600, "exp": now - 300} if tamper == "expired" else {"iat": now, "exp": now + 300}
        key = RSAKey.generate_key(2048, parameters={"kid": "local-rs256"})  # the stand-in's kid, not its key
        assertion = jose_jwt.encode({"alg": "RS256", "kid": "local-rs256"}, claims, key)

        form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        }
        response = urllib3.request(
            "POST",
            auth_server.token_url,
            body=urlencode(form),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

        assert response.status in (400, 401)  # RFC 6749 §5.2: 401 when the client used HTTP auth
        assert response.json()["error"] == "invalid_client"

    @pytest.mark.parametrize(
        ("set_up", "named"),
        [
            (lambda sts: setattr(sts, "outbound_federation", False), "not enabled"),
            (lambda sts: setattr(sts, "allowed_audiences", {"api://something-else"}), "may not call"),
        ],
        ids=["federation-off", "not-permitted"],
    )
    def test_an_sts_refusal_is_profile_misconfigured_and_the_log_says_which(
        self,
        broker: Broker,
        profiles: Profiles,
        local_sts: LocalSts,
        auth_server: LocalAuthorizationServer,
        broker_log: list[logging.LogRecord],
        set_up: Any,
        named: str,
    ) -> None:
        profile = profiles.create_web_identity()
        set_up(local_sts)

        answer = broker.invoke({"profile": profile}).answer

        assert answer["error"] == "profile_misconfigured"
        (problem,) = [str(getattr(r, "problem", "")) for r in broker_log if r.getMessage() == "profile misconfigured"]
        assert named in problem
        assert auth_server.token_requests() == []

    @pytest.mark.parametrize(
        "fault",
        [
            Fault(status=400, body="<ErrorResponse><Error><Code>Throttling</Code></Error></ErrorResponse>"),
            Fault(status=503, body="<ErrorResponse><Error><Code>ServiceUnavailable</Code></Error></ErrorResponse>"),
        ],
        ids=["throttled", "unavailable"],
    )
    def test_sts_throttled_or_down_is_upstream_unavailable_with_retry_after(
        self,
        broker: Broker,
        profiles: Profiles,
        local_sts: LocalSts,
        auth_server: LocalAuthorizationServer,
        fault: Fault,
    ) -> None:
        profile = profiles.create_web_identity()
        # one proof, reused as token_client reuses it: once accepted, it costs no STS call below
        proof = with_proof({}, broker.caller)["caller_proof"]
        broker.invoke({"profile": "warm-the-caller-proof", "caller_proof": proof})
        local_sts.fail_next(*[fault] * 8)

        answer = broker.invoke({"profile": profile, "caller_proof": proof}, timeout_seconds=5).answer

        assert (answer["error"], answer["status"]) == ("upstream_unavailable", 503)
        assert answer["retry_after"] >= 1
        assert auth_server.token_requests() == []


class TestCertificateCredentials:
    @pytest.mark.parametrize(("kind", "algorithm"), [("rsa", "PS256"), ("rsa", None), ("ec", None)])
    def test_a_certificate_credential_is_named_in_the_assertions_header(
        self,
        broker: Broker,
        profiles: Profiles,
        auth_server: LocalAuthorizationServer,
        kind: str,
        algorithm: str | None,
    ) -> None:
        key = private_key(kind)
        certificate = certificate_pem(key)
        profile = certificate_profile(profiles, auth_server, key, certificate, algorithm)

        answer = broker.invoke({"profile": profile}).answer

        assert "access_token" in answer, answer
        header = jwt.get_unverified_header(auth_server.token_requests()[0].form["client_assertion"])
        assert header["x5t#S256"] == certificate_thumbprint(certificate)
        assert header["alg"] == (algorithm or ("RS256" if kind == "rsa" else "ES256"))

    def test_an_assertion_naming_another_certificate_is_invalid_client(
        self, broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
    ) -> None:
        # Given a client registered with one certificate, and a profile holding another of the same key
        key = private_key("rsa")
        profile = certificate_profile(profiles, auth_server, key, certificate_pem(key), "PS256")
        client = auth_server.clients[profiles.client_id(profile)]
        client.certificate_pem = certificate_pem(key, valid_until_days=30)

        answer = broker.invoke({"profile": profile}).answer

        assert (answer["error"], answer["upstream_error"]) == ("upstream_error", "invalid_client")


def certificate_profile(
    profiles: Profiles, server: LocalAuthorizationServer, key: Any, certificate: str, algorithm: str | None
) -> str:
    client_id = f"cert-client-{secrets.token_hex(4)}"
    server.add_client(client_id, auth_method="private_key_jwt", certificate_pem=certificate)
    name = f"p-{secrets.token_hex(4)}"
    document = {
        "token_url": server.token_url,
        "client_id": client_id,
        "auth_method": "private_key_jwt",
        "private_key": private_pem(key, SECRETS_USED),
        "certificate": certificate,
        "allowed_callers": [CONSUMER_ROLE_ARN],
    }
    profiles.put(name, {**document, **({"signing_algorithm": algorithm} if algorithm else {})})
    return name


class TestEachProfileSpeaksAsItsOwnRole:
    """The attacks of issue 30, as a writer of one profile's secret would make them."""

    def test_a_profile_that_names_another_profiles_role_is_refused_by_its_trust_policy(
        self,
        broker: Broker,
        profiles: Profiles,
        local_sts: LocalSts,
        auth_server: LocalAuthorizationServer,
        broker_log: list[logging.LogRecord],
    ) -> None:
        # Given the victim's secretless profile, and an attacker's profile naming the victim's role
        victim = profiles.create_web_identity()
        role = profiles.document(victim)["web_identity_role"]
        attacker = profiles.create_web_identity()
        profiles.put(attacker, {**profiles.document(attacker), "web_identity_role": role})

        answer = broker.invoke({"profile": attacker}).answer

        # Then STS refused: the role trusts the broker only with the victim's tag
        assert answer["error"] == "profile_misconfigured"
        assert local_sts.assume_role_requests[-1] == (role, attacker, attacker)
        assert local_sts.web_identity_requests == []
        (problem,) = [str(getattr(r, "problem", "")) for r in broker_log if r.getMessage() == "profile misconfigured"]
        assert role in problem  # the log says which role refused
        assert auth_server.token_requests() == []

    def test_a_profile_that_copies_another_apps_client_id_gets_nothing_from_that_app(
        self, broker: Broker, profiles: Profiles, local_sts: LocalSts, auth_server: LocalAuthorizationServer
    ) -> None:
        # Given the victim's app, which trusts the victim profile's role, and an attacker's profile
        # with a role of its own but the victim's client_id
        victim = profiles.create_web_identity()
        attacker = profiles.create_web_identity()
        profiles.put(attacker, {**profiles.document(attacker), "client_id": profiles.client_id(victim)})

        answer = broker.invoke({"profile": attacker}).answer

        # Then the JWT names the attacker's role, which the victim's app does not trust
        assert (answer["error"], answer["upstream_error"]) == ("upstream_error", "invalid_client")
        (request,) = auth_server.token_requests()
        claims = jwt.decode(request.form["client_assertion"], options={"verify_signature": False})
        assert claims["sub"] == profiles.document(attacker)["web_identity_role"]

    def test_two_profiles_never_share_a_jwt_and_each_goes_only_to_its_own_token_url(
        self,
        broker: Broker,
        profiles: Profiles,
        local_sts: LocalSts,
        auth_server: LocalAuthorizationServer,
    ) -> None:
        first, second = profiles.create_web_identity(), profiles.create_web_identity()

        for profile, scope in ((first, "orders.read"), (second, "orders.read"), (first, "orders.write")):
            assert "access_token" in broker.invoke({"profile": profile, "scopes": [scope]}).answer

        assertions = [request.form["client_assertion"] for request in auth_server.token_requests()]
        subjects = [jwt.decode(a, options={"verify_signature": False})["sub"] for a in assertions]
        roles = [profiles.document(p)["web_identity_role"] for p in (first, second, first)]
        assert subjects == roles
        assert assertions[0] == assertions[2] != assertions[1]  # kept per role, reused for its own profile
