"""Every error of the contract's table that a direct invocation can reach, through the real handler."""

from __future__ import annotations

import json
import logging

import pytest

from devstack.local.authserver import Fault, LocalAuthorizationServer
from tests.conftest import Broker, Profiles


def assert_error(answer: dict[str, object], error: str, status: int) -> None:
    assert answer["error"] == error, answer
    assert answer["status"] == status
    assert isinstance(answer["error_description"], str)
    assert answer["error_description"]
    assert "access_token" not in answer


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ("okta-default", "object"),
        ([], "object"),
        ({}, "profile"),
        ({"profile": "bad profile!"}, "profile"),
        ({"profile": "p", "scopes": "customScope"}, "scopes"),
        ({"profile": "p", "scopes": ["has space"]}, "scopes"),
        ({"profile": "p", "scopes": ["s"] * 51}, "scopes"),
        ({"profile": "p", "min_ttl": "60"}, "min_ttl"),
        ({"profile": "p", "min_ttl": True}, "min_ttl"),
        ({"profile": "p", "min_ttl": 86401}, "min_ttl"),
        ({"profile": "p", "force_refresh": "yes"}, "force_refresh"),
        ({"profile": "p", "audience": "x"}, "audience"),
    ],
)
def test_a_bad_request_is_invalid_request_naming_the_field(
    broker: Broker, auth_server: LocalAuthorizationServer, event: object, field: str
) -> None:
    answer = broker.invoke(event).answer

    assert_error(answer, "invalid_request", 400)
    assert field in answer["error_description"]
    assert auth_server.token_requests() == []


def test_a_scope_outside_allowed_scopes_is_invalid_scope_without_a_token_request(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create(allowed_scopes=["orders.read"])

    answer = broker.invoke({"profile": profile, "scopes": ["orders.read", "admin"]}).answer

    assert_error(answer, "invalid_scope", 400)
    assert auth_server.token_requests() == []


def test_a_scope_the_server_refuses_is_invalid_scope(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create()

    answer = broker.invoke({"profile": profile, "scopes": ["not-supported"]}).answer

    assert_error(answer, "invalid_scope", 400)
    assert answer["upstream_error"] == "invalid_scope"


def test_a_profile_without_a_secret_is_unknown_profile(broker: Broker, auth_server: LocalAuthorizationServer) -> None:
    answer = broker.invoke({"profile": "nobody-here"}).answer

    assert_error(answer, "unknown_profile", 404)
    assert auth_server.token_requests() == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"token_url": "http://idp.example.com/token"}, "token_url"),
        ({"token_url": "ftp://127.0.0.1/token"}, "token_url"),
        ({"client_id": None}, "client_id"),
        ({"client_secret": None}, "client_secret"),
        ({"auth_method": "client_secret_jwt"}, "auth_method"),
        ({"scopes": "customScope"}, "scopes"),
        ({"token_params": {"grant_type": "password"}}, "token_params"),
        ({"allowed_callers": "arn:aws:iam::123456789012:role/x"}, "allowed_callers"),
        ({"allowed_callers": None}, "allowed_callers"),
        ({"allowed_callers": ["arn:aws:iam::*:role/billing-*"]}, "allowed_callers"),
        ({"allowed_callers": ["arn:*:iam::123456789012:role/billing"]}, "allowed_callers"),
        ({"allowed_callers": ["arn:aws:iam::123456789012:role/team-a/*"]}, "allowed_callers"),
        ({"allowed_callers": ["arn:aws:iam::123456789012:role/*/billing"]}, "allowed_callers"),
        ({"allowed_callers": ["arn:aws:iam::123456789012:role/bill*ing"]}, "allowed_callers"),
        ({"allowed_callers": ["arn:aws:iam::123456789012:role/billing**"]}, "allowed_callers"),
        ({"allowed_callers": ["arn:aws:sts::123456789012:assumed-role/billing/session"]}, "allowed_callers"),
        ({"allowed_callers": ["*"]}, "allowed_callers"),
        ({"client_sekret": "typo"}, "client_sekret"),
    ],
)
def test_a_bad_secret_is_profile_misconfigured_the_log_naming_the_field_not_the_value(
    broker: Broker,
    profiles: Profiles,
    auth_server: LocalAuthorizationServer,
    broker_log: list[logging.LogRecord],
    change: dict[str, object],
    field: str,
) -> None:
    profile = profiles.create()
    document = {k: v for k, v in {**profiles.document(profile), **change}.items() if v is not None}
    profiles.put(profile, document)

    answer = broker.invoke({"profile": profile}).answer

    # the answer names no field: no caller learns what a profile holds
    assert_error(answer, "profile_misconfigured", 500)
    assert field not in answer["error_description"]
    # the operator's log names the field, never its value
    (logged,) = [record for record in broker_log if record.getMessage() == "profile misconfigured"]
    problem = str(getattr(logged, "problem", ""))
    assert field in problem
    for value in change.values():
        if isinstance(value, str) and value not in field:
            assert value not in problem
    assert auth_server.token_requests() == []


