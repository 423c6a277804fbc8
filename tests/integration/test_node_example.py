"""The Node.js client in docs/examples/node: installed from its lock file and run against the
local stack's Invoke API and HTTP route, with caller proofs the strict local STS verifies (and,
over HTTP, a SigV4 signature the local route verifies as API Gateway's IAM authorizer)."""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devstack.local.lambda_api import LocalLambdaApi
from devstack.local.resource_server import LocalResourceServer
from devstack.local.sts import Issued
from devstack.template import ROOT
from tests.conftest import Profiles, credentials_environment

EXAMPLE = ROOT / "docs/examples/node"
NODE, NPM = shutil.which("node"), shutil.which("npm")
pytestmark = pytest.mark.slow
SESSION_SIGNED_HEADERS = "content-type;host;x-amz-date;x-amz-security-token;x-token-broker-audience"


@pytest.fixture(scope="module")
def node_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if NODE is None or NPM is None:
        pytest.skip("Node.js is not installed here")
    work = tmp_path_factory.mktemp("node-example")
    for name in ("package.json", "package-lock.json", "get-token.mjs", "token-client.mjs"):
        shutil.copy(EXAMPLE / name, work / name)
    subprocess.run([NPM, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], cwd=work, check=True)
    return work


def sdk_node_floor(node_example: Path) -> int:
    """The Node.js major version below which the locked AWS SDK warns that it will stop working."""
    source = (node_example / "node_modules/@aws-sdk/core/dist-cjs/submodules/client/index.js").read_text()
    match = re.search(r"const vv = (\d+);", source)
    assert match is not None, "the SDK's Node.js version check has changed: read it again"
    return int(match.group(1))


@functools.cache
def node_major() -> int:
    version = subprocess.run([str(NODE), "-p", "process.versions.node"], capture_output=True, text=True, check=True)
    return int(version.stdout.split(".")[0])


