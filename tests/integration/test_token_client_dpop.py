"""token_client with DPoP-bound tokens (contract 4): `headers()` and the three adapters make a
fresh proof for each request, answer a resource server's nonce challenge once, and refuse to
hand a DPoP token out as a bare header. Against the real broker behind the local Invoke API,
the local authorization server, and the local resource server that checks every proof."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
import urllib3
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from devstack.local.dpop_check import ProofChecker, thumbprint, token_hash
from devstack.local.resource_server import LocalResourceServer
from tests.adapters import ADAPTERS, get_with
from tests.conftest import Profiles
from token_client import DpopRequired, TokenClient
from token_client.dpop import SIGNERS, DpopKey, KeyNotUsable


def private_jwk(algorithm: str) -> tuple[dict[str, Any], Any]:
    if algorithm == "ES256":
        key: Any = ec.generate_private_key(ec.SECP256R1())
        jwk = ECAlgorithm.to_jwk(key, as_dict=True)
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = RSAAlgorithm.to_jwk(key, as_dict=True)
    return {**jwk, "alg": algorithm}, key.public_key()


class TestProofs:
    """The proof itself: what RFC 9449 §4.2 asks of it, verified by `cryptography` (through
    PyJWT) and by the local stand-ins' checker, for every algorithm and both signers."""

    @pytest.mark.parametrize("signer", sorted(SIGNERS))
    @pytest.mark.parametrize("algorithm", ["ES256", "RS256", "PS256"])
    def test_a_proof_verifies_and_says_what_the_request_is(self, algorithm: str, signer: str) -> None:
        jwk, public = private_jwk(algorithm)
        key = DpopKey(jwk, signer)

        proof = key.proof("get", "https://api.example.com/v1/users?page=2#top", "the-access-token", nonce="n-1")

        header = jwt.get_unverified_header(proof)
        claims = jwt.decode(proof, public, algorithms=[algorithm])
        assert (header["typ"], header["alg"]) == ("dpop+jwt", algorithm)
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(header["jwk"])  # the public key only
        assert thumbprint(header["jwk"]) == key.thumbprint
        assert (claims["htm"], claims["htu"], claims["nonce"]) == ("GET", "https://api.example.com/v1/users", "n-1")
        assert claims["ath"] == token_hash("the-access-token")
        checked = ProofChecker().check([proof], "GET", "https://api.example.com/v1/users", "the-access-token")
        assert checked.jkt == key.thumbprint

    def test_every_proof_is_new(self) -> None:
        key = DpopKey(private_jwk("ES256")[0], "python")
        proofs = {key.proof("GET", "https://api.example.com/", "t") for _ in range(20)}
        assert len(proofs) == 20
        assert len({jwt.decode(p, options={"verify_signature": False})["jti"] for p in proofs}) == 20

    @pytest.mark.parametrize("signer", sorted(SIGNERS))
    @pytest.mark.parametrize(
        "change",
        [
            {"alg": "HS256"},
            {"crv": "P-384"},
            {"x": "AAAA"},  # a public part that is not the private part's
            {"kty": "oct"},
        ],
    )
    def test_a_key_it_cannot_sign_with_is_refused(self, signer: str, change: dict[str, str]) -> None:
        jwk, _ = private_jwk("ES256")
        with pytest.raises(KeyNotUsable):
            DpopKey({**jwk, **change}, signer)

    def test_the_key_prints_nothing_secret(self) -> None:
        jwk, _ = private_jwk("ES256")
        key = DpopKey(jwk)
        assert jwk["d"] not in repr(key)
        assert jwk["d"] not in str(key)


class TestHeaders:
    def test_headers_carry_the_dpop_token_and_a_proof_for_this_request_that_the_resource_accepts(
        self, tokens: TokenClient, profiles: Profiles, resource_server: LocalResourceServer
    ) -> None:
        profile = profiles.create(token_binding="dpop")
        url = f"{resource_server.url}/api/v1/users"

        first = tokens.headers(profile, "GET", url)
        second = tokens.headers(profile, "GET", url)

        assert first["Authorization"].startswith("DPoP ")
        assert first["Authorization"] == second["Authorization"]  # one token
        assert first["DPoP"] != second["DPoP"]  # a proof each
        assert urllib3.request("GET", url, headers=first).status == 200
        assert urllib3.request("GET", url, headers=first).status == 401  # a replayed proof
        assert urllib3.request("GET", url, headers=second).status == 200

    def test_auth_header_refuses_a_dpop_token_naming_headers(self, tokens: TokenClient, profiles: Profiles) -> None:
        profile = profiles.create(token_binding="dpop")
        with pytest.raises(DpopRequired, match=r"headers\(profile, method, url\)") as raised:
            tokens.auth_header(profile)
        assert isinstance(raised.value, TypeError)

    def test_a_bearer_profile_gets_a_bearer_header_and_no_proof(
        self, tokens: TokenClient, profiles: Profiles, resource_server: LocalResourceServer
    ) -> None:
        profile = profiles.create()
        headers = tokens.headers(profile, "GET", f"{resource_server.url}/api")
        assert set(headers) == {"Authorization"}
        assert headers["Authorization"].startswith("Bearer ")
        assert urllib3.request("GET", f"{resource_server.url}/api", headers=headers).status == 200

    def test_a_broker_answer_that_pairs_a_token_and_key_wrongly_is_broker_failed(self, tokens: TokenClient) -> None:
        from token_client import BrokerFailed

        answer = {"access_token": "t" * 20, "token_type": "DPoP", "expires_in": 600, "scope": ""}
        with pytest.raises(BrokerFailed):
            tokens._token_of(answer)
        with pytest.raises(BrokerFailed):
            tokens._token_of({**answer, "token_type": "Bearer", "dpop_key": private_jwk("ES256")[0]})


