"""The fleet really coordinates: containers, each its own OS process, sharing moto's server, the
local authorization server and the local Lambda API's renewal function. Every case of the
protocol is a millisecond test in tests/unit/test_renewal.py; these prove the real parts agree."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

from devstack.local.authserver import Fault, LocalAuthorizationServer
from devstack.local.aws import LocalAws
from devstack.local.lambda_api import LocalLambdaApi
from devstack.local.lambda_host import RENEWAL_FUNCTION_ARN
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


def test_in_the_refresh_ahead_window_one_renewal_is_handed_over_and_nobody_asks_the_server(
    broker: Broker, profiles: Profiles, lambda_api: LocalLambdaApi, auth_server: LocalAuthorizationServer
) -> None:
    # Given a cached token 200 s from expiry (inside the 300 s window), a server that takes 2 s,
    # and eight containers that hand renewals to the renewal function
    profile = profiles.create()
    cached = broker.seed_token(profiles, profile, life_left=200, age=3400)
    containers = broker.container_processes(
        8, RENEWAL_FUNCTION=RENEWAL_FUNCTION_ARN, AWS_ENDPOINT_URL_LAMBDA=lambda_api.endpoint_url
    )
    auth_server.delay = 2.0

    # When they all ask at once
    results = all_at_once(containers, {"profile": profile})

    # Then every one was answered from the table, none asked the server, and one renewal was
    # handed over, which made the one token request
    assert [result["answer"]["access_token"] for result in results] == [cached] * 8
    assert all("TableHit" in result["metrics"] and "TokenRequests" not in result["metrics"] for result in results)
    lambda_api.drain()
    assert len(lambda_api.invocations_of(RENEWAL_FUNCTION_ARN)) == 1
    assert len(auth_server.token_requests()) == 1
    # and afterwards everyone gets the renewed token
    renewed = {result["answer"]["access_token"] for result in all_at_once(containers, {"profile": profile})}
    assert renewed == {auth_server.issued[-1]}


def test_a_renewer_killed_mid_renewal_is_taken_over_once_its_lease_lapses(
    broker: Broker, profiles: Profiles, local_aws: LocalAws, auth_server: LocalAuthorizationServer
) -> None:
    # Given a container renewing a cold key against a hung authorization server
    profile = profiles.create()
    renewer, successor = broker.container_processes(2)
    auth_server.fail_next(Fault(status=503, delay=30))
    renewer.send({"profile": profile}, timeout_seconds=60)
    deadline = time.time() + 10
    while time.time() < deadline:
        if "lease_owner" in broker.item(profiles, profile):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the renewer never took the lease")

    # When it is killed, and another container asks
    os.kill(renewer.process.pid, signal.SIGKILL)
    renewer.process.wait()
    result = successor.invoke({"profile": profile}, timeout_seconds=30)

    # Then the other takes over once the lease lapses, and gets a token
    assert "access_token" in result["answer"], result["answer"]
    assert len(auth_server.token_requests()) == 1  # the hung request never finished: one answered


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
    # 503 with retry_after
    answers = [result["answer"] for result in results]
    assert {answer["error"] for answer in answers} == {"upstream_unavailable"}, answers
    assert min(answer["retry_after"] for answer in answers) >= 1
    assert auth_server.arrived <= 4
    assert auth_server.peak_in_flight == 1
