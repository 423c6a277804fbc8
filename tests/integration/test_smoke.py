"""scripts/smoke.py, the pipeline's check of a deployed stage, run against the local stack's Lambda
Invoke API and HTTP route (what it reads from the stack's outputs is given directly)."""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

import pytest

from devstack.local.lambda_api import LocalLambdaApi
from devstack.local.sts import Issued
from devstack.template import ROOT
from tests.conftest import Profiles


def load_smoke() -> ModuleType:
    spec = importlib.util.spec_from_file_location("smoke", ROOT / "scripts" / "smoke.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def smoke_against(lambda_api: LocalLambdaApi, caller: Issued, monkeypatch: pytest.MonkeyPatch) -> Any:
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", lambda_api.endpoint_url)
    session = boto3.session.Session(
        aws_access_key_id=caller.credentials.access_key,
        aws_secret_access_key=caller.credentials.secret_key,
        aws_session_token=caller.credentials.token,
        region_name="us-east-1",
    )
    return load_smoke().Smoke(session, lambda_api.function_arn, lambda_api.endpoint_url, lambda_api.function_arn)


def test_a_stage_without_profiles_passes_every_check(
    lambda_api: LocalLambdaApi, consumer: Issued, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert smoke_against(lambda_api, consumer, monkeypatch).run(None) == 0
    printed = capsys.readouterr().out
    assert printed.count("ok    ") == 5
    assert "the stage answers as the contract says" in printed


def test_a_smoke_profile_gets_a_real_token_printed_masked(
    lambda_api: LocalLambdaApi,
    consumer: Issued,
    profiles: Profiles,
    auth_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    profile = profiles.create()

    assert smoke_against(lambda_api, consumer, monkeypatch).run(profile) == 0

    printed = capsys.readouterr().out
    assert printed.count("ok    ") == 7
    assert auth_server.issued[-1] not in printed
    assert auth_server.issued[-1][:4] + "…" in printed


def test_a_stage_that_answers_otherwise_fails_naming_the_check(
    lambda_api: LocalLambdaApi,
    consumer: Issued,
    profiles: Profiles,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # a smoke profile that does not admit the pipeline's role: its token checks fail
    profile = profiles.create(allowed_callers=["arn:aws:iam::123456789012:role/someone-else"])

    assert smoke_against(lambda_api, consumer, monkeypatch).run(profile) == 1

    printed = capsys.readouterr().out
    assert f"FAIL  direct: a token for {profile}: expected 200 None, got 403" in printed
    assert "2 of the smoke checks failed" in printed


@pytest.mark.parametrize(
    ("environment", "said"),
    [
        ({"AWS_DEFAULT_REGION": "us-east-1"}, "no AWS credentials"),
        ({"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "x"}, "no AWS region"),
    ],
    ids=["no-credentials", "no-region"],
)
def test_without_credentials_or_a_region_it_says_what_to_do_not_a_traceback(
    environment: dict[str, str], said: str, tmp_path: Any
) -> None:
    import subprocess
    import sys

    finished = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "smoke.py"), "--stack", "token-broker-dev"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AWS_EC2_METADATA_DISABLED": "true", **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 2
    assert said in finished.stderr
    assert "Traceback" not in finished.stderr


def test_make_smoke_without_a_stack_prints_its_usage() -> None:
    import shutil
    import subprocess

    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed here")
    finished = subprocess.run(
        [make, "--no-print-directory", "smoke"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )

    assert finished.returncode != 0
    assert "usage: make smoke STACK=token-broker-dev" in finished.stderr
    assert "Traceback" not in finished.stderr


def test_the_stages_names_live_in_samconfig_alone_and_ci_reads_them_there() -> None:
    smoke = load_smoke()
    assert (smoke.stack_of("default"), smoke.stack_of("prod")) == ("token-broker-dev", "token-broker-prod")
    workflow = (ROOT / ".github/workflows/ci.yml").read_text()
    assert "token-broker-dev" not in workflow
    assert "token-broker-prod" not in workflow
    assert "sam deploy --config-env default" in workflow
    assert "scripts/smoke.py --config-env default" in workflow
    assert "scripts/smoke.py --config-env prod" in workflow
