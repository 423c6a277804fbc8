"""Logs that can be joined: each answer's log lines, its audit line included, carry the caller's
request id (token_client's, sent in the invocation's ClientContext) or API Gateway's; and each
line names where it was logged, not the logging helper."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.local.lambda_api import LocalLambdaApi
from tests.conftest import Broker, Profiles, http_event
from token_client import TokenClient


def audit_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["message"] == "answered"]


def test_a_direct_call_carries_token_clients_request_id_into_every_broker_line(
    lambda_api: LocalLambdaApi,
    broker: Broker,
    profiles: Profiles,
    consumer_session: Any,
    broker_lines: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = TokenClient(
        function_name=lambda_api.function_arn,
        lambda_client=consumer_session.client("lambda", endpoint_url=lambda_api.endpoint_url),
        session=consumer_session,
    )

    with caplog.at_level("DEBUG", logger="token_client"):
        client.get_token(profiles.create())

    (said,) = [record for record in caplog.records if record.name == "token_client"]
    assert broker_lines
    assert {line.get("correlation_id") for line in broker_lines} == {said.request_id}
    (audit,) = audit_lines(broker_lines)
    assert audit["correlation_id"] == said.request_id


@pytest.mark.parametrize("request_id", ["has space", "x" * 65, "new\nline"])
def test_a_malformed_request_id_is_not_logged(
    broker: Broker, broker_lines: list[dict[str, Any]], request_id: str
) -> None:
    from devstack.local.lambda_host import ClientContext, LambdaContext

    broker.app.lambda_handler(
        {"profile": "bad profile!"}, LambdaContext(client_context=ClientContext({"request_id": request_id}))
    )

    (audit,) = audit_lines(broker_lines)
    assert audit.get("correlation_id") is None


def test_an_http_call_carries_api_gateways_request_id(
    broker: Broker, profiles: Profiles, broker_lines: list[dict[str, Any]]
) -> None:
    event = http_event({"profile": profiles.create()}, signer=broker.caller, gateway_caller=broker.caller.arn)
    event["requestContext"]["requestId"] = "Fz3kYhBmIAMEVgA="

    broker.invoke_http(event)

    (audit,) = audit_lines(broker_lines)
    assert audit["correlation_id"] == "Fz3kYhBmIAMEVgA="


def test_each_line_names_where_it_was_logged_not_the_helper(
    broker: Broker, profiles: Profiles, broker_lines: list[dict[str, Any]]
) -> None:
    broker.invoke({"profile": profiles.create()})

    places = {line["message"]: line["location"].split(":")[0] for line in broker_lines}
    assert places["token endpoint answered"] == "_fetch"
    assert places["answered"] == "serve"
