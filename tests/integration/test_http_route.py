"""POST /token through the real handler, with API Gateway HTTP API (payload 2.0) events: the
caller is who STS says signed the body's caller proof, whatever the event claims."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from devstack.local.authserver import Fault, LocalAuthorizationServer
from devstack.local.lambda_host import FUNCTION_ARN
from devstack.local.sts import Issued, LocalSts, with_proof
from tests.conftest import SECRETS_USED, Broker, Profiles, http_event

ADMITS_BILLING = ["arn:aws:iam::123456789012:role/billing-*"]
OTHER_BROKER = "arn:aws:lambda:us-east-1:123456789012:function:another-broker"


@pytest.fixture(scope="module")
def billing(local_sts: LocalSts) -> Issued:
    """A session of the role `billing-worker`, which ADMITS_BILLING admits."""
    issued = local_sts.assume_role("billing-worker", "billing-worker-fn")
    SECRETS_USED.update({issued.credentials.secret_key, issued.credentials.token or ""})
    return issued


def body_of(response: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(response["body"])
    return document


def assert_no_store(response: dict[str, Any]) -> None:
    assert response["headers"]["Cache-Control"] == "no-store"
    assert response["headers"]["Pragma"] == "no-cache"
    assert response["headers"]["Content-Type"] == "application/json"


def test_an_admitted_caller_with_its_proof_gets_a_token(
    broker: Broker, profiles: Profiles, billing: Issued, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create(allowed_callers=ADMITS_BILLING)

    response = broker.post({"profile": profile}, billing).answer

    assert response["statusCode"] == 200
    assert_no_store(response)
    assert body_of(response)["access_token"] == auth_server.issued[-1]
    assert set(body_of(response)) == {"access_token", "token_type", "expires_in", "expires_at", "scope"}


def test_the_attackers_forged_event_gets_nothing(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    # Given a principal that may invoke the HTTP function (a Resource: "*" grant, the deploy
    # role): it writes an HTTP API event naming an admitted role, and signs nothing
    profile = profiles.create(allowed_callers=ADMITS_BILLING)
    forged = http_event(
        {"profile": profile}, gateway_caller="arn:aws:sts::123456789012:assumed-role/billing-worker/billing-worker-fn"
    )

    # When it invokes the HTTP function with it, directly
    response = broker.invoke_http(forged).answer

    # Then no token, and the authorization server was never asked
    assert response["statusCode"] == 403
    assert body_of(response)["error"] == "access_denied"
    assert "caller_proof" in body_of(response)["error_description"]
    assert auth_server.token_requests() == []


def test_a_proof_of_another_principal_than_api_gateways_is_denied(
    broker: Broker, profiles: Profiles, billing: Issued, consumer: Issued, auth_server: LocalAuthorizationServer
) -> None:
    # the consumer's own proof (no profile admits it) under an event naming the admitted role
    profile = profiles.create(allowed_callers=[*ADMITS_BILLING, "arn:aws:iam::123456789012:role/orders-*"])
    event = http_event({"profile": profile}, signer=consumer, gateway_caller=billing.arn)

    response = broker.invoke_http(event).answer

    assert response["statusCode"] == 403
    assert body_of(response)["error"] == "access_denied"
    assert auth_server.token_requests() == []


@pytest.mark.parametrize(
    "gateway_caller",
    [
        "arn:aws:sts::123456789012:assumed-role/billing-worker/another-session",  # same role: same principal
        None,  # no IAM identity in the event: the proof alone says who calls
    ],
)
def test_the_proof_decides_when_api_gateway_names_the_same_role_or_nobody(
    broker: Broker, profiles: Profiles, billing: Issued, gateway_caller: str | None
) -> None:
    profile = profiles.create(allowed_callers=ADMITS_BILLING)

    response = broker.invoke_http(http_event({"profile": profile}, signer=billing, gateway_caller=gateway_caller))

    assert response.answer["statusCode"] == 200


@pytest.mark.parametrize("claimed", [["arn:aws:iam::123456789012:role/billing-worker"], 42, ""])
def test_an_event_claiming_a_malformed_principal_is_denied(
    broker: Broker, profiles: Profiles, billing: Issued, claimed: object
) -> None:
    profile = profiles.create(allowed_callers=ADMITS_BILLING)
    event = http_event({"profile": profile}, signer=billing, gateway_caller=billing.arn)
    event["requestContext"]["authorizer"]["iam"]["userArn"] = claimed

    assert broker.invoke_http(event).answer["statusCode"] == 403


def test_a_proof_for_another_broker_is_denied_on_this_door_too(
    broker: Broker, profiles: Profiles, billing: Issued, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create(allowed_callers=ADMITS_BILLING)
    body = with_proof({"profile": profile}, billing, OTHER_BROKER)

    response = broker.invoke_http(http_event(body, gateway_caller=billing.arn)).answer

    assert response["statusCode"] == 403
    assert auth_server.token_requests() == []


def test_broker_audience_is_the_one_audience_of_the_http_function(
    broker: Broker, profiles: Profiles, billing: Issued
) -> None:
    # Given the HTTP function, told (as the template tells it) that proofs name the direct function
    profile = profiles.create(allowed_callers=ADMITS_BILLING)
    broker.new_container(BROKER_AUDIENCE=OTHER_BROKER)

    # Then a proof for that audience is accepted, and one for the function's own ARN is not
    for audience, status in ((OTHER_BROKER, 200), (FUNCTION_ARN, 403)):
        body = with_proof({"profile": profile}, billing, audience)
        response = broker.invoke_http(http_event(body, gateway_caller=billing.arn)).answer
        assert response["statusCode"] == status, audience


def test_a_caller_of_another_role_is_denied_without_a_token_request(
    broker: Broker, profiles: Profiles, consumer: Issued, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create(allowed_callers=ADMITS_BILLING)

    response = broker.post({"profile": profile}, consumer).answer

    assert response["statusCode"] == 403
    assert_no_store(response)
    assert body_of(response)["error"] == "access_denied"
    assert auth_server.token_requests() == []


def test_a_profile_without_allowed_callers_serves_nobody(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create()
    profiles.put(profile, {k: v for k, v in profiles.document(profile).items() if k != "allowed_callers"})

    response = broker.post({"profile": profile})

    assert response.answer["statusCode"] == 500
    assert body_of(response.answer)["error"] == "profile_misconfigured"
    assert auth_server.token_requests() == []


def test_allowed_scopes_apply_over_http(broker: Broker, profiles: Profiles, billing: Issued) -> None:
    profile = profiles.create(allowed_scopes=["orders.read"], allowed_callers=ADMITS_BILLING)

    response = broker.post({"profile": profile, "scopes": ["admin"]}, billing).answer

    assert response["statusCode"] == 400
    assert body_of(response)["error"] == "invalid_scope"


def test_a_base64_body_is_decoded(broker: Broker, profiles: Profiles, consumer: Issued) -> None:
    profile = profiles.create()
    body = base64.b64encode(json.dumps(with_proof({"profile": profile}, consumer)).encode()).decode()

    response = broker.invoke_http(http_event(body, gateway_caller=consumer.arn, is_base64=True)).answer

    assert response["statusCode"] == 200


@pytest.mark.parametrize(
    ("body", "base64_encoded"),
    [("not json", False), ("[1, 2]", False), ("%%%", True), ("x" * 70_000, False), ('{"profile": 5}', False)],
)
def test_a_body_that_is_not_a_valid_request_is_400(broker: Broker, body: str, base64_encoded: bool) -> None:
    response = broker.invoke_http(http_event(body, is_base64=base64_encoded)).answer

    assert response["statusCode"] == 400
    assert_no_store(response)
    assert body_of(response)["error"] == "invalid_request"
    assert "status" not in body_of(response)


def test_other_paths_are_404_and_other_methods_405(broker: Broker) -> None:
    assert broker.invoke_http(http_event({"profile": "p"}, path="/tokens")).answer["statusCode"] == 404
    assert broker.invoke_http(http_event({"profile": "p"}, method="GET")).answer["statusCode"] == 405


def test_503_carries_retry_after(broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer) -> None:
    profile = profiles.create()
    auth_server.fail_next(Fault(status=503, headers={"Retry-After": "120"}))

    response = broker.post({"profile": profile}, timeout_seconds=5).answer

    assert response["statusCode"] == 503
    assert response["headers"]["Retry-After"] == "120"
    assert_no_store(response)
    assert body_of(response)["retry_after"] == 120


def test_a_direct_request_with_a_version_field_stays_a_direct_request(broker: Broker) -> None:
    answer = broker.invoke({"profile": "p", "version": "2.0"}).answer

    assert answer["error"] == "invalid_request"
    assert "version" in answer["error_description"]
