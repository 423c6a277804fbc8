"""Fleet behaviour: many containers, each its own OS process, sharing moto's server and the
local authorization server (contract promises 3 to 7)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

from devstack.authserver import Fault, LocalAuthorizationServer
from devstack.aws import LocalAws
from tests.conftest import Broker, ContainerProcess, Profiles

pytestmark = pytest.mark.processes


def all_at_once(containers: list[ContainerProcess], event: dict[str, Any], timeout_seconds: float = 15) -> list[Any]:
    for container in containers:
        container.send(event, timeout_seconds)
    return [container.receive() for container in containers]


def test_a_cold_key_asked_by_eight_containers_at_once_costs_one_token_request(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    # Given eight fresh containers and a slow authorization server
    profile = profiles.create()
    containers = broker.container_processes(8)
    auth_server.delay = 0.5

    # When they all ask for the same key at once
    results = all_at_once(containers, {"profile": profile})

    # Then one token request served them all
    tokens = {result["answer"].get("access_token") for result in results}
    assert len(tokens) == 1, [result["answer"] for result in results]
    assert None not in tokens
    assert len(auth_server.token_requests()) == 1


def test_a_refresh_ahead_window_costs_one_renewal_and_nobody_waits_for_it(
    broker: Broker, profiles: Profiles, local_aws: LocalAws, auth_server: LocalAuthorizationServer
) -> None:
    # Given a cached token 200 s from expiry (inside the 300 s refresh-ahead window)
    profile = profiles.create()
    cached = broker.seed_token(profiles, profile, life_left=200, age=3400)
    containers = broker.container_processes(8)
    auth_server.delay = 0.5  # within the one try's budget of 0.8 s

    # When eight containers ask at once
    results = all_at_once(containers, {"profile": profile})

    # Then one renews while the other seven get the cached token without waiting for the renewal
    answers = [result["answer"] for result in results]
    assert len(auth_server.token_requests()) == 1
    assert sum(answer["access_token"] == cached for answer in answers) == 7
    waiting = sorted(result["milliseconds"] for result in results if result["answer"]["access_token"] == cached)
    assert waiting[-1] < 500, waiting  # the renewal takes at least 0.5 s; none of them waited for it
    # and afterwards everyone gets the renewed token
    renewed = {answer["access_token"] for answer in answers} - {cached}
    assert {result["answer"]["access_token"] for result in all_at_once(containers, {"profile": profile})} == renewed


def test_a_renewer_killed_mid_renewal_is_taken_over_once_its_lease_lapses(
    broker: Broker, profiles: Profiles, local_aws: LocalAws, auth_server: LocalAuthorizationServer
) -> None:
    # Given a container renewing a cold key against a hung authorization server
    profile = profiles.create()
    renewer, successor = broker.container_processes(2)
    auth_server.fail_next(Fault(status=503, delay=30))
    renewer.send({"profile": profile}, timeout_seconds=60)
    dynamodb = local_aws.client("dynamodb")
    deadline = time.time() + 10
    while time.time() < deadline:
        items = dynamodb.scan(TableName=broker.table_name)["Items"]
        if items and "lease_owner" in items[0]:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the renewer never took the lease")

    # When it is killed, and another container asks
    os.kill(renewer.process.pid, signal.SIGKILL)
    renewer.process.wait()
    started = time.time()
    result = successor.invoke({"profile": profile}, timeout_seconds=30)

    # Then the other takes over within seconds and gets a token
    assert "access_token" in result["answer"], result["answer"]
    assert time.time() - started < 15


def test_429_with_retry_after_is_retried_after_that_wait(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create()
    auth_server.fail_next(Fault(status=429, body='{"error": "rate_limited"}', headers={"Retry-After": "1"}))

    invocation = broker.invoke({"profile": profile})

    assert "access_token" in invocation.answer
    assert [r.status for r in auth_server.token_requests()] == [429, 200]
    assert invocation.milliseconds >= 1000


def test_okta_rate_limit_reset_is_honoured(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create()
    reset = str(int(time.time()) + 600)
    auth_server.fail_next(Fault(status=429, body="{}", headers={"X-Rate-Limit-Reset": reset}))

    answer = broker.invoke({"profile": profile}, timeout_seconds=5).answer

    assert answer["error"] == "upstream_unavailable"
    assert 590 <= answer["retry_after"] <= 600
    assert len(auth_server.token_requests()) == 1


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

    invocation = broker.invoke({"profile": profile}, timeout_seconds=3)

    assert invocation.answer["error"] == "upstream_unavailable"
    assert invocation.milliseconds < 3000


def test_a_failing_server_does_not_fail_callers_while_the_cached_token_is_usable(
    broker: Broker, profiles: Profiles, local_aws: LocalAws, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create()
    cached = broker.seed_token(profiles, profile, life_left=200, age=3400)
    auth_server.fail_next(*[Fault(status=503)] * 100)

    answers = [broker.invoke({"profile": profile}, timeout_seconds=3).answer for _ in range(3)]

    assert [answer["access_token"] for answer in answers] == [cached] * 3
    assert all(request.status == 503 for request in auth_server.token_requests())


def test_a_refusal_is_remembered_fleet_wide(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    # Given a profile whose secret the server refuses
    profile = profiles.create()
    profiles.put(profile, {**profiles.document(profile), "client_secret": "wrong-secret-value"})
    first = broker.invoke({"profile": profile}).answer

    # When another container asks, in a hot loop
    broker.new_container()
    again = [broker.invoke({"profile": profile}).answer for _ in range(5)]

    # Then it is refused with the server's code, without asking the server again
    assert first["upstream_error"] == "invalid_client"
    assert all(answer["upstream_error"] == "invalid_client" for answer in again)
    assert all(1 <= answer["retry_after"] <= 30 for answer in again)
    assert len(auth_server.token_requests()) == 1


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


def test_force_refresh_within_the_cooldown_shares_the_last_fetch(
    broker: Broker, profiles: Profiles, local_aws: LocalAws, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create()
    old = broker.seed_token(profiles, profile, life_left=3000, age=600)
    containers = broker.container_processes(4)

    results = all_at_once(containers, {"profile": profile, "force_refresh": True})
    again = broker.invoke({"profile": profile, "force_refresh": True}).answer

    tokens = {result["answer"]["access_token"] for result in results}
    assert len(tokens) == 1
    assert old not in tokens
    assert again["access_token"] in tokens
    assert len(auth_server.token_requests()) == 1


def test_with_dynamodb_unreachable_callers_are_still_served_quickly(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create()
    container = broker.container_process(AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:9")

    results = [container.invoke({"profile": profile}) for _ in range(3)]

    assert all("access_token" in result["answer"] for result in results)
    assert "CacheUnavailable" in results[0]["metrics"]
    assert "MemoryHit" in results[1]["metrics"]
    assert results[2]["milliseconds"] < 50
    assert len(auth_server.token_requests()) == 1


def test_a_sustained_mixed_load_has_no_errors(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    names = [profiles.create(scopes=["customScope"]) for _ in range(3)]
    containers = broker.container_processes(4)
    events = [
        {"profile": names[i % 3], "scopes": [["customScope"], ["orders.read"], []][i % 3], "min_ttl": 60 + i % 5}
        for i in range(30)
    ]

    answers = []
    for event in events:
        answers.extend(result["answer"] for result in all_at_once(containers, event))

    assert [answer for answer in answers if "error" in answer] == []
    assert len(auth_server.token_requests()) == 3  # one per key: three profiles, one scope set each


def test_a_cold_key_in_an_outage_answers_every_container_once_the_renewer_fails(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    # Given eight fresh containers and a server that answers 500 to everything
    profile = profiles.create()
    containers = broker.container_processes(8)
    auth_server.outage = Fault(status=500)

    # When they all ask for one key at once
    results = all_at_once(containers, {"profile": profile})

    # Then one renewer's bounded retries were all the server saw, and every container answered
    # 503 with retry_after within moments of its failure, far inside the Lambda's 15 s
    answers = [result["answer"] for result in results]
    assert {answer["error"] for answer in answers} == {"upstream_unavailable"}, answers
    assert min(answer["retry_after"] for answer in answers) >= 1
    assert auth_server.arrived <= 4
    assert max(result["milliseconds"] for result in results) < 6_000