@pytest.mark.parametrize(
    "change",
    [{"refresh_token": "x"}, {"token_url": "http://idp.example.com/token"}, {"client_secret": None}],
    ids=["unknown-field", "bad-url", "no-secret"],
)
def test_a_caller_a_misconfigured_profile_does_not_admit_learns_nothing_of_it(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer, change: dict[str, object]
) -> None:
    # Given a misconfigured profile whose allowed_callers admit another role
    profile = profiles.create(allowed_callers=["arn:aws:iam::123456789012:role/hr-*"])
    document = {k: v for k, v in {**profiles.document(profile), **change}.items() if v is not None}
    profiles.put(profile, document)

    # When the consumer, whom it does not admit, asks for it
    answer = broker.invoke({"profile": profile}).answer

    # Then it hears only that it may not, as for a well-formed profile
    assert_error(answer, "access_denied", 403)
    assert auth_server.token_requests() == []


@pytest.mark.parametrize("secret_string", ["not json", "[1, 2]", json.dumps("a string")])
def test_a_secret_that_is_not_a_json_object_is_profile_misconfigured(
    broker: Broker, profiles: Profiles, secret_string: str
) -> None:
    profile = profiles.create()
    profiles.put(profile, secret_string)

    assert_error(broker.invoke({"profile": profile}).answer, "profile_misconfigured", 500)


def test_a_wrong_client_secret_is_upstream_error_invalid_client(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create()
    profiles.put(profile, {**profiles.document(profile), "client_secret": "wrong-secret-value"})

    answer = broker.invoke({"profile": profile}).answer

    assert_error(answer, "upstream_error", 502)
    assert answer["upstream_error"] == "invalid_client"


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=200, body="<html>hello</html>", content_type="text/html"),
        Fault(status=200, body='{"token_type": "Bearer", "expires_in": 3600}'),
        Fault(status=200, body='{"access_token": 42, "expires_in": 3600}'),
        Fault(status=200, body='{"access_token": "abc", "expires_in": -5}'),
        Fault(status=200, body='{"access_token": "abc", "token_type": "DPoP", "expires_in": 60}'),
        Fault(status=404, body="not found", content_type="text/plain"),
        Fault(status=302, body="", headers={"Location": "https://elsewhere.example.com"}),
    ],
)
def test_an_answer_that_is_not_a_token_response_is_upstream_error(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer, fault: Fault
) -> None:
    profile = profiles.create()
    auth_server.fail_next(fault)

    answer = broker.invoke({"profile": profile}).answer

    assert_error(answer, "upstream_error", 502)
    assert len(auth_server.token_requests()) == 1


@pytest.mark.parametrize(
    "token",
    ["\\ud800lone-surrogate", "line\\nbreak", "caf\\u00e9"],
    ids=["lone-surrogate", "control-character", "non-ascii"],
)
def test_a_token_that_cannot_be_stored_or_served_is_upstream_error_and_frees_the_lease(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer, token: str
) -> None:
    # Given a server whose next token is not RFC 6749 text (JSON escapes, as a server sends them)
    profile = profiles.create()
    auth_server.fail_next(
        Fault(status=200, body=f'{{"access_token": "{token}", "token_type": "Bearer", "expires_in": 3600}}')
    )

    # When a caller asks, it hears that the server answered with something that is not a token
    assert_error(broker.invoke({"profile": profile}).answer, "upstream_error", 502)

    # Then the renewal lease is free, so the next caller is not held back by it
    assert "lease_owner" not in broker.item(profiles, profile)
    assert broker.invoke({"profile": profile}).answer["access_token"] == auth_server.issued[-1]
    assert len(auth_server.token_requests()) == 2


def test_an_unavailable_server_is_upstream_unavailable_with_retry_after(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create()
    auth_server.fail_next(*[Fault(status=503, headers={"Retry-After": "30"})] * 2)

    answer = broker.invoke({"profile": profile}, timeout_seconds=5).answer

    assert_error(answer, "upstream_unavailable", 503)
    assert answer["retry_after"] == 30
    assert len(auth_server.token_requests()) == 1  # 30 s is past the deadline: no pointless wait


def test_an_unexpected_failure_is_internal_error_without_internals(broker: Broker, profiles: Profiles) -> None:
    profile = profiles.create()
    broker.app.SERVICE = None  # anything that breaks inside

    answer = broker.invoke({"profile": profile}).answer

    assert answer == {"error": "internal_error", "error_description": "the broker failed unexpectedly", "status": 500}


@pytest.mark.slow
def test_a_server_trickling_its_answer_is_abandoned_at_the_deadline(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create()
    token = '{"access_token": "trickled-token", "token_type": "Bearer", "expires_in": 3600}'
    # every socket read succeeds, and the whole answer would take 16 s: a token, had it been waited for
    auth_server.fail_next(*[Fault(status=200, body=token, trickle=0.2)] * 4)

    invocation = broker.invoke({"profile": profile}, timeout_seconds=4)

    assert_error(invocation.answer, "upstream_unavailable", 503)
    assert invocation.answer["retry_after"] >= 1
