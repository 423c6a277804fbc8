"""What `make serve` prints for a developer to paste in another shell, run as printed: token_client
by direct invocation and over HTTP, and curl with `--aws-sigv4` and a body from
`token-broker-request`, against the local Invoke API and route."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from devstack.local.aws import LocalAws
from devstack.local.lambda_api import LocalLambdaApi
from devstack.local.resource_server import LocalResourceServer
from devstack.local.serve import Where, usage
from devstack.local.sts import Issued
from devstack.template import ROOT
from tests.conftest import Profiles

BASH, CURL = shutil.which("bash"), shutil.which("curl")
pytestmark = pytest.mark.slow


@pytest.mark.skipif(BASH is None or CURL is None, reason="bash and curl are not both installed here")
def test_every_printed_command_gets_a_token(
    lambda_api: LocalLambdaApi,
    profiles: Profiles,
    consumer: Issued,
    auth_server: object,
    local_aws: LocalAws,
    resource_server: LocalResourceServer,
) -> None:
    # Given the printed lines, for a Bearer and a DPoP profile that admit the developer, and an
    # API that asks for its DPoP nonce
    profile, dpop_profile = profiles.create(), profiles.create(token_binding="dpop")
    resource_server.require_nonce = True
    where = Where(lambda_api, local_aws.endpoint_url, f"{resource_server.url}/api/v1/users")
    lines = usage(where, consumer, profile, dpop_profile)
    commands = "\n".join(line.removeprefix("  ") for line in lines[1:])

    # When a shell runs them, as pasted
    finished = subprocess.run(
        [str(BASH), "-euo", "pipefail", "-c", commands],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # Then each of the three printed a token: two headers from token_client, one answer from curl;
    # and the operator's CLI listed the profile from the local stack's Secrets Manager
    assert finished.returncode == 0, finished.stderr[-2000:]
    direct, over_http, curl, api, *listed = finished.stdout.strip().splitlines()
    assert any(line.startswith(f"{profile}  client_secret_basic  ") for line in listed)
    assert direct == over_http  # one token, cached by the broker, whatever the door
    assert direct.startswith("{'Authorization': 'Bearer ")
    answer = json.loads(curl)
    assert direct == str({"Authorization": f"Bearer {answer['access_token']}"})
    assert api == str({"ok": True, "client_id": profiles.client_id(dpop_profile), "token_type": "DPoP"})
    assert [r.status for r in resource_server.requests] == [401, 200]  # the nonce, then the call
    doors = [event.get("version", "direct") for event in lambda_api.invocations]
    assert doors == ["direct", "2.0", "2.0", "direct"]


@pytest.mark.parametrize("port", ["busy", "not-a-port"])
def test_a_busy_or_bad_port_is_refused_naming_the_variable_that_chooses_another(port: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        value = str(taken.getsockname()[1]) if port == "busy" else port
        finished = subprocess.run(
            [sys.executable, "-m", "devstack.local.serve"],
            cwd=ROOT,
            env={**os.environ, "TOKEN_BROKER_PORT": value},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert finished.returncode == 1
    assert "TOKEN_BROKER_PORT" in finished.stderr
    assert "Traceback" not in finished.stderr
    if port == "busy":
        assert f"port {value} is in use" in finished.stderr
