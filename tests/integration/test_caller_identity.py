"""Caller identity through the real handler: proofs checked by the strict STS stand-in, admission
by allowed_callers, audit mode, and the audit line."""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any

import pytest

from devstack.local.authserver import Fault, LocalAuthorizationServer
from devstack.local.lambda_host import FUNCTION_ARN
from devstack.local.sts import Issued, LocalSts, with_proof
from tests.conftest import EVENTS, SECRETS_USED, Broker, Profiles, http_event

OTHER_BROKER = "arn:aws:lambda:us-east-1:123456789012:function:another-broker"


def assert_denied(answer: dict[str, Any]) -> None:
    assert (answer["error"], answer["status"]) == ("access_denied", 403), answer
    assert "access_token" not in answer


AUDIT_FIELDS = ("profile", "caller", "path", "source", "outcome", "status")


def audit_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The audit lines among the broker's log lines, reduced to their own fields; clears them."""
    audit = [{name: line.get(name) for name in AUDIT_FIELDS} for line in lines if line.get("audit") is True]
    lines.clear()
    return audit


class StsCalls:
    """Counts the GetCallerIdentity requests the stand-in receives from here on."""

    def __init__(self, sts: LocalSts) -> None:
        self._sts = sts
        self._before = sts.caller_identity_requests

    @property
    def count(self) -> int:
        return self._sts.caller_identity_requests - self._before


def signed_proof(caller: Issued, function_arn: str = FUNCTION_ARN) -> dict[str, Any]:
    proof: dict[str, Any] = with_proof({}, caller, function_arn)["caller_proof"]
    SECRETS_USED.add(proof["signature"])
    return proof


