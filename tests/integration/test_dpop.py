"""DPoP-bound tokens (RFC 9449), shared by the fleet with their keys (contract promise 14):
against the local authorization server, which checks every proof as strictly as Okta does and
binds the token to the key's thumbprint, and the local resource server, which accepts a bound
token only with a proof from that key."""

from __future__ import annotations

import json
import logging
from typing import Any

import jwt
import pytest
import urllib3
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from devstack.local.authserver import Fault, LocalAuthorizationServer
from devstack.local.dpop_check import thumbprint
from devstack.local.resource_server import LocalResourceServer
from tests.conftest import PRIVATE_JWK_MEMBERS, Broker, Profiles


def proof(key: dict[str, Any], method: str, url: str, token: str, **claims: Any) -> str:
    """A proof made here with PyJWT, as any DPoP client would make one with the answer's key."""
    import base64
    import hashlib
    import secrets
    import time

    algorithm = ECAlgorithm if key["kty"] == "EC" else RSAAlgorithm
    private = algorithm.from_jwk(json.dumps(key))
    public = {name: key[name] for name in (("crv", "kty", "x", "y") if key["kty"] == "EC" else ("e", "kty", "n"))}
    ath = base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()
    payload = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url, "iat": int(time.time()), "ath": ath}
    return jwt.encode({**payload, **claims}, private, algorithm=key["alg"], headers={"typ": "dpop+jwt", "jwk": public})


