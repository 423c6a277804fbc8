"""The core path through the real handler, against moto's server and the local authorization server."""

from __future__ import annotations

import time

import pytest

from devstack.local.authserver import LocalAuthorizationServer
from tests.conftest import Broker, Profiles


def test_a_profile_token_has_the_contract_shape(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    # Given a profile whose client exists on the authorization server
    profile = profiles.create(scopes=["customScope"])

    # When a Lambda asks for its token
    answer = broker.invoke({"profile": profile}).answer

    # Then it gets the token the server issued, with the contract's fields
    assert set(answer) == {"access_token", "token_type", "expires_in", "expires_at", "scope"}
    assert answer["access_token"] == auth_server.issued[-1]
    assert answer["token_type"] == "Bearer"
    assert answer["scope"] == "customScope"
    assert 3590 <= answer["expires_in"] <= 3600
    assert abs(answer["expires_at"] - (time.time() + answer["expires_in"])) <= 2


def test_the_same_key_is_served_from_memory_then_from_the_table(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create(scopes=["customScope"])
    first = broker.invoke({"profile": profile})

    second = broker.invoke({"profile": profile})
    broker.new_container()
    third = broker.invoke({"profile": profile})

    assert first.answer["access_token"] == second.answer["access_token"] == third.answer["access_token"]
    assert {"CacheMiss", "TokenRequests"} <= set(first.metrics)
    assert "MemoryHit" in second.metrics
    assert "TableHit" in third.metrics
    assert len(auth_server.token_requests(profiles.client_id(profile))) == 1


def test_fresh_processes_sharing_the_table_make_no_new_token_request(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create()
    token = broker.invoke({"profile": profile}).answer["access_token"]

    answers = []
    for _ in range(2):
        container = broker.container_process()
        answers.append(container.invoke({"profile": profile}))
        container.close()

    assert [a["answer"]["access_token"] for a in answers] == [token, token]
    assert all("TableHit" in a["metrics"] for a in answers)
    assert len(auth_server.token_requests(profiles.client_id(profile))) == 1


def test_scope_order_and_duplicates_do_not_make_a_new_key(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create()
    first = broker.invoke({"profile": profile, "scopes": ["orders.read", "customScope"]}).answer
    broker.new_container()
    second = broker.invoke({"profile": profile, "scopes": ["customScope", "orders.read", "customScope"]}).answer

    assert first["access_token"] == second["access_token"]
    assert len(auth_server.token_requests(profiles.client_id(profile))) == 1


def test_a_new_scope_set_gets_its_own_token(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create()
    read = broker.invoke({"profile": profile, "scopes": ["orders.read"]}).answer
    write = broker.invoke({"profile": profile, "scopes": ["orders.write"]}).answer

    assert read["access_token"] != write["access_token"]
    assert (read["scope"], write["scope"]) == ("orders.read", "orders.write")
    sent = [r.scope for r in auth_server.token_requests(profiles.client_id(profile))]
    assert sent == ["orders.read", "orders.write"]


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_the_server_sees_the_authentication_method_the_profile_names(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer, auth_method: str
) -> None:
    profile = profiles.create(auth_method=auth_method)

    answer = broker.invoke({"profile": profile}).answer

    assert "access_token" in answer
    (request,) = auth_server.token_requests(profiles.client_id(profile))
    assert request.auth_method == auth_method
    assert request.status == 200


def test_default_scopes_and_token_params_are_sent(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create(
        scopes=["orders.read", "customScope"], token_params={"audience": "https://api.example.com"}
    )

    broker.invoke({"profile": profile})

    (request,) = auth_server.token_requests(profiles.client_id(profile))
    assert request.scope == "customScope orders.read"
    assert request.form["audience"] == "https://api.example.com"
    assert request.form["grant_type"] == "client_credentials"


def test_a_min_ttl_above_the_cached_life_fetches_a_new_token(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    # Given a cached token of an hour's life with about 1000 s left
    profile = profiles.create()
    cached = broker.seed_token(profiles, profile, life_left=1000, age=2600)

    # When a request needs 2000 s of life
    longer = broker.invoke({"profile": profile, "min_ttl": 2000}).answer

    # Then it gets a new token that lives long enough, and later requests get that one
    assert longer["access_token"] != cached
    assert longer["expires_in"] >= 2000
    assert broker.invoke({"profile": profile}).answer["access_token"] == longer["access_token"]


def test_a_min_ttl_longer_than_a_fresh_token_lives_is_invalid_and_asks_the_server_once(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    # Given an authorization server whose tokens live 600 s
    auth_server.lifetime = 600
    profile = profiles.create()

    # When ten requests ask for 3000 s of life
    answers = [broker.invoke({"profile": profile, "min_ttl": 3000}).answer for _ in range(10)]

    # Then each is invalid_request; only the first asked the server, which taught the key's lifetime
    for answer in answers:
        assert answer["error"] == "invalid_request", answer
        assert answer["status"] == 400
        assert "min_ttl" in answer["error_description"]
    assert len(auth_server.token_requests()) == 1
    # and the token it fetched is the key's, served to a request that it satisfies
    assert broker.invoke({"profile": profile}).answer["access_token"] == auth_server.issued[-1]


def test_a_missing_expires_in_is_taken_from_the_jwt_exp(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    auth_server.send_expires_in, auth_server.jwt_tokens, auth_server.lifetime = False, True, 1800
    profile = profiles.create()

    answer = broker.invoke({"profile": profile}).answer

    assert 1790 <= answer["expires_in"] <= 1800


def test_a_missing_expires_in_on_an_opaque_token_means_300_seconds(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    auth_server.send_expires_in = False
    profile = profiles.create()

    answer = broker.invoke({"profile": profile}).answer

    assert 290 <= answer["expires_in"] <= 300
