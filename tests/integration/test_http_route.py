"""POST /token through the real handler, with API Gateway HTTP API (payload 2.0) events."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from devstack.authserver import Fault, LocalAuthorizationServer
from tests.conftest import EVENTS, Broker, Profiles

BILLING_SESSION = "arn:aws:sts::123456789012:assumed-role/billing-worker/billing-worker-fn"
ADMITS_BILLING = ["arn:aws:iam::123456789012:role/billing-*"]


def http_event(body: Any = None, caller: str | None = BILLING_SESSION, **changes: Any) -> dict[str, Any]:
    """The sample event from tests/events, with another body, caller, path or method."""
    event: dict[str, Any] = copy.deepcopy(json.loads((EVENTS / "http_token_request.json").read_text()))
    if body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
    if caller is None:
        del event["requestContext"]["authorizer"]
    else:
        event["requestContext"]["authorizer"]["iam"]["userArn"] = caller
    if "path" in changes:
        event["rawPath"] = event["requestContext"]["http"]["path"] = changes["path"]
    if "method" in changes:
        event["requestContext"]["http"]["method"] = changes["method"]
    if "isBase64Encoded" in changes:
        event["isBase64Encoded"] = changes["isBase64Encoded"]
    return event


def assert_no_store(response: dict[str, Any]) -> None:
    assert response["headers"]["Cache-Control"] == "no-store"
    assert response["headers"]["Pragma"] == "no-cache"
    assert response["headers"]["Content-Type"] == "application/json"


def test_an_admitted_assumed_role_caller_gets_a_token(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create(allowed_callers=ADMITS_BILLING)

    response = broker.invoke_http(http_event({"profile": profile})).answer

    assert response["statusCode"] == 200
    assert_no_store(response)
    body = json.loads(response["body"])
    assert body["access_token"] == auth_server.issued[-1]
    assert set(body) == {"access_token", "token_type", "expires_in", "expires_at", "scope"}


def test_a_caller_of_another_role_is_denied_without_a_token_request(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create(allowed_callers=ADMITS_BILLING)
    other = "arn:aws:sts::123456789012:assumed-role/reporting/session-1"

    response = broker.invoke_http(http_event({"profile": profile}, caller=other)).answer

    assert response["statusCode"] == 403
    assert_no_store(response)
    assert json.loads(response["body"])["error"] == "access_denied"
    assert auth_server.token_requests() == []


def test_no_iam_identity_is_denied(broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer) -> None:
    profile = profiles.create()

    response = broker.invoke_http(http_event({"profile": profile}, caller=None)).answer

    assert response["statusCode"] == 403
    assert auth_server.token_requests() == []


@pytest.mark.parametrize(
    ("allowed", "caller", "admitted"),
    [
        (["arn:aws:iam::123456789012:user/ci"], "arn:aws:iam::123456789012:user/ci", True),
        (["arn:aws:iam::123456789012:user/ci"], "arn:aws:iam::123456789012:user/ci2", False),
        (["arn:aws:iam::123456789012:role/billing-worker"], BILLING_SESSION, True),
        (["arn:aws:iam::123456789012:role/service/billing-worker"], BILLING_SESSION, True),
        (["arn:aws:iam::999999999999:role/billing-worker"], BILLING_SESSION, False),
        (["arn:aws-cn:iam::123456789012:role/billing-worker"], BILLING_SESSION, False),
        (["arn:aws:iam::123456789012:role/billing-worker-2"], BILLING_SESSION, False),
        (["arn:aws:iam::123456789012:user/billing-worker"], BILLING_SESSION, False),
        (["arn:aws:iam::123456789012:role/billing-worker"], "arn:aws:iam::123456789012:user/billing-worker", False),
        (["arn:aws:iam::123456789012:role/billing-*"], BILLING_SESSION, True),
        (["arn:aws:iam::123456789012:role/billing-*"], "arn:aws:sts::123456789012:assumed-role/billing/x", False),
        # the session name is the caller's choice, never compared
        (["arn:aws:iam::123456789012:role/payments-*"], BILLING_SESSION.replace("-fn", "-payments-x"), False),
        (["arn:aws:iam::123456789012:role/*"], BILLING_SESSION, True),
        (["arn:aws:iam::123456789012:role/*"], "arn:aws:sts::999999999999:assumed-role/billing-worker/x", False),
        (["arn:aws:iam::123456789012:role/billing-worker"], "arn:aws:iam::123456789012:root", False),
        ([], BILLING_SESSION, False),
    ],
)
def test_allowed_callers_entries(
    broker: Broker, profiles: Profiles, allowed: list[str], caller: str, admitted: bool
) -> None:
    profile = profiles.create(allowed_callers=allowed)

    response = broker.invoke_http(http_event({"profile": profile}, caller=caller)).answer

    assert response["statusCode"] == (200 if admitted else 403)


def test_a_profile_without_allowed_callers_serves_nobody(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create()
    profiles.put(profile, {k: v for k, v in profiles.document(profile).items() if k != "allowed_callers"})

    response = broker.invoke_http(http_event({"profile": profile}, caller="arn:aws:iam::123456789012:user/anyone"))

    assert response.answer["statusCode"] == 500
    assert json.loads(response.answer["body"])["error"] == "profile_misconfigured"
    assert auth_server.token_requests() == []


def test_allowed_scopes_apply_over_http(broker: Broker, profiles: Profiles) -> None:
    profile = profiles.create(allowed_scopes=["orders.read"], allowed_callers=ADMITS_BILLING)

    response = broker.invoke_http(http_event({"profile": profile, "scopes": ["admin"]})).answer

    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"] == "invalid_scope"


def test_a_base64_body_is_decoded(broker: Broker, profiles: Profiles) -> None:
    profile = profiles.create(allowed_callers=ADMITS_BILLING)
    body = base64.b64encode(json.dumps({"profile": profile}).encode()).decode()

    response = broker.invoke_http(http_event(body, isBase64Encoded=True)).answer

    assert response["statusCode"] == 200


@pytest.mark.parametrize(
    ("body", "base64_encoded"),
    [("not json", False), ("[1, 2]", False), ("%%%", True), ("x" * 70_000, False), ('{"profile": 5}', False)],
)
def test_a_body_that_is_not_a_valid_request_is_400(broker: Broker, body: str, base64_encoded: bool) -> None:
    response = broker.invoke_http(http_event(body, isBase64Encoded=base64_encoded)).answer

    assert response["statusCode"] == 400
    assert_no_store(response)
    assert json.loads(response["body"])["error"] == "invalid_request"
    assert "status" not in json.loads(response["body"])


def test_other_paths_are_404_and_other_methods_405(broker: Broker) -> None:
    assert broker.invoke_http(http_event({"profile": "p"}, path="/tokens")).answer["statusCode"] == 404
    assert broker.invoke_http(http_event({"profile": "p"}, method="GET")).answer["statusCode"] == 405


def test_503_carries_retry_after(broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer) -> None:
    profile = profiles.create(allowed_callers=ADMITS_BILLING)
    auth_server.fail_next(Fault(status=503, headers={"Retry-After": "120"}))

    response = broker.invoke_http(http_event({"profile": profile}), timeout_seconds=5).answer

    assert response["statusCode"] == 503
    assert response["headers"]["Retry-After"] == "120"
    assert_no_store(response)
    assert json.loads(response["body"])["retry_after"] == 120


def test_a_direct_request_with_a_version_field_stays_a_direct_request(broker: Broker) -> None:
    answer = broker.invoke({"profile": "p", "version": "2.0"}).answer

    assert answer["error"] == "invalid_request"
    assert "version" in answer["error_description"]