class TestTheBrokerAsksForBoundTokens:
    def test_a_dpop_profile_gets_a_dpop_token_and_the_key_it_is_bound_to(
        self, broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
    ) -> None:
        # Given a profile whose client must use DPoP, as Okta's API Services apps do by default
        profile = profiles.create(token_binding="dpop", scopes=["orders.read"])

        # When a token is asked for
        answer = broker.invoke({"profile": profile}).answer

        # Then it is a DPoP token, handed out with its private key, bound to that key's thumbprint
        assert answer["token_type"] == "DPoP", answer
        key = answer["dpop_key"]
        assert (key["kty"], key["crv"], key["alg"]) == ("EC", "P-256", "ES256")
        assert {"x", "y", "d"} <= set(key)
        assert auth_server.introspect(answer["access_token"])["cnf"] == {"jkt": thumbprint(key)}
        # and the nonce round trip cost no failure: a challenge, then the token
        requests = auth_server.token_requests(profiles.client_id(profile))
        assert [r.status for r in requests] == [400, 200]
        assert sum(1 for token in auth_server.tokens.values() if token.client_id == profiles.client_id(profile)) == 1

    def test_a_warm_container_sends_the_nonce_it_was_given_and_needs_one_round_trip(
        self, broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
    ) -> None:
        profile = profiles.create(token_binding="dpop")
        broker.invoke({"profile": profile, "scopes": ["orders.read"]})

        answer = broker.invoke({"profile": profile, "scopes": ["orders.write"]}).answer

        assert answer["token_type"] == "DPoP"
        assert [r.status for r in auth_server.token_requests(profiles.client_id(profile))] == [400, 200, 200]

    @pytest.mark.parametrize(("algorithm", "kty"), [("RS256", "RSA"), ("PS256", "RSA")])
    def test_rsa_keys_when_the_profile_asks(
        self, broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer, algorithm: str, kty: str
    ) -> None:
        profile = profiles.create(token_binding="dpop", dpop_algorithm=algorithm)

        key = broker.invoke({"profile": profile}).answer["dpop_key"]

        assert (key["kty"], key["alg"]) == (kty, algorithm)
        assert set(PRIVATE_JWK_MEMBERS) <= set(key)
        assert RSAAlgorithm.from_jwk(json.dumps(key)).key_size == 2048

    def test_every_token_has_a_key_of_its_own(
        self, broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
    ) -> None:
        profile = profiles.create(token_binding="dpop")
        first = broker.invoke({"profile": profile}).answer
        broker.new_container(FORCE_REFRESH_COOLDOWN_SECONDS="0")

        second = broker.invoke({"profile": profile, "force_refresh": True}).answer

        assert second["access_token"] != first["access_token"]
        assert thumbprint(second["dpop_key"]) != thumbprint(first["dpop_key"])
        assert auth_server.introspect(second["access_token"])["cnf"] == {"jkt": thumbprint(second["dpop_key"])}

    def test_a_server_that_answers_with_a_bearer_token_fails_closed(
        self, broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
    ) -> None:
        # Given a dpop profile whose client the server does not bind (it ignores the proof)
        profile = profiles.create(token_binding="dpop")
        auth_server.clients[profiles.client_id(profile)].dpop = False

        answer = broker.invoke({"profile": profile}).answer

        # Then no unbound token is handed out for a dpop profile, and none is cached
        assert (answer["error"], answer["status"]) == ("upstream_error", 502)
        assert "access_token" not in answer
        assert "sealed_token" not in broker.item(profiles, profile)

    def test_a_bearer_profile_never_gets_a_dpop_token(
        self, broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
    ) -> None:
        profile = profiles.create()
        auth_server.fail_next(
            Fault(200, '{"access_token": "bound-elsewhere-token-0123456789", "token_type": "DPoP", "expires_in": 600}')
        )

        answer = broker.invoke({"profile": profile}).answer

        assert answer["error"] == "upstream_error"

    def test_invalid_dpop_proof_is_upstream_error_and_the_log_names_the_claim_not_the_text(
        self,
        broker: Broker,
        profiles: Profiles,
        auth_server: LocalAuthorizationServer,
        broker_log: list[logging.LogRecord],
    ) -> None:
        profile = profiles.create(token_binding="dpop")
        text = "The DPoP proof htu does not match the request: sk-secret-looking-text"
        auth_server.fail_next(Fault(400, json.dumps({"error": "invalid_dpop_proof", "error_description": text})))

        answer = broker.invoke({"profile": profile}).answer

        assert (answer["error"], answer["upstream_error"]) == ("upstream_error", "invalid_dpop_proof")
        (refused,) = [r for r in broker_log if r.getMessage() == "token request refused"]
        assert refused.__dict__["proof_part"] == "htu"
        assert "sk-secret" not in json.dumps({k: str(v) for k, v in refused.__dict__.items()})

    def test_a_nonce_challenge_is_answered_once_and_a_second_is_a_refusal(
        self, broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
    ) -> None:
        profile = profiles.create(token_binding="dpop")
        challenge = Fault(
            400,
            '{"error": "use_dpop_nonce", "error_description": "Authorization server requires nonce in DPoP proof."}',
            headers={"DPoP-Nonce": "first-nonce"},
        )
        auth_server.fail_next(challenge, Fault(**{**challenge.__dict__, "headers": {"DPoP-Nonce": "second-nonce"}}))

        answer = broker.invoke({"profile": profile}).answer

        assert (answer["error"], answer["upstream_error"]) == ("upstream_error", "use_dpop_nonce")
        assert len(auth_server.token_requests(profiles.client_id(profile))) == 2


