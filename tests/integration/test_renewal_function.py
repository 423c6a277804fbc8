"""Renewals handed to the renewal function (contract promise 13), with the real parts: the broker's
handler invokes `renewal_handler` through the local Lambda Invoke API, which queues the Event
invocation as Lambda does; moto's DynamoDB and the local authorization server behind both."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.local.authserver import Fault, LocalAuthorizationServer
from devstack.local.lambda_api import LocalLambdaApi
from devstack.local.lambda_host import RENEWAL_FUNCTION_ARN
from tests.conftest import Broker, Profiles


@pytest.fixture
def handing_off(broker: Broker, lambda_api: LocalLambdaApi, monkeypatch: pytest.MonkeyPatch) -> Iterator[Broker]:
    """The broker as the template deploys it: renewals ahead of expiry go to the renewal function."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", lambda_api.endpoint_url)
    broker.new_container(RENEWAL_FUNCTION=RENEWAL_FUNCTION_ARN)
    yield broker
    lambda_api.drain()


def test_a_caller_in_the_window_is_answered_from_the_cache_and_the_renewal_runs_in_the_background(
    handing_off: Broker, lambda_api: LocalLambdaApi, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    # Given a cached token inside its refresh-ahead window, and a server that takes a while
    profile = profiles.create()
    cached = handing_off.seed_token(profiles, profile, life_left=200, age=3400)
    auth_server.delay = 1.0

    # When two callers ask
    first = handing_off.invoke({"profile": profile}).answer
    second = handing_off.invoke({"profile": profile}).answer

    # Then both got the cached token, and one renewal was handed to the renewal function
    assert first["access_token"] == second["access_token"] == cached
    (event,) = lambda_api.invocations_of(RENEWAL_FUNCTION_ARN)
    assert set(event) == {"renewal"}
    assert "access_token" not in json.dumps(event)
    # which stored the renewed token for the fleet
    lambda_api.drain()
    handing_off.new_container(RENEWAL_FUNCTION=RENEWAL_FUNCTION_ARN)
    assert handing_off.invoke({"profile": profile}).answer["access_token"] == auth_server.issued[-1]
    assert len(auth_server.token_requests()) == 1


def renewal_function(lambda_client: Any, payload: Any) -> Any:
    """Invokes the renewal function synchronously, as an attacker with invoke rights could."""
    response = lambda_client.invoke(FunctionName=RENEWAL_FUNCTION_ARN, Payload=json.dumps(payload).encode())
    assert "FunctionError" not in response
    return json.loads(response["Payload"].read())


@pytest.mark.parametrize(
    "event",
    [
        {"profile": "PROFILE"},  # a direct request
        {"renewal": {"v": 1, "profile": "PROFILE", "scopes": [], "lease": "0" * 32}},  # no lease it holds
    ],
    ids=["a-direct-request", "a-lease-nobody-holds"],
)
def test_an_event_that_names_no_held_lease_gets_nothing_and_renews_nothing(
    broker: Broker,
    lambda_api: LocalLambdaApi,
    lambda_client: Any,
    profiles: Profiles,
    auth_server: LocalAuthorizationServer,
    event: dict[str, Any],
) -> None:
    profile = profiles.create()
    broker.seed_token(profiles, profile, life_left=200, age=3400)
    before = broker.item(profiles, profile)

    answer = renewal_function(lambda_client, json.loads(json.dumps(event).replace("PROFILE", profile)))

    assert answer is None
    assert auth_server.token_requests() == []
    assert broker.item(profiles, profile) == before


@pytest.mark.parametrize(
    ("refusal", "function"),
    [
        ((429, "TooManyRequestsException"), RENEWAL_FUNCTION_ARN),
        ((403, "AccessDeniedException"), RENEWAL_FUNCTION_ARN),
        (None, RENEWAL_FUNCTION_ARN.replace("token-broker-renewal", "token-broker-deleted")),
    ],
    ids=["throttled", "refused", "missing"],
)
def test_when_lambda_does_not_take_the_renewal_one_request_renews_with_a_bounded_try_and_nobody_stampedes(
    broker: Broker,
    lambda_api: LocalLambdaApi,
    profiles: Profiles,
    auth_server: LocalAuthorizationServer,
    monkeypatch: pytest.MonkeyPatch,
    refusal: tuple[int, str] | None,
    function: str,
) -> None:
    # Given a token in its refresh-ahead window, and a renewal function Lambda will not run
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", lambda_api.endpoint_url)
    broker.new_container(RENEWAL_FUNCTION=function)
    lambda_api.event_refusal = refusal
    profile = profiles.create()
    # deep in the window: the try's budget (4 s) leaves room for a loaded machine
    cached = broker.seed_token(profiles, profile, life_left=90, age=3510)

    # When callers ask, one after another
    answers = [broker.invoke({"profile": profile}).answer for _ in range(4)]

    # Then the first renewed the key itself with one try, and the others got what it stored
    assert all("access_token" in answer for answer in answers), answers
    assert answers[0]["access_token"] != cached
    assert {answer["access_token"] for answer in answers} == {auth_server.issued[-1]}
    assert len(auth_server.token_requests()) == 1
    assert lambda_api.invocations_of(RENEWAL_FUNCTION_ARN) == []  # nothing ran there


def test_when_lambda_does_not_take_the_renewal_and_the_server_is_down_the_fleet_is_served_from_the_cache(
    broker: Broker,
    lambda_api: LocalLambdaApi,
    profiles: Profiles,
    auth_server: LocalAuthorizationServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", lambda_api.endpoint_url)
    broker.new_container(RENEWAL_FUNCTION=RENEWAL_FUNCTION_ARN)
    lambda_api.event_refusal = (429, "TooManyRequestsException")
    profile = profiles.create()
    cached = broker.seed_token(profiles, profile, life_left=200, age=3400)
    auth_server.outage = Fault(status=503)

    answers = [broker.invoke({"profile": profile}).answer for _ in range(4)]

    # never below the min TTL, never an error while the cached token serves, one try in all
    assert [answer["access_token"] for answer in answers] == [cached] * 4
    assert all(answer["expires_in"] >= 60 for answer in answers)
    assert len(auth_server.token_requests()) == 1
