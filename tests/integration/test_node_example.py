"""The Node.js example in docs/examples/node: installed from its lock file and run against the
local stack's Invoke API, with a caller proof the strict local STS verifies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from devstack.lambda_api import LocalLambdaApi
from devstack.sts import Issued
from devstack.template import ROOT
from tests.conftest import Profiles, credentials_environment

EXAMPLE = ROOT / "docs/examples/node"
NODE, NPM = shutil.which("node"), shutil.which("npm")


@pytest.fixture(scope="module")
def node_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if NODE is None or NPM is None:
        pytest.skip("Node.js is not installed here")
    work = tmp_path_factory.mktemp("node-example")
    for name in ("package.json", "package-lock.json", "get-token.mjs"):
        shutil.copy(EXAMPLE / name, work / name)
    subprocess.run([NPM, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], cwd=work, check=True)
    return work


def test_the_node_example_gets_a_token_with_a_caller_proof_sts_accepts(
    node_example: Path, lambda_api: LocalLambdaApi, profiles: Profiles, consumer: Issued, auth_server: object
) -> None:
    profile = profiles.create(scopes=["orders.read"])
    environment = {
        "PATH": os.environ["PATH"],
        **credentials_environment(consumer),
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_LAMBDA": lambda_api.endpoint_url,
        "TOKEN_BROKER_FUNCTION": lambda_api.function_arn,
    }

    finished = subprocess.run(
        [str(NODE), "get-token.mjs", profile],
        cwd=node_example,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 0, finished.stderr[-2000:]
    answer = json.loads(finished.stdout)
    assert answer["scope"] == "orders.read"
    assert answer["expires_in"] > 3000
    assert answer["access_token"].endswith("…")  # printed masked
    assert lambda_api.invocations[-1]["caller_proof"]["signed_headers"] == (
        "content-type;host;x-amz-date;x-amz-security-token;x-token-broker-audience"
    )