class TestAdapters:
    @pytest.mark.parametrize("adapter", ADAPTERS)
    def test_every_request_gets_a_fresh_proof(
        self, adapter: str, tokens: TokenClient, profiles: Profiles, resource_server: LocalResourceServer
    ) -> None:
        profile = profiles.create(token_binding="dpop")
        url = f"{resource_server.url}/api/v1/users"

        statuses = [get_with(adapter, tokens, profile, url) for _ in range(3)]

        assert statuses == [200, 200, 200]
        assert [r.scheme for r in resource_server.requests] == ["DPoP"] * 3

    @pytest.mark.parametrize("adapter", ADAPTERS)
    def test_a_nonce_challenge_is_answered_once_and_the_nonce_kept_for_the_origin(
        self, adapter: str, tokens: TokenClient, profiles: Profiles, resource_server: LocalResourceServer
    ) -> None:
        # Given a resource server that asks for its nonce in every proof
        resource_server.require_nonce = True
        profile = profiles.create(token_binding="dpop")
        url = f"{resource_server.url}/api/v1/users"

        # When two requests are made
        first, second = get_with(adapter, tokens, profile, url), get_with(adapter, tokens, profile, url)

        # Then the first was challenged once and sent again with the nonce; the second needed none
        assert (first, second) == (200, 200)
        assert [(r.status, r.refusal) for r in resource_server.requests] == [
            (401, "use_dpop_nonce nonce"),
            (200, ""),
            (200, ""),
        ]

    @pytest.mark.parametrize("adapter", ADAPTERS)
    def test_a_second_nonce_challenge_is_the_answer(
        self,
        adapter: str,
        tokens: TokenClient,
        profiles: Profiles,
        resource_server: LocalResourceServer,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # Given a resource server whose nonce changes between the challenge and the retry
        resource_server.require_nonce = True
        profile = profiles.create(token_binding="dpop")
        url = f"{resource_server.url}/api"
        original = resource_server.proofs.check

        def check(*args: Any, **kwargs: Any) -> Any:
            resource_server.nonces.rotate()
            resource_server.nonces.rotate()  # neither the current nor the previous is the client's
            return original(*args, **kwargs)

        monkeypatch.setattr(resource_server.proofs, "check", check)

        status = get_with(adapter, tokens, profile, url)

        assert status == 401
        assert len(resource_server.requests) == 2  # the request and one retry, no more

    def test_a_nonce_from_one_origin_is_never_sent_to_another(
        self, tokens: TokenClient, profiles: Profiles, resource_server: LocalResourceServer
    ) -> None:
        profile = profiles.create(token_binding="dpop")
        assert tokens.remember_nonce(f"{resource_server.url}/api", "origin-a-nonce")
        assert not tokens.remember_nonce(f"{resource_server.url}/api", 'bad"nonce')

        here = tokens.headers(profile, "GET", f"{resource_server.url}/x")
        elsewhere = tokens.headers(profile, "GET", "https://api.example.com/x")

        assert jwt.decode(here["DPoP"], options={"verify_signature": False})["nonce"] == "origin-a-nonce"
        assert "nonce" not in jwt.decode(elsewhere["DPoP"], options={"verify_signature": False})

    @pytest.mark.parametrize("adapter", ADAPTERS)
    def test_a_401_for_another_reason_keeps_the_rule_for_bearer_tokens(
        self, adapter: str, tokens: TokenClient, profiles: Profiles, resource_server: LocalResourceServer
    ) -> None:
        # Given a bound token the resource server does not know (another server issued it)
        profile = profiles.create(token_binding="dpop")
        token = tokens.token(profile)
        resource_server._authorization_server.tokens.pop(token.value)

        status = get_with(adapter, tokens, profile, f"{resource_server.url}/api")

        # Then the 401 is not a nonce challenge: within the broker's cooldown no retry is made
        assert status == 401
        assert [r.refusal for r in resource_server.requests] == ["invalid_token"]


def test_the_answer_and_the_tokens_key_agree(tokens: TokenClient, profiles: Profiles) -> None:
    profile = profiles.create(token_binding="dpop")
    token = tokens.token(profile)
    assert token.token_type == "DPoP"
    assert token.dpop_key is not None
    introspected = json.dumps(profiles.server.introspect(token.value))
    assert token.dpop_key.thumbprint in introspected
