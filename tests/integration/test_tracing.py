"""Traces: with tracing on, as in Lambda, each token request is a subsegment sent to the X-Ray
daemon, and nothing sent holds a secret or a token. A UDP socket plays the daemon."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from devstack.local.authserver import Fault, LocalAuthorizationServer
from devstack.local.lambda_host import FUNCTION_DIR
from tests.conftest import BROKER_OUTPUT, SECRETS_USED, Broker, Profiles

pytestmark = pytest.mark.processes
TRACE_ID = "1-6748d6e0-0123456789abcdef01234567"


@pytest.fixture
def daemon() -> Iterator[socket.socket]:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.5)
    yield udp
    udp.close()


def traced_container(broker: Broker, daemon: socket.socket, sampled: str) -> dict[str, str]:
    return {
        "POWERTOOLS_TRACE_DISABLED": "false",
        "LAMBDA_TASK_ROOT": str(FUNCTION_DIR),
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
        "_X_AMZN_TRACE_ID": f"Root={TRACE_ID};Parent=53995c3f42cd8ad8;Sampled={sampled}",
    }


def received(daemon: socket.socket, seconds: float = 2.0) -> list[str]:
    datagrams = []
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            datagrams.append(daemon.recv(65536).decode())
        except TimeoutError:
            if datagrams:
                break
    BROKER_OUTPUT.extend(datagrams)
    return datagrams


def test_a_token_request_is_a_subsegment_without_secrets(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer, daemon: socket.socket
) -> None:
    # Given a container with tracing on, in a sampled invocation
    container = broker.container_process(**traced_container(broker, daemon, sampled="1"))
    profile = profiles.create()

    # When it fetches a token, serves it from memory, and answers an error
    answers = [container.invoke(event)["answer"] for event in ({"profile": profile}, {"profile": profile}, {})]
    datagrams = received(daemon)

    # Then one subsegment arrived, for the token request, in the daemon's format, with no secret
    assert "access_token" in answers[0]
    assert len(datagrams) == 1
    header, body = datagrams[0].split("\n", 1)
    assert json.loads(header) == {"format": "json", "version": 1}
    document = json.loads(body)
    assert (document["type"], document["name"], document["trace_id"]) == ("subsegment", "token request", TRACE_ID)
    assert document["parent_id"] == "53995c3f42cd8ad8"
    assert document["annotations"]["profile"] == profile
    assert document["start_time"] <= document["end_time"]
    for value in [*SECRETS_USED, *auth_server.issued]:
        assert not value or value not in datagrams[0]


def test_an_unsampled_invocation_sends_nothing(broker: Broker, profiles: Profiles, daemon: socket.socket) -> None:
    container = broker.container_process(**traced_container(broker, daemon, sampled="0"))

    assert "access_token" in container.invoke({"profile": profiles.create()})["answer"]
    assert received(daemon, seconds=1.0) == []


def test_a_refused_token_request_is_an_error_and_an_outage_a_fault(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer, daemon: socket.socket
) -> None:
    # Given a traced container, a profile whose secret the server refuses, and one it cannot serve
    container = broker.container_process(**traced_container(broker, daemon, sampled="1"))
    refused = profiles.create()
    profiles.put(refused, {**profiles.document(refused), "client_secret": "not-the-secret"})
    unavailable = profiles.create()

    # When each asks once
    assert container.invoke({"profile": refused})["answer"]["error"] == "upstream_error"
    auth_server.outage = Fault(status=503)
    assert container.invoke({"profile": unavailable}, timeout_seconds=3)["answer"]["error"] == "upstream_unavailable"
    documents = [json.loads(datagram.split("\n", 1)[1]) for datagram in received(daemon)]

    # Then X-Ray sees the refusal as an error (a 4xx) and the outage as a fault (a 5xx)
    by_profile = {document["annotations"]["profile"]: document for document in documents}
    assert by_profile[refused].get("error") is True
    assert "fault" not in by_profile[refused]
    assert by_profile[unavailable].get("fault") is True
