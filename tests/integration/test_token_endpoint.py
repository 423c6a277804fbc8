"""The token endpoint as the broker meets it, through the real handler and the local
authorization server: retries and their waits, rate limits, a hung server, rotation, and a
table that cannot be reached."""

from __future__ import annotations

import time

import pytest

from devstack.local.authserver import Fault, LocalAuthorizationServer
from tests.conftest import Broker, Profiles


def test_429_with_retry_after_is_retried_after_that_wait(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create()
    auth_server.fail_next(Fault(status=429, body='{"error": "rate_limited"}', headers={"Retry-After": "1"}))

    answer = broker.invoke({"profile": profile}).answer

    assert "access_token" in answer
    limited, retried = auth_server.token_requests()
    assert (limited.status, retried.status) == (429, 200)
    assert retried.arrived - limited.arrived >= 1.0  # no sooner than the server asked


def test_okta_rate_limit_reset_is_honoured(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create()
    reset = str(int(time.time()) + 600)
    auth_server.fail_next(Fault(status=429, body="{}", headers={"X-Rate-Limit-Reset": reset}))

    answer = broker.invoke({"profile": profile}, timeout_seconds=5).answer

    assert answer["error"] == "upstream_unavailable"
    assert 590 <= answer["retry_after"] <= 600
    assert len(auth_server.token_requests()) == 1  # 600 s is past the deadline: no pointless wait


def test_5xx_and_garbage_5xx_are_retried_with_backoff(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create()
    auth_server.fail_next(Fault(status=500, body="<html>oops</html>"), Fault(status=502, body=""))

    answer = broker.invoke({"profile": profile}).answer

    assert "access_token" in answer
    assert [r.status for r in auth_server.token_requests()] == [500, 502, 200]


def test_a_hung_token_endpoint_is_answered_before_the_lambda_times_out(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create()
    auth_server.fail_next(Fault(status=200, delay=20))

    # a 1.5 s Lambda: had the broker waited for the server, it would have run out of time
    answer = broker.invoke({"profile": profile}, timeout_seconds=1.5).answer

    assert answer["error"] == "upstream_unavailable"
    assert "in time" in answer["error_description"]
    assert answer["retry_after"] >= 1


def test_a_rotated_secret_works_on_the_next_request(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    # Given a container that has read the profile's secret
    profile = profiles.create()
    assert "access_token" in broker.invoke({"profile": profile, "scopes": ["orders.read"]}).answer
    client_id = profiles.client_id(profile)

    # When the secret is rotated at the authorization server and in Secrets Manager
    auth_server.clients[client_id].client_secret = "rotated-secret-value"
    profiles.put(profile, {**profiles.document(profile), "client_secret": "rotated-secret-value"})
    answer = broker.invoke({"profile": profile, "scopes": ["orders.write"]}).answer

    # Then the next token request fails once with invalid_client, the secret is re-read, and it succeeds
    assert "access_token" in answer
    assert [r.status for r in auth_server.token_requests(client_id)] == [200, 401, 200]


def test_with_dynamodb_unreachable_callers_are_still_served(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = profiles.create()
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")  # nothing listens there
    broker.new_container(fresh_clients=True)

    invocations = [broker.invoke({"profile": profile}) for _ in range(3)]

    assert all("access_token" in invocation.answer for invocation in invocations)
    assert "CacheUnavailable" in invocations[0].metrics
    assert [invocation.metrics[-1] for invocation in invocations[1:]] == ["MemoryHit", "MemoryHit"]
    assert len(auth_server.token_requests()) == 1
