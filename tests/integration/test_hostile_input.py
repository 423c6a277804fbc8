"""Hostile input, generated: the handler never raises, answers malformed input with a 400,
and its memory stays bounded."""

from __future__ import annotations

import base64
import copy
import json
import random
import time
import tracemalloc
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.errors import InvalidRequest
from broker.token_request import parse_request
from devstack.local.lambda_host import invoke
from tests.conftest import EVENTS, Broker, Profiles, http_event, log_records_off

FUZZ = settings()  # the suite's profile (tests/conftest.py)
SAMPLE_HTTP_EVENT = json.loads((EVENTS / "http_token_request.json").read_text())
# what API Gateway names for the consumer's sessions, claimed here without its signature
CONSUMER_SESSION = "arn:aws:sts::123456789012:assumed-role/orders-consumer/orders-fn"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=300),
    lambda children: st.lists(children, max_size=8) | st.dictionaries(st.text(max_size=20), children, max_size=8),
    max_leaves=40,
)
field_values = json_values | st.text(min_size=200, max_size=5000) | st.integers(-(2**70), 2**70)
near_requests = st.fixed_dictionaries(
    {},
    optional={
        "profile": field_values | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,140}", fullmatch=True),
        "scopes": field_values | st.lists(st.text(max_size=250), max_size=60),
        "min_ttl": field_values | st.integers(-10, 100_000),
        "force_refresh": field_values,
        "version": st.just("2.0"),
    },
)


def deeply_nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"profile": value} if depth % 2 else [value]
    return value


def expected_status(event: Any) -> int:
    try:
        parse_request(event)
    except InvalidRequest:
        return 400
    return 404  # a well-formed request for a profile that does not exist


@FUZZ
@given(event=json_values | near_requests)
def test_any_direct_event_is_answered_never_raised(broker: Broker, event: Any) -> None:
    answer = broker.invoke(event).answer

    assert answer["status"] == expected_status(event), answer
    assert answer["error"] in {"invalid_request", "unknown_profile"}


@FUZZ
@given(
    body=st.binary(max_size=2000) | json_values.map(json.dumps) | near_requests.map(json.dumps),
    as_base64=st.booleans(),
    method=st.sampled_from(["POST", "GET", "post", "DELETE", ""]),
    path=st.sampled_from(["/token", "/token/", "/", "/other", "/TOKEN"]),
)
def test_any_http_body_is_answered_with_no_store_never_raised(
    broker: Broker, body: Any, as_base64: bool, method: str, path: str
) -> None:
    event = copy.deepcopy(SAMPLE_HTTP_EVENT)
    raw = body if isinstance(body, bytes) else body.encode()
    event["body"] = base64.b64encode(raw).decode() if as_base64 else raw.decode("utf-8", "replace")
    event["isBase64Encoded"] = as_base64
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method

    response = broker.invoke_http(event).answer

    assert response["headers"]["Cache-Control"] == "no-store"
    assert 400 <= response["statusCode"] < 500, response
    assert "error" in json.loads(response["body"])


@FUZZ
@given(context=json_values)
def test_any_request_context_is_answered_never_raised(broker: Broker, context: Any) -> None:
    event = {**copy.deepcopy(SAMPLE_HTTP_EVENT), "requestContext": context}

    answer = broker.invoke_http(event).answer

    assert 400 <= answer["statusCode"] < 500
    assert broker.invoke(event).answer["error"] == "invalid_request"  # never an HTTP request when direct


near_proofs = st.fixed_dictionaries(
    {},
    optional={
        "v": st.sampled_from([1, 2, "1", True, 1.0]) | json_values,
        "credential": json_values
        | st.from_regex(r"[A-Z0-9]{12,20}/2026\d{4}/(us-east-1|eu-west-1)/(sts|iam)/aws4_request", fullmatch=True),
        "amz_date": json_values | st.from_regex(r"20\d{6}T\d{6}Z", fullmatch=True),
        "signed_headers": json_values
        | st.sampled_from(["content-type;host;x-amz-date;x-amz-security-token;x-token-broker-audience", "host"]),
        "signature": json_values | st.from_regex(r"[0-9a-fA-F]{60,66}", fullmatch=True),
        "security_token": json_values | st.text(alphabet="AZaz09+/=\r\n: ", min_size=16, max_size=64),
        "role_arn": st.just("arn:aws:iam::123456789012:role/admin"),
    },
)


@FUZZ
@given(proof=json_values | near_proofs)
def test_any_caller_proof_but_a_genuine_one_is_access_denied(broker: Broker, proof: Any) -> None:
    answer = broker.invoke({"profile": "okta-default", "caller_proof": proof}).answer

    assert (answer["error"], answer["status"]) == ("access_denied", 403), answer


