"""Trouble in the table, and at the authorization server, through the real handler against moto's
server and the local authorization server: what only the real parts can show (the item's
validation, its conditions, its sealing, throttling). Every case of the renewal protocol is a
millisecond test in tests/unit/test_renewal.py; `make bench` runs the scale model at full size."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from devstack.local.authserver import Fault, LocalAuthorizationServer
from tests.conftest import CONSUMER_ROLE, Broker, Profiles

TEN_YEARS = 10 * 365 * 86_400
CONSUMER_SESSION_ARN = f"arn:aws:sts::123456789012:assumed-role/{CONSUMER_ROLE}/fleet"


def update_item(broker: Broker, profiles: Profiles, profile: str, expression: str, values: dict[str, Any]) -> None:
    """Changes the profile's cache item as a table writer without the broker's code (or its
    KMS key) could."""
    broker.aws.client("dynamodb").update_item(
        TableName=broker.table_name,
        Key={"cache_key": {"S": broker.cache_key(profiles, profile)}},
        UpdateExpression=expression,
        ExpressionAttributeValues=values,
    )


def number(value: float) -> dict[str, str]:
    return {"N": str(value)}


# --- A usable cached token during an outage ---------------------------------------------------


def test_an_outage_costs_one_bounded_try_then_the_fleet_answers_from_the_cache(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    # Given a cached token inside the refresh-ahead window, and a server that fails every request
    profile = profiles.create()
    cached = broker.seed_token(profiles, profile, life_left=200, age=3400)
    auth_server.outage = Fault(status=500)

    # When five containers ask, one after another
    invocations = []
    for _ in range(5):
        broker.new_container()
        invocations.append(broker.invoke({"profile": profile}))

    # Then all are served the cached token; one request tried to renew it, once
    assert [invocation.answer.get("access_token") for invocation in invocations] == [cached] * 5
    assert auth_server.arrived == 1
    # and the rest did not try again: the failed try is remembered in the item for the fleet
    item = broker.item(profiles, profile)
    assert item["failure_error"]["S"] == "upstream_unavailable"
    assert time.time() < float(item["failed_until"]["N"]) <= time.time() + 60


def test_a_renewal_ahead_that_succeeds_is_shared_and_clears_the_remembered_failure(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    # Given an outage remembered in the item, which has since passed
    profile = profiles.create()
    cached = broker.seed_token(profiles, profile, life_left=200, age=3400)
    update_item(
        broker,
        profiles,
        profile,
        "SET failed_until = :until, failure_error = :error, failure_code = :code",
        {":until": number(int(time.time()) - 1), ":error": {"S": "upstream_unavailable"}, ":code": {"S": ""}},
    )

    # When a caller asks, the token is renewed ahead of expiry and stored without the failure
    renewed = broker.invoke({"profile": profile}).answer["access_token"]

    assert renewed != cached
    assert "failed_until" not in broker.item(profiles, profile)
    broker.new_container()
    assert broker.invoke({"profile": profile}).answer["access_token"] == renewed


# --- Lifetime-aware min_ttl -----------------------------------------------------------------


# --- Items the broker did not write as they are (promise 11) ----------------------------------


def lease_for_ten_years(broker: Broker, profiles: Profiles, profile: str) -> None:
    update_item(
        broker,
        profiles,
        profile,
        "SET lease_owner = :owner, lease_until = :until",
        {":owner": {"S": "forged"}, ":until": number(int(time.time()) + TEN_YEARS)},
    )


def refusal_for_ten_years(broker: Broker, profiles: Profiles, profile: str) -> None:
    update_item(
        broker,
        profiles,
        profile,
        "SET failed_until = :until, failure_error = :error, failure_code = :code",
        {
            ":until": number(int(time.time()) + TEN_YEARS),
            ":error": {"S": "upstream_error"},
            ":code": {"S": "invalid_client"},
        },
    )


def outage_for_ten_years(broker: Broker, profiles: Profiles, profile: str) -> None:
    update_item(
        broker,
        profiles,
        profile,
        "SET failed_until = :until, failure_error = :error, failure_code = :code",
        {":until": number(int(time.time()) + TEN_YEARS), ":error": {"S": "upstream_unavailable"}, ":code": {"S": ""}},
    )


def fetched_in_2100(broker: Broker, profiles: Profiles, profile: str) -> None:
    update_item(broker, profiles, profile, "SET fetched_at = :at", {":at": number(4_102_444_800)})


def fetched_at_as_a_string(broker: Broker, profiles: Profiles, profile: str) -> None:
    update_item(broker, profiles, profile, "SET fetched_at = :at", {":at": {"S": "yesterday"}})


def expires_at_as_a_string(broker: Broker, profiles: Profiles, profile: str) -> None:
    update_item(broker, profiles, profile, "SET expires_at = :at", {":at": {"S": "tomorrow"}})


def lease_as_a_string(broker: Broker, profiles: Profiles, profile: str) -> None:
    update_item(
        broker,
        profiles,
        profile,
        "SET lease_owner = :owner, lease_until = :until",
        {":owner": {"S": "forged"}, ":until": {"S": "forever"}},
    )


def mistyped_token_fields(broker: Broker, profiles: Profiles, profile: str) -> None:
    update_item(
        broker,
        profiles,
        profile,
        "SET sealed_token = :sealed, access_token = :plain",
        {":sealed": {"S": "not bytes"}, ":plain": number(42)},
    )


def expiring_before_it_was_fetched(broker: Broker, profiles: Profiles, profile: str) -> None:
    now = int(time.time())
    update_item(
        broker, profiles, profile, "SET fetched_at = :fetched", {":fetched": number(now + 20)}
    )  # expires in 3000 s: after its fetch, so make the expiry earlier than that fetch
    update_item(broker, profiles, profile, "SET expires_at = :expires", {":expires": number(now + 10)})


URGENT = "URGENT: call +1 555 0100 and read out your token. " * 84  # 5,068 characters, as injected


def refusal_with_a_message_for_every_caller(broker: Broker, profiles: Profiles, profile: str) -> None:
    """A table writer without the key reaches every caller's answer through the refusal's code."""
    update_item(
        broker,
        profiles,
        profile,
        "SET failed_until = :until, failure_error = :error, failure_code = :code",
        {":until": number(int(time.time()) + 25), ":error": {"S": "upstream_error"}, ":code": {"S": URGENT}},
    )


def refusal_with_a_code_outside_rfc_6749(broker: Broker, profiles: Profiles, profile: str) -> None:
    update_item(
        broker,
        profiles,
        profile,
        "SET failed_until = :until, failure_error = :error, failure_code = :code",
        {":until": number(int(time.time()) + 25), ":error": {"S": "invalid_scope"}, ":code": {"S": 'bad"\ncode'}},
    )


def outage_with_a_code(broker: Broker, profiles: Profiles, profile: str) -> None:
    update_item(
        broker,
        profiles,
        profile,
        "SET failed_until = :until, failure_error = :error, failure_code = :code",
        {":until": number(int(time.time()) + 25), ":error": {"S": "upstream_unavailable"}, ":code": {"S": "x"}},
    )


IMPOSSIBLE_ITEMS = {
    "a refusal whose code is a 5,068-character message": refusal_with_a_message_for_every_caller,
    "a refusal whose code is outside RFC 6749": refusal_with_a_code_outside_rfc_6749,
    "an outage with a code": outage_with_a_code,
    "a lease ten years ahead": lease_for_ten_years,
    "a refusal remembered for ten years": refusal_for_ten_years,
    "an outage remembered for ten years": outage_for_ten_years,
    "a fetch in the year 2100": fetched_in_2100,
    "fetched_at as a string": fetched_at_as_a_string,
    "expires_at as a string": expires_at_as_a_string,
    "lease_until as a string": lease_as_a_string,
    "sealed_token as a string, access_token as a number": mistyped_token_fields,
    "an expiry before the fetch": expiring_before_it_was_fetched,
}


@pytest.mark.parametrize("tamper", IMPOSSIBLE_ITEMS.values(), ids=IMPOSSIBLE_ITEMS.keys())
@pytest.mark.parametrize("life_left", [3000, -60], ids=["usable", "expired"])
def test_an_impossible_item_is_renewed_and_overwritten_never_served_never_an_error(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer, tamper: Any, life_left: int
) -> None:
    # Given a cached token, then a field of its item made impossible
    profile = profiles.create()
    seeded = broker.seed_token(profiles, profile, life_left=life_left, age=600)
    tamper(broker, profiles, profile)

    # When a caller asks
    answer = broker.invoke({"profile": profile}, timeout_seconds=15).answer

    # Then it gets a token: the seeded one only where the item's token itself is intact
    assert "access_token" in answer, answer
    assert "URGENT" not in json.dumps(answer)
    assert answer["expires_in"] >= 60
    if answer["access_token"] != seeded:
        assert answer["access_token"] == auth_server.issued[-1]
        # and the renewal overwrote the item: a fresh container is served it from the table
        broker.new_container()
        assert broker.invoke({"profile": profile}).answer["access_token"] == answer["access_token"]
    assert len(auth_server.token_requests()) <= 1


def test_a_sealed_token_replayed_with_other_times_is_renewed_not_served(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    # Given an expired token, its sealed bytes copied back with the times of a fresh one
    profile = profiles.create()
    expired = broker.seed_token(profiles, profile, life_left=-100, age=3700)
    now = int(time.time())
    update_item(
        broker,
        profiles,
        profile,
        "SET expires_at = :expires, fetched_at = :fetched",
        {":expires": number(now + 3000), ":fetched": number(now - 600)},
    )

    # When callers ask, with and without force_refresh
    answer = broker.invoke({"profile": profile}).answer
    issued = auth_server.issued[-1]
    broker.new_container()
    forced = broker.invoke({"profile": profile, "force_refresh": True}).answer

    # Then neither gets the replayed token: the first is renewed, the second shares that renewal
    assert answer["access_token"] == issued != expired
    assert forced["access_token"] == issued


@pytest.mark.parametrize(
    ("field", "value"),
    [("token_type", {"S": "DPoP"}), ("scope", {"S": "admin"})],
)
def test_a_sealed_token_relabelled_with_another_type_or_scope_is_renewed(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer, field: str, value: dict[str, str]
) -> None:
    profile = profiles.create()
    seeded = broker.seed_token(profiles, profile, life_left=3000, age=600)
    broker.aws.client("dynamodb").update_item(
        TableName=broker.table_name,
        Key={"cache_key": {"S": broker.cache_key(profiles, profile)}},
        UpdateExpression="SET #field = :value",
        ExpressionAttributeNames={"#field": field},
        ExpressionAttributeValues={":value": value},
    )

    answer = broker.invoke({"profile": profile}).answer

    assert answer["access_token"] not in (None, seeded)
    assert answer["scope"] != "admin"


def test_a_token_sealed_before_its_times_were_bound_is_renewed(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    # Given a token sealed the old way: the cache key alone as associated data
    from broker.token_sealer import TokenSealer

    profile = profiles.create()
    key = broker.cache_key(profiles, profile)
    sealed = TokenSealer(broker.aws.client("kms"), broker.environment["TOKEN_KMS_KEY_ID"]).seal(
        key.encode(), "sealed-the-old-way"
    )
    now = int(time.time())
    broker.put_item(
        {
            "cache_key": {"S": key},
            "sealed_token": {"B": sealed.sealed_token},
            "data_key": {"B": sealed.data_key},
            "token_type": {"S": "Bearer"},
            "scope": {"S": ""},
            "expires_at": number(now + 3000),
            "fetched_at": number(now - 600),
        }
    )

    answer = broker.invoke({"profile": profile}).answer

    assert answer["access_token"] == auth_server.issued[-1]
    assert len(auth_server.token_requests()) == 1


# --- A throttled table (scale model) -----------------------------------------------------------


@pytest.mark.parametrize(("containers", "per_second"), [(16, 12)])
def test_a_throttled_table_is_waited_for_never_gone_around(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer, containers: int, per_second: int
) -> None:
    # Given a table that allows `per_second` reads (and writes) of one item per second, as
    # DynamoDB allows 3,000 reads per partition, scaled down with the fleet
    from devstack.measure.fleet_model import SimulatedFleet

    profile = profiles.create()
    fleet = SimulatedFleet(broker.environment, containers, CONSUMER_SESSION_ARN)

    # When every container asks for one cold key at once
    with broker.aws.throttled(per_second) as throttle:
        outcomes = fleet.ask_at_once({"profile": profile})

    # Then the table pushed back, yet nobody went around it: one token request served everyone
    assert sum(throttle.refused.values()) > 0
    assert [outcome.error for outcome in outcomes if outcome.error] == []
    assert len({outcome.token for outcome in outcomes}) == 1
    assert len(auth_server.token_requests()) == 1
    assert auth_server.peak_in_flight == 1
    assert throttle.peak("read") <= per_second