def run_node(node_example: Path, environment: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    # This machine's Node.js may be below the SDK's announced floor (the README's): its warning is
    # then expected, and kept out of the output the tests read.
    below_floor = node_major() < sdk_node_floor(node_example)
    quiet = {"AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED": "true"} if below_floor else {}
    return subprocess.run(
        [str(NODE), *arguments],
        cwd=node_example,
        env={"PATH": os.environ["PATH"], **quiet, **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def broker_events(lambda_api: LocalLambdaApi) -> list[dict[str, Any]]:
    """What the broker received, by either door: the direct events, and the HTTP events' bodies."""
    return [
        json.loads(base64.b64decode(event["body"]) if event["isBase64Encoded"] else event["body"])
        if event.get("version") == "2.0"
        else event
        for event in lambda_api.invocations
    ]


@pytest.mark.parametrize("door", ["direct", "http"])
def test_the_node_client_gets_a_token_by_each_door_and_keeps_it(
    node_example: Path, lambda_api: LocalLambdaApi, profiles: Profiles, consumer: Issued, door: str
) -> None:
    profile = profiles.create(scopes=["orders.read"])
    if door == "direct":
        broker = {"TOKEN_BROKER_FUNCTION": lambda_api.function_arn, "AWS_ENDPOINT_URL_LAMBDA": lambda_api.endpoint_url}
    else:
        broker = {"TOKEN_BROKER_URL": lambda_api.endpoint_url, "TOKEN_BROKER_AUDIENCE": lambda_api.function_arn}

    finished = run_node(
        node_example,
        {**credentials_environment(consumer), "AWS_REGION": "us-east-1", **broker},
        "get-token.mjs",
        profile,
    )

    assert finished.returncode == 0, finished.stderr[-2000:]
    answer = json.loads(finished.stdout)
    assert answer["scope"] == "orders.read"
    assert answer["expires_in"] > 3000
    assert answer["access_token"].endswith("…")  # printed masked
    assert answer["from_memory"] is True  # the second ask was answered from the client's memory
    (event,) = broker_events(lambda_api)  # one broker call for both asks
    assert event["caller_proof"]["signed_headers"] == SESSION_SIGNED_HEADERS


def test_one_proof_serves_several_calls_and_threads_of_one_key_share_a_call(
    node_example: Path, lambda_api: LocalLambdaApi, profiles: Profiles, consumer: Issued
) -> None:
    first, second = profiles.create(), profiles.create()
    script = (
        "import { TokenClient } from './token-client.mjs';"
        "const tokens = new TokenClient();"
        f"await Promise.all([1, 2, 3].map(() => tokens.getToken('{first}')));"
        f"await tokens.getToken('{second}');"
    )
    environment = {
        **credentials_environment(consumer),
        "TOKEN_BROKER_FUNCTION": lambda_api.function_arn,
        "AWS_ENDPOINT_URL_LAMBDA": lambda_api.endpoint_url,
    }

    finished = run_node(node_example, environment, "--input-type=module", "-e", script)

    assert finished.returncode == 0, finished.stderr[-2000:]
    events = broker_events(lambda_api)
    assert [event["profile"] for event in events] == [first, second]
    assert events[0]["caller_proof"] == events[1]["caller_proof"]


def test_engines_and_the_readme_name_the_node_version_the_locked_sdk_asks_for(node_example: Path) -> None:
    floor = sdk_node_floor(node_example)
    package = json.loads((EXAMPLE / "package.json").read_text())
    assert package["engines"] == {"node": f">={floor}"}
    assert f"Node.js {floor} or later" in (ROOT / "README.md").read_text().replace("\n", " ")


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({}, "TOKEN_BROKER_FUNCTION"),
        ({"TOKEN_BROKER_URL": "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"}, "TOKEN_BROKER_AUDIENCE"),
        ({"TOKEN_BROKER_FUNCTION": "token-broker"}, "function ARN"),
    ],
    ids=["nothing", "url-without-audience", "a-name-not-an-arn"],
)
def test_missing_configuration_is_a_clear_error(node_example: Path, environment: dict[str, str], named: str) -> None:
    finished = run_node(node_example, environment, "get-token.mjs", "okta-default")

    assert finished.returncode == 1
    assert "client_misconfigured" in finished.stderr
    assert named in finished.stderr
    assert "TypeError" not in finished.stderr


@pytest.mark.parametrize("algorithm", ["ES256", "RS256", "PS256"])
def test_the_node_client_proves_each_request_with_the_dpop_tokens_key_and_answers_a_nonce_challenge(
    node_example: Path,
    lambda_api: LocalLambdaApi,
    profiles: Profiles,
    consumer: Issued,
    resource_server: LocalResourceServer,
    algorithm: str,
) -> None:
    # Given a DPoP profile and a resource server that asks for its nonce
    profile = profiles.create(token_binding="dpop", dpop_algorithm=algorithm)
    resource_server.require_nonce = True
    url = f"{resource_server.url}/api/v1/users?page=1"
    script = (
        "import { TokenClient } from './token-client.mjs';"
        "const tokens = new TokenClient();"
        f"const first = await tokens.fetch('{profile}', '{url}');"
        f"const second = await tokens.fetch('{profile}', '{url}');"
        f"let refused = '';"
        f"try {{ await tokens.authHeader('{profile}'); }} catch (error) {{ refused = error.error; }}"
        "console.log(JSON.stringify([first.status, second.status, refused]));"
    )
    environment = {
        **credentials_environment(consumer),
        "TOKEN_BROKER_FUNCTION": lambda_api.function_arn,
        "AWS_ENDPOINT_URL_LAMBDA": lambda_api.endpoint_url,
    }

    finished = run_node(node_example, environment, "--input-type=module", "-e", script)

    # Then each request reached the API with a proof of its own, the challenge was answered once,
    # and the token is never handed out as a bare header
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert json.loads(finished.stdout) == [200, 200, "dpop_required"]
    assert [(r.status, r.refusal) for r in resource_server.requests] == [
        (401, "use_dpop_nonce nonce"),
        (200, ""),
        (200, ""),
    ]
    assert len(broker_events(lambda_api)) == 1