class TestTheFleetSharesOneTokenAndKey:
    @pytest.mark.parametrize("algorithm", ["ES256", "RS256", "PS256"])
    def test_another_container_gets_the_same_token_and_key_from_the_table(
        self, broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer, algorithm: str
    ) -> None:
        profile = profiles.create(token_binding="dpop", dpop_algorithm=algorithm)
        first = broker.invoke({"profile": profile}).answer

        broker.new_container()
        second = broker.invoke({"profile": profile}).answer

        assert (second["access_token"], second["dpop_key"]) == (first["access_token"], first["dpop_key"])
        assert len(auth_server.token_requests(profiles.client_id(profile))) == 2  # the nonce, then the token

    def test_the_key_rests_only_sealed_with_its_token(
        self, broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
    ) -> None:
        profile = profiles.create(token_binding="dpop", dpop_algorithm="RS256")
        answer = broker.invoke({"profile": profile}).answer

        item = broker.item(profiles, profile)

        assert {"sealed_token", "data_key"} <= set(item)
        assert "dpop_key" not in item
        assert "access_token" not in item
        stored = json.dumps({name: str(value) for name, value in item.items()})
        for name in PRIVATE_JWK_MEMBERS:
            assert answer["dpop_key"][name] not in stored

    def test_a_key_written_beside_a_sealed_token_is_not_served_and_the_key_is_renewed(
        self, broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
    ) -> None:
        # Given a table writer who puts its own key beside the sealed token
        profile = profiles.create(token_binding="dpop")
        first = broker.invoke({"profile": profile}).answer
        planted = {**first["dpop_key"], "d": "A" * 43}
        broker.put_item({**broker.item(profiles, profile), "dpop_key": {"S": json.dumps(planted)}})
        broker.new_container()

        answer = broker.invoke({"profile": profile}).answer

        assert answer["dpop_key"]["d"] != planted["d"]
        assert answer["access_token"] != first["access_token"]

    def test_a_dpop_key_swapped_in_from_another_item_does_not_open(
        self, broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
    ) -> None:
        one, other = profiles.create(token_binding="dpop"), profiles.create(token_binding="dpop")
        taken = broker.invoke({"profile": one}).answer
        kept = broker.invoke({"profile": other}).answer
        item = broker.item(profiles, other)
        broker.put_item({**item, **{k: v for k, v in broker.item(profiles, one).items() if k != "cache_key"}})
        broker.new_container()

        answer = broker.invoke({"profile": other}).answer

        assert answer["access_token"] not in (taken["access_token"], kept["access_token"])

    def test_without_a_kms_key_the_key_is_kept_beside_its_token_and_shared(
        self, broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
    ) -> None:
        profile = profiles.create(token_binding="dpop")
        broker.new_container(TOKEN_KMS_KEY_ID="")
        first = broker.invoke({"profile": profile}).answer

        broker.new_container(TOKEN_KMS_KEY_ID="")
        second = broker.invoke({"profile": profile}).answer

        assert json.loads(broker.item(profiles, profile)["dpop_key"]["S"]) == first["dpop_key"]
        assert (second["access_token"], second["dpop_key"]) == (first["access_token"], first["dpop_key"])

    @pytest.mark.parametrize(
        "forged",
        [
            {"token_type": {"S": "Bearer"}},  # the token without its binding
            {"dpop_key": {"S": '{"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}'}},  # a key no broker makes
            {"dpop_key": {"NULL": True}},
        ],
        ids=["as-bearer", "symmetric-key", "no-key"],
    )
    def test_a_forged_plaintext_item_is_renewed_never_served(
        self, broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer, forged: dict[str, Any]
    ) -> None:
        profile = profiles.create(token_binding="dpop")
        broker.new_container(TOKEN_KMS_KEY_ID="")
        first = broker.invoke({"profile": profile}).answer
        broker.put_item({**broker.item(profiles, profile), **forged})
        broker.new_container(TOKEN_KMS_KEY_ID="")

        answer = broker.invoke({"profile": profile}).answer

        assert answer["token_type"] == "DPoP"
        assert answer["access_token"] != first["access_token"]


class TestTheResourceAcceptsIt:
    def test_the_token_and_a_proof_from_its_key_reach_the_api_and_a_replay_does_not(
        self,
        broker: Broker,
        profiles: Profiles,
        auth_server: LocalAuthorizationServer,
        resource_server: LocalResourceServer,
    ) -> None:
        profile = profiles.create(token_binding="dpop")
        answer = broker.invoke({"profile": profile}).answer
        url = f"{resource_server.url}/api/v1/users"
        token, key = answer["access_token"], answer["dpop_key"]
        sent = proof(key, "GET", url, token)

        def call(with_proof: str, scheme: str = "DPoP") -> urllib3.BaseHTTPResponse:
            return urllib3.request("GET", url, headers={"Authorization": f"{scheme} {token}", "DPoP": with_proof})

        assert call(sent).status == 200
        assert call(sent).status == 401  # the same proof again: a replay
        assert call(proof(key, "GET", url, token), scheme="Bearer").status == 401  # a bound token as Bearer
        assert call(proof(key, "POST", url, token)).status == 401  # for another method
        assert call(proof(key, "GET", f"{url}/other", token)).status == 401  # for another URL
        refusals = [r.refusal for r in resource_server.requests]
        assert refusals == [
            "",
            "invalid_dpop_proof jti",
            "invalid_token bearer",
            "invalid_dpop_proof htm",
            "invalid_dpop_proof htu",
        ]
