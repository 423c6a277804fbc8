"""Traces: with tracing on, as in Lambda, the token request is traced, and what the X-Ray SDK
sends to its daemon holds no secret or token. A UDP socket plays the daemon."""

from __future__ import annotations

import socket
import time

import pytest

from devstack.authserver import LocalAuthorizationServer
from devstack.lambda_host import FUNCTION_DIR
from tests.conftest import BROKER_OUTPUT, SECRETS_USED, Broker, Profiles

pytestmark = pytest.mark.processes


def test_trace_segments_carry_no_secret_or_token(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    # Given a container with tracing on, sending its segments to a local "daemon"
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(0.5)
    container = broker.container_process(
        POWERTOOLS_TRACE_DISABLED="false",
        LAMBDA_TASK_ROOT=str(FUNCTION_DIR),
        AWS_XRAY_DAEMON_ADDRESS=f"127.0.0.1:{daemon.getsockname()[1]}",
        _X_AMZN_TRACE_ID="Root=1-6748d6e0-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1",
    )
    profile = profiles.create()

    # When it fetches a token, serves it from memory, and answers an error
    answers = [container.invoke(event)["answer"] for event in ({"profile": profile}, {"profile": profile}, {})]
    segments = []
    deadline = time.time() + 3
    while time.time() < deadline:
        try:
            segments.append(daemon.recv(65536).decode())
        except TimeoutError:
            if segments:
                break
    daemon.close()
    BROKER_OUTPUT.extend(segments)

    # Then the segments arrived, and none holds the secret or the token
    trace = "\n".join(segments)
    assert "access_token" in answers[0]
    assert '"name": "token request"' in trace
    assert f'"profile": "{profile}"' in trace
    for value in [*SECRETS_USED, *auth_server.issued]:
        assert value not in trace
