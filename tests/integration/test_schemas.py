"""The contract as JSON Schemas (docs/schemas/), for callers in other languages: checked against
the real handler's answers, and the request schema against the broker's own parser."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import assume, given, settings
from jsonschema import Draft202012Validator

from broker.errors import InvalidRequest
from broker.token_request import parse_request
from devstack.local.authserver import Fault, LocalAuthorizationServer
from devstack.template import ROOT
from tests.conftest import Broker, Profiles, http_event
from tests.integration.test_hostile_input import json_values, near_requests

SCHEMAS = {
    name: Draft202012Validator(json.loads((ROOT / "docs/schemas" / f"{name}.schema.json").read_text()))
    for name in ("token-request", "token-answer", "error-answer")
}


@pytest.mark.parametrize("name", SCHEMAS)
def test_each_schema_is_a_valid_draft_2020_12_schema(name: str) -> None:
    Draft202012Validator.check_schema(SCHEMAS[name].schema)


def assert_valid(name: str, document: Any) -> None:
    errors = [error.message for error in SCHEMAS[name].iter_errors(document)]
    assert errors == [], (name, document)


@pytest.mark.parametrize(
    "binding", [{}, {"token_binding": "dpop"}, {"token_binding": "dpop", "dpop_algorithm": "PS256"}]
)
def test_served_tokens_match_the_answer_schema_on_both_doors(
    broker: Broker, profiles: Profiles, binding: dict[str, str]
) -> None:
    profile = profiles.create(scopes=["orders.read"], **binding)

    direct = broker.invoke({"profile": profile}).answer
    over_http = json.loads(broker.post({"profile": profile}).answer["body"])

    for answer in (direct, over_http):
        assert_valid("token-answer", answer)
        assert not SCHEMAS["error-answer"].is_valid(answer)
    # a DPoP token without its key, or a Bearer token with one, is not an answer
    if "dpop_key" in direct:
        assert not SCHEMAS["token-answer"].is_valid({k: v for k, v in direct.items() if k != "dpop_key"})
    else:
        assert not SCHEMAS["token-answer"].is_valid({**direct, "dpop_key": {"kty": "EC"}})


def test_every_error_the_handler_gives_matches_the_error_schema(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = profiles.create(allowed_scopes=["orders.read"])
    refused = profiles.create()
    profiles.put(refused, {**profiles.document(refused), "client_secret": "not-the-secret"})
    unavailable = profiles.create()
    profiles.put("broken", {"token_url": "not a url"})
    answers = [
        broker.invoke({"profile": "bad profile!"}).answer,
        broker.invoke_unsigned({"profile": good}).answer,
        broker.invoke({"profile": "nobody-here"}).answer,
        broker.invoke({"profile": good, "scopes": ["admin"]}).answer,
        broker.invoke({"profile": refused}).answer,
        broker.invoke({"profile": "broken"}).answer,
    ]
    auth_server.outage = Fault(status=503)
    answers.append(broker.invoke({"profile": unavailable}, timeout_seconds=3).answer)
    auth_server.outage = None
    http_errors = [
        broker.invoke_http(http_event({"profile": good}, path="/other")).answer,
        broker.invoke_http(http_event({"profile": good}, method="GET")).answer,
    ]
    monkeypatch.setattr(broker.app.SERVICE, "get_token", lambda *args: 1 / 0)
    answers.append(broker.invoke({"profile": good}).answer)

    codes = [answer["error"] for answer in answers]
    assert codes == [
        "invalid_request",
        "access_denied",
        "unknown_profile",
        "invalid_scope",
        "upstream_error",
        "profile_misconfigured",
        "upstream_unavailable",
        "internal_error",
    ]
    for answer in answers:
        assert_valid("error-answer", answer)
        assert not SCHEMAS["token-answer"].is_valid(answer)
    bodies = [json.loads(response["body"]) for response in http_errors]
    assert [body["error"] for body in bodies] == ["not_found", "method_not_allowed"]
    for body in bodies:
        assert_valid("error-answer", body)


@settings()  # the suite's profile (tests/conftest.py)
@given(event=json_values | near_requests)
def test_the_request_schema_accepts_exactly_what_the_broker_parses(event: Any) -> None:
    # Two differences of the validator, not of the schema: Python's `$` also matches before a
    # final newline (JSON Schema's ECMA-262 `$` does not), and JSON has no integral float apart
    # from the integer (Python's json gives 5.0 for `5.0`, which the broker refuses).
    assume(not _has_trailing_newline(event))
    assume(not (isinstance(event, dict) and isinstance(event.get("min_ttl"), float)))
    try:
        parse_request(event)
        parsed = True
    except InvalidRequest:
        parsed = False
    assert SCHEMAS["token-request"].is_valid(event) == parsed, event


def _has_trailing_newline(value: Any) -> bool:
    if isinstance(value, str):
        return value.endswith("\n")
    if isinstance(value, dict):
        return any(_has_trailing_newline(item) for item in [*value, *value.values()])
    if isinstance(value, list):
        return any(_has_trailing_newline(item) for item in value)
    return False