def test_an_admitted_caller_gets_its_token_and_one_sts_call_serves_its_proof(
    broker: Broker, profiles: Profiles, consumer: Issued, local_sts: LocalSts, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create()
    proof = signed_proof(consumer)
    sts = StsCalls(local_sts)

    first = broker.invoke({"profile": profile, "caller_proof": proof}).answer
    again = broker.invoke({"profile": profile, "caller_proof": proof}).answer

    assert first["access_token"] == again["access_token"] == auth_server.issued[-1]
    assert sts.count == 1  # the verified identity is remembered by the proof's hash


def test_a_direct_call_without_a_proof_is_denied_without_sts_or_token_request(
    broker: Broker, profiles: Profiles, local_sts: LocalSts, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create()
    sts = StsCalls(local_sts)

    answer = broker.invoke_unsigned({"profile": profile}).answer

    assert_denied(answer)
    assert "caller_proof" in answer["error_description"]
    assert sts.count == 0
    assert auth_server.token_requests() == []


def test_a_forged_signature_is_denied_by_sts_and_never_remembered(
    broker: Broker, profiles: Profiles, consumer: Issued, local_sts: LocalSts, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create()
    proof = signed_proof(consumer)
    proof["signature"] = proof["signature"][:-1] + ("0" if proof["signature"][-1] != "0" else "1")
    sts = StsCalls(local_sts)

    for _ in range(2):
        assert_denied(broker.invoke({"profile": profile, "caller_proof": proof}).answer)

    assert sts.count == 2  # failures are not cached
    assert auth_server.token_requests() == []


def test_a_proof_older_than_five_minutes_is_denied_without_sts(
    broker: Broker, profiles: Profiles, consumer: Issued, local_sts: LocalSts, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = profiles.create()
    real_now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda *a, **k: real_now - datetime.timedelta(minutes=6))
    proof = signed_proof(consumer)
    monkeypatch.undo()
    sts = StsCalls(local_sts)

    answer = broker.invoke({"profile": profile, "caller_proof": proof}).answer

    assert_denied(answer)
    assert "stale" in answer["error_description"]
    assert sts.count == 0


def test_a_proof_made_for_another_broker_fails_here(
    broker: Broker, profiles: Profiles, consumer: Issued, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create()

    answer = broker.invoke({"profile": profile, "caller_proof": signed_proof(consumer, OTHER_BROKER)}).answer

    assert_denied(answer)
    assert auth_server.token_requests() == []


def test_a_proof_for_another_region_is_denied_without_sts(
    broker: Broker, profiles: Profiles, consumer: Issued, local_sts: LocalSts
) -> None:
    profile = profiles.create()
    sts = StsCalls(local_sts)

    proof = signed_proof(consumer, "arn:aws:lambda:eu-west-1:123456789012:function:token-broker")
    answer = broker.invoke({"profile": profile, "caller_proof": proof}).answer

    assert_denied(answer)
    assert sts.count == 0


def test_a_session_token_carrying_cr_lf_is_denied_without_sts(
    broker: Broker, profiles: Profiles, consumer: Issued, local_sts: LocalSts
) -> None:
    profile = profiles.create()
    proof = signed_proof(consumer)
    proof["security_token"] += "\r\nX-Amz-Target: AWSSecurityTokenServiceV20110615.AssumeRole"
    sts = StsCalls(local_sts)

    assert_denied(broker.invoke({"profile": profile, "caller_proof": proof}).answer)
    assert sts.count == 0


def test_a_verified_caller_outside_allowed_callers_is_denied_without_a_token_request(
    broker: Broker, profiles: Profiles, consumer: Issued, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create(allowed_callers=["arn:aws:iam::123456789012:role/billing-*"])

    answer = broker.invoke({"profile": profile}, caller=consumer).answer

    assert_denied(answer)
    assert "allowed_callers" not in answer["error_description"]  # never which profile fields exist
    assert auth_server.token_requests() == []


def test_an_iam_user_with_long_term_keys_is_admitted_by_its_user_arn(
    broker: Broker, profiles: Profiles, local_sts: LocalSts
) -> None:
    ci = local_sts.user("ci-deployer")
    SECRETS_USED.add(ci.credentials.secret_key)
    profile = profiles.create(allowed_callers=["arn:aws:iam::123456789012:user/ci-*"])

    answer = broker.invoke({"profile": profile}, caller=ci).answer

    assert "access_token" in answer, answer


def test_a_session_name_is_never_what_admits(broker: Broker, profiles: Profiles, local_sts: LocalSts) -> None:
    impostor = local_sts.assume_role("reporting", "orders-consumer")  # a session named like the admitted role
    SECRETS_USED.update({impostor.credentials.secret_key, impostor.credentials.token or ""})
    profile = profiles.create()

    assert_denied(broker.invoke({"profile": profile}, caller=impostor).answer)


def test_an_http_api_event_sent_by_direct_invocation_is_just_an_invalid_request(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create(allowed_callers=["arn:aws:iam::123456789012:role/billing-*"])
    event = json.loads((EVENTS / "http_token_request.json").read_text())
    event["body"] = json.dumps({"profile": profile})

    answer = broker.invoke(event).answer

    assert (answer["error"], answer["status"]) == ("invalid_request", 400)
    assert auth_server.token_requests() == []


def test_the_http_function_refuses_a_direct_request(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create()

    response = broker.invoke_http(with_proof({"profile": profile}, broker.caller)).answer

    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"] == "invalid_request"
    assert auth_server.token_requests() == []


def test_two_profiles_with_one_client_never_share_a_token(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    first = profiles.create()
    token = broker.invoke({"profile": first}).answer["access_token"]
    second = profiles.create()
    profiles.put(second, {**profiles.document(first), "client_secret": "wrong-secret-value"})

    for container in ("warm", "new"):
        if container == "new":
            broker.new_container()  # the table, not the memory tier, is where the first token is found
        answer = broker.invoke({"profile": second}).answer
        assert answer.get("access_token") != token
        assert (answer["error"], answer["upstream_error"]) == ("upstream_error", "invalid_client")
    # one token, one refusal: the new container is answered from the refusal the table remembers
    assert [r.status for r in auth_server.token_requests(profiles.client_id(first))] == [200, 401]


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=500, body='{"Error": {"Code": "InternalFailure"}}'),
        Fault(status=503, body="<ErrorResponse><Error><Code>ServiceUnavailable</Code></Error></ErrorResponse>"),
        Fault(status=400, body='{"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}'),
        # answered only after 5 s, without an identity: a broker that waited would say access_denied
        Fault(status=200, delay=5.0),
    ],
    ids=["500", "503", "throttled", "hung"],
)
def test_sts_unavailable_is_authentication_unavailable_with_retry_after(
    broker: Broker, profiles: Profiles, local_sts: LocalSts, auth_server: LocalAuthorizationServer, fault: Fault
) -> None:
    profile = profiles.create()
    local_sts.fail_next(fault)

    invocation = broker.invoke({"profile": profile})

    assert (invocation.answer["error"], invocation.answer["status"]) == ("authentication_unavailable", 503)
    assert invocation.answer["retry_after"] >= 1
    assert auth_server.token_requests() == []


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        '{"GetCallerIdentityResponse": {}}',
        '{"GetCallerIdentityResponse": {"GetCallerIdentityResult": {"Arn": "arn:aws:iam::123456789012:user/x"}}}',
        json.dumps(
            {
                "GetCallerIdentityResponse": {
                    "GetCallerIdentityResult": {
                        "Arn": "arn:aws:sts::123456789012:assumed-role/orders-consumer/x",
                        "Account": "999999999999",
                    }
                }
            }
        ),
        json.dumps(
            {
                "GetCallerIdentityResponse": {
                    "GetCallerIdentityResult": {
                        "Arn": "arn:aws-cn:sts::123456789012:assumed-role/orders-consumer/x",
                        "Account": "123456789012",
                    }
                }
            }
        ),
    ],
    ids=["not-json", "no-result", "no-account", "account-mismatch", "other-partition"],
)
def test_an_sts_answer_that_is_not_a_well_formed_identity_is_denied(
    broker: Broker, profiles: Profiles, local_sts: LocalSts, body: str
) -> None:
    profile = profiles.create()
    local_sts.fail_next(Fault(status=200, body=body))

    assert_denied(broker.invoke({"profile": profile}).answer)


def test_audit_mode_serves_and_logs_what_enforce_would_refuse(
    broker: Broker,
    profiles: Profiles,
    consumer: Issued,
    broker_lines: list[dict[str, Any]],
) -> None:
    broker.new_container(CALLER_AUTH="audit")
    admitted_elsewhere = profiles.create(allowed_callers=["arn:aws:iam::123456789012:role/billing-*"])

    for signer in (None, consumer):
        event = {"profile": admitted_elsewhere}
        invocation = broker.invoke(event, caller=signer) if signer else broker.invoke_unsigned(event)
        assert "access_token" in invocation.answer
        (warning,) = [line for line in broker_lines if line["message"] == "caller would be refused (CALLER_AUTH=audit)"]
        assert (warning["level"], warning["refusal"]) == ("WARNING", "access_denied")
        assert audit_lines(broker_lines)[0]["caller"] == (signer.arn if signer else None)


def test_one_audit_line_per_answer_says_who_what_how_and_where_from(
    broker: Broker, profiles: Profiles, consumer: Issued, broker_lines: list[dict[str, Any]]
) -> None:
    profile = profiles.create()
    lines = []

    for ask in (broker.invoke, broker.invoke, broker.invoke_unsigned):
        ask({"profile": profile})
        lines.append(audit_lines(broker_lines))
    broker.new_container()
    broker.invoke({"profile": profile})
    lines.append(audit_lines(broker_lines))

    assert lines == [
        [_audit(profile, consumer.arn, "direct", "authorization_server", "token", 200)],
        [_audit(profile, consumer.arn, "direct", "memory", "token", 200)],
        [_audit(profile, None, "direct", None, "access_denied", 403)],
        [_audit(profile, consumer.arn, "direct", "table", "token", 200)],
    ]


def test_the_http_door_is_audited_with_the_proofs_caller(
    broker: Broker, profiles: Profiles, consumer: Issued, broker_lines: list[dict[str, Any]]
) -> None:
    profile = profiles.create()

    invocation = broker.post({"profile": profile})

    assert invocation.answer["statusCode"] == 200
    assert audit_lines(broker_lines) == [_audit(profile, consumer.arn, "http", "authorization_server", "token", 200)]


def test_audit_mode_serves_the_http_door_and_logs_what_enforce_would_refuse(
    broker: Broker, profiles: Profiles, broker_log: list[logging.LogRecord]
) -> None:
    broker.new_container(CALLER_AUTH="audit")
    profile = profiles.create()
    unproven = http_event({"profile": profile}, gateway_caller="arn:aws:sts::123456789012:assumed-role/x/y")

    invocation = broker.invoke_http(unproven)

    assert invocation.answer["statusCode"] == 200
    (warning,) = [r for r in broker_log if r.getMessage() == "caller would be refused (CALLER_AUTH=audit)"]
    assert (getattr(warning, "path", None), getattr(warning, "refusal", None)) == ("http", "access_denied")


def _audit(
    profile: str, caller: str | None, path: str, source: str | None, outcome: str, status: int
) -> dict[str, Any]:
    return dict(zip(AUDIT_FIELDS, (profile, caller, path, source, outcome, status), strict=True))


@pytest.mark.processes
def test_no_event_is_logged_even_when_powertools_is_told_to(broker: Broker, profiles: Profiles) -> None:
    profile = profiles.create()
    container = broker.container_process(POWERTOOLS_LOGGER_LOG_EVENT="true")
    event = with_proof({"profile": profile}, broker.caller)

    answer = container.invoke(event)["answer"]
    container.close()

    assert "access_token" in answer
    output = "".join(container.output)
    assert event["caller_proof"]["security_token"] not in output
    assert event["caller_proof"]["signature"] not in output