@FUZZ
@given(proof=json_values | near_proofs, gateway_caller=st.none() | st.sampled_from([CONSUMER_SESSION, "x"]))
def test_any_caller_proof_in_an_http_body_but_a_genuine_one_is_access_denied(
    broker: Broker, proof: Any, gateway_caller: str | None
) -> None:
    event = http_event({"profile": "okta-default", "caller_proof": proof}, gateway_caller=gateway_caller)

    response = broker.invoke_http(event).answer

    assert (response["statusCode"], json.loads(response["body"])["error"]) == (403, "access_denied"), response


def test_deep_nesting_and_huge_values_are_400(broker: Broker) -> None:
    for event in (
        deeply_nested(5000),
        {"profile": "p" * 1_000_000},
        {"profile": "p", "scopes": ["s"] * 100_000},
        {"profile": "p", "min_ttl": 10**400},
        {"\u202e" * 1000: "x"},
    ):
        assert broker.invoke(event).answer["status"] == 400


def test_memory_stays_bounded_under_junk(broker: Broker) -> None:
    junk = random.Random(7)  # noqa: S311 - reproducible junk, not secrets
    events = [
        {"profile": "".join(junk.choice("ab!é\x00 ") for _ in range(junk.randint(0, 400))), "x": junk.random()}
        for _ in range(200)
    ]
    with log_records_off():
        for event in events:  # warm up caches and lazy imports
            invoke(broker.app, event)
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for _ in range(10):
            for event in events:
                invoke(broker.app, event)
        growth = sum(stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(before, "filename"))
        tracemalloc.stop()
    assert growth < 1_000_000, f"{growth} bytes retained after 2000 junk invocations"


# Every attribute of a cache item that says something about its token: a table writer without the
# broker's KMS key may set any of them to anything.
TOKEN_FIELDS = ("access_token", "sealed_token", "data_key", "token_type", "scope", "expires_at", "fetched_at", "ttl")
BOUND_FIELDS = ("sealed_token", "data_key", "token_type", "scope", "expires_at", "fetched_at")
# times around now: the plausible ones, which a forger would choose
times_around_now = st.builds(
    lambda offset: {"N": f"NOW{offset:+d}"},
    st.sampled_from([-100_000, -3_600, -600, -61, 0, 61, 600, 3_000, 3_600, 100_000]) | st.integers(-(10**5), 10**5),
)
other_values = st.one_of(
    st.builds(lambda text: {"S": text}, st.text(max_size=40)),
    st.builds(lambda number: {"N": str(number)}, st.integers(-(10**12), 10**12)),
    st.builds(lambda data: {"B": data}, st.binary(max_size=64)),
    st.builds(lambda flag: {"BOOL": flag}, st.booleans()),
    st.just({"NULL": True}),
)
# per field: keep the broker's own value, drop the attribute, or write another value
item_changes = st.dictionaries(
    st.sampled_from(TOKEN_FIELDS), st.none() | times_around_now | other_values, min_size=1, max_size=2
)


@pytest.fixture
def sealed_item(broker: Broker, profiles: Profiles) -> tuple[str, str, dict[str, Any]]:
    """A profile, its cached token with 3000 s to go, and that token's item as the broker wrote it
    (made once per test: hypothesis runs every example against the same fixtures)."""
    profile = profiles.create()
    seeded = broker.seed_token(profiles, profile, life_left=3000, age=600)
    return profile, seeded, broker.item(profiles, profile)


@settings(max_examples=settings.default.max_examples * 2 // 5)  # each example renews a token: 120 in full
@given(changes=item_changes)
def test_any_cache_item_is_served_only_as_the_broker_sealed_it_and_never_an_error(
    broker: Broker, sealed_item: tuple[str, str, dict[str, Any]], changes: dict[str, dict[str, Any] | None]
) -> None:
    # Given the broker's own item for a usable token, then some of its fields changed
    profile, seeded, original = sealed_item
    item = dict(original)
    now = int(time.time())
    for name, value in changes.items():
        if value is None:
            item.pop(name, None)
        elif value.get("N", "").startswith("NOW"):
            item[name] = {"N": str(now + int(value["N"][3:]))}
        else:
            item[name] = value
    broker.put_item(item)
    broker.new_container()

    # When a caller asks
    answer = broker.invoke({"profile": profile}).answer

    # Then it gets a token with the life it needs; the cached one only if every bound field is
    # the broker's own
    assert "access_token" in answer, answer
    assert answer["expires_in"] >= 60
    if answer["access_token"] == seeded:
        assert all(item.get(name) == original.get(name) for name in BOUND_FIELDS), item
