"""`token-broker-admin`, the operator's commands, against the local stack: moto's Secrets Manager
and DynamoDB, and the local authorization server."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest

from devstack.local.authserver import LocalAuthorizationServer
from devstack.local.aws import LocalAws
from devstack.local.sts import LocalSts, credentials_environment
from devstack.template import ROOT
from tests.conftest import CONSUMER_ROLE_ARN, SECRETS_USED, Broker, Profiles
from tests.credentials import certificate_pem, private_key, private_pem
from token_broker_admin.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str, clients: Any = None) -> tuple[int, str, str]:
    status = main(list(argv), clients)
    out, err = capsys.readouterr()
    return status, out, err


def profile_file(tmp_path: Path, profiles: Profiles, auth_server: LocalAuthorizationServer, **changes: Any) -> Path:
    """A profile document for a client that exists on the local authorization server; a change
    to None removes the field."""
    template = profiles.document(profiles.create(scopes=["orders.read"]))
    path = tmp_path / "orders.json"
    document = {name: value for name, value in {**template, **changes}.items() if value is not None}
    path.write_text(json.dumps(document))
    return path


def test_check_accepts_a_valid_profile_and_names_a_bad_field_without_its_value(
    tmp_path: Path, profiles: Profiles, auth_server: LocalAuthorizationServer, capsys: pytest.CaptureFixture[str]
) -> None:
    good = profile_file(tmp_path, profiles, auth_server)
    status, out, _ = run(capsys, "check", str(good))
    assert status == 0
    assert "a valid profile" in out
    assert "client_secret_basic" in out

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**json.loads(good.read_text()), "token_url": "http://idp.example.com/token"}))
    status, out, err = run(capsys, "check", str(bad))
    assert status == 1
    assert "token_url" in err
    assert "idp.example.com" not in err  # the field, never its value
    assert json.loads(good.read_text())["client_secret"] not in out + err


def test_put_creates_then_updates_the_secret_the_broker_reads(
    tmp_path: Path,
    broker: Broker,
    profiles: Profiles,
    auth_server: LocalAuthorizationServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    document = profile_file(tmp_path, profiles, auth_server)
    name = "ops-put-profile"

    status, out, _ = run(capsys, "put", name, str(document))
    assert (status, out.split()[0]) == (0, "created")
    assert profiles.document(name) == json.loads(document.read_text())
    status, out, _ = run(capsys, "put", name, str(document))
    assert (status, out.split()[0]) == (0, "updated")
    assert "access_token" in broker.invoke({"profile": name}).answer  # the broker serves it


def test_put_refuses_a_bad_profile_and_stores_nothing(
    tmp_path: Path, profiles: Profiles, auth_server: LocalAuthorizationServer, capsys: pytest.CaptureFixture[str]
) -> None:
    document = profile_file(tmp_path, profiles, auth_server, allowed_callers=["*"])

    status, _, err = run(capsys, "put", "ops-never-stored", str(document))

    assert status == 1
    assert "allowed_callers" in err
    status, _, err = run(capsys, "key", "ops-never-stored")
    assert status == 1
    assert "no secret token-broker/ops-never-stored" in err


def test_try_gets_a_token_and_prints_it_masked(
    profiles: Profiles, auth_server: LocalAuthorizationServer, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = profiles.create(scopes=["orders.read"])

    status, out, _ = run(capsys, "try", profile)

    assert status == 0
    token = auth_server.issued[-1]
    assert token not in out
    assert f"{token[:4]}…({len(token)} characters)" in out
    assert "expires in 3600 s" in out
    assert "'orders.read'" in out


@pytest.mark.parametrize("jwt_tokens", [True, False], ids=["jwt", "opaque"])
def test_try_a_dpop_profile_shows_the_keys_thumbprint_beside_the_tokens_cnf_jkt(
    profiles: Profiles, auth_server: LocalAuthorizationServer, capsys: pytest.CaptureFixture[str], jwt_tokens: bool
) -> None:
    # Given an Okta-style app that requires DPoP (and a nonce), issuing JWTs or opaque tokens
    profile = profiles.create(token_binding="dpop")
    auth_server.jwt_tokens = jwt_tokens

    status, out, err = run(capsys, "try", profile)

    assert status == 0, err
    token = auth_server.issued[-1]
    assert token not in out
    assert out.startswith(f"a DPoP token for {profile}: {token[:4]}…")
    jkt = auth_server.introspect(token)["cnf"]["jkt"]
    if jwt_tokens:
        assert f"thumbprint is {jkt}; the token's cnf.jkt is {jkt}: the same key." in out
    else:
        assert f"thumbprint is {jkt} (the token does not say cnf.jkt)" in out


def test_check_and_list_name_the_token_binding(
    tmp_path: Path, profiles: Profiles, auth_server: LocalAuthorizationServer, capsys: pytest.CaptureFixture[str]
) -> None:
    document = profile_file(tmp_path, profiles, auth_server, token_binding="dpop", dpop_algorithm="PS256")

    status, out, _ = run(capsys, "check", str(document))
    assert status == 0
    assert "token_binding dpop (PS256)" in out

    bad = profile_file(tmp_path, profiles, auth_server, dpop_algorithm="PS256")
    status, _, err = run(capsys, "check", str(bad))
    assert status == 1
    assert "dpop_algorithm is not used with token_binding bearer" in err


def test_try_says_what_the_server_refused(
    profiles: Profiles, auth_server: LocalAuthorizationServer, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = profiles.create()
    profiles.put(profile, {**profiles.document(profile), "client_secret": "revoked-secret-value"})

    status, out, err = run(capsys, "try", profile)

    assert status == 1
    assert "upstream_error (invalid_client)" in err
    assert "revoked-secret-value" not in out + err


def test_try_a_web_identity_profile_uses_the_operators_own_role_and_says_so(
    profiles: Profiles,
    local_sts: LocalSts,
    auth_server: LocalAuthorizationServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an operator whose role the app trusts as well as the broker's
    operator = local_sts.assume_role("platform-operator", "alice")
    SECRETS_USED.update({operator.credentials.secret_key, operator.credentials.token or ""})
    for name, value in credentials_environment(operator).items():
        monkeypatch.setenv(name, value)
    subject = "arn:aws:iam::123456789012:role/platform-operator"
    profile = profiles.create_web_identity({"subject": subject})

    status, out, _ = run(capsys, "try", profile)

    assert status == 0, out
    assert "a Bearer token for" in out
    assert "your own credentials" in out
    assert local_sts.web_identity_requests == [("api://AzureADTokenExchange", "RS256")]
    assert local_sts.assume_role_requests == []  # the operator's JWT, never the profile role's


def test_check_refuses_a_certificate_of_another_key_naming_the_field(
    tmp_path: Path, profiles: Profiles, auth_server: LocalAuthorizationServer, capsys: pytest.CaptureFixture[str]
) -> None:
    key = private_key("rsa")
    path = profile_file(
        tmp_path,
        profiles,
        auth_server,
        auth_method="private_key_jwt",
        client_secret=None,
        private_key=private_pem(key, SECRETS_USED),
        certificate=certificate_pem(private_key("rsa")),
        signing_algorithm="PS256",
    )

    status, _, err = run(capsys, "check", str(path))

    assert status == 1
    assert "certificate does not hold the public key of private_key" in err
    assert "BEGIN" not in err


def test_key_is_the_brokers_and_evict_removes_that_item(
    broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = profiles.create()
    cached = broker.invoke({"profile": profile}).answer["access_token"]

    status, out, _ = run(capsys, "key", profile)
    assert (status, out.strip()) == (0, broker.cache_key(profiles, profile))
    status, out, _ = run(capsys, "key", profile, "--scopes", "orders.read")
    assert out.strip() == broker.cache_key(profiles, profile, frozenset({"orders.read"}))

    status, out, _ = run(capsys, "evict", profile, "--table", broker.table_name)
    assert status == 0
    assert "removed the cached token" in out
    assert "memory copy" in out
    assert broker.item(profiles, profile) == {}
    broker.new_container()  # a container without the memory copy renews it
    assert broker.invoke({"profile": profile}).answer["access_token"] not in (None, cached)


def test_a_refused_credential_is_said_plainly(profiles: Profiles, capsys: pytest.CaptureFixture[str]) -> None:
    import boto3
    from botocore.stub import Stubber

    from broker.wiring import AwsClients

    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    stubber = Stubber(secrets)
    stubber.add_client_error("get_secret_value", "AccessDeniedException", "not authorized", 400)
    clients = AwsClients(dynamodb=None, secretsmanager=secrets, kms=None, awslambda=None)

    with stubber:
        status, _, err = run(capsys, "try", "orders", clients=clients)

    assert status == 1
    assert "cannot read secret token-broker/orders: AccessDeniedException (your credentials lack the permission)" in err


def test_the_console_script_is_installed() -> None:
    import shutil
    import sys

    script = Path(sys.executable).parent / "token-broker-admin"
    assert script.exists() or shutil.which("token-broker-admin")


def test_the_options_work_after_the_command_too(profiles: Profiles, capsys: pytest.CaptureFixture[str]) -> None:
    profile = profiles.create()

    before = run(capsys, "--prefix", profiles.prefix, "key", profile)
    after = run(capsys, "key", profile, "--prefix", profiles.prefix)

    assert before == after
    assert before[0] == 0


def test_the_stack_names_the_table_and_the_secret_prefix(
    broker: Broker, profiles: Profiles, local_aws: LocalAws, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a stack whose parameters and outputs are the broker's, and a cached token
    stack = stack_of(local_aws, secret_prefix=profiles.prefix, table=broker.table_name)
    profile = profiles.create()
    broker.invoke({"profile": profile})

    # When the operator names only the stack
    status, out, err = run(capsys, "evict", profile, "--stack", stack)

    # Then the command found the table and the profile's secret through it
    assert (status, err) == (0, "")
    assert f"removed the cached token of {profile}" in out
    assert broker.table_name in out


def stack_of(local_aws: LocalAws, *, secret_prefix: str, table: str) -> str:
    """A stack with the broker's parameter SecretPrefix and output TokenTableName."""
    template = {
        "Parameters": {"SecretPrefix": {"Type": "String"}, "Table": {"Type": "String"}},
        "Resources": {"Marker": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"TokenTableName": {"Value": {"Ref": "Table"}}},
    }
    name = f"broker-{os.urandom(3).hex()}"
    local_aws.client("cloudformation").create_stack(
        StackName=name,
        TemplateBody=json.dumps(template),
        Parameters=[
            {"ParameterKey": "SecretPrefix", "ParameterValue": secret_prefix},
            {"ParameterKey": "Table", "ParameterValue": table},
        ],
    )
    return name


def test_region_and_endpoint_come_from_the_options(
    profiles: Profiles, local_aws: LocalAws, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = profiles.create()
    for name in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)

    status, _, err = run(capsys, "key", profile)
    assert status == 1
    assert "no AWS region: pass --region, or set AWS_REGION" in err

    status, out, err = run(capsys, "key", profile, "--region", "us-east-1", "--endpoint-url", local_aws.endpoint_url)
    assert (status, err) == (0, "")
    assert len(out.strip()) == 64


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--endpoint-url", "http://127.0.0.1:9"], "cannot reach http://127.0.0.1:9/: check --region, --endpoint-url"),
        (["--profile", "no-such-profile"], "no AWS profile named no-such-profile in your AWS config"),
    ],
)
def test_aws_failures_are_said_in_plain_words_with_the_fix(
    options: list[str], said: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # the words are the test, not botocore's retries (6 s)
    status, out, err = run(capsys, "try", "orders", *options)

    assert (status, out) == (1, "")
    assert said in err
    assert "Error" not in err  # no botocore class names


def test_stdout_holds_only_the_answer(profiles: Profiles, capsys: pytest.CaptureFixture[str]) -> None:
    profile = profiles.create()

    status, out, err = run(capsys, "try", profile)

    assert status == 0
    assert out.count("\n") == 1
    assert out.startswith(f"a Bearer token for {profile}: ")
    assert "_aws" not in out + err  # the metrics of an operator's try are no fleet's


def test_bad_json_is_named_by_line_and_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = tmp_path / "orders.json"
    document.write_text('{\n  "client_id": "orders"\n  "client_secret": "s3cr3t-value"\n}\n')

    status, _, err = run(capsys, "check", str(document))

    assert status == 1
    assert "is not valid JSON: Expecting ',' delimiter at line 3, column 3" in err
    assert "s3cr3t-value" not in err


def test_list_names_every_profile_its_kind_and_callers_and_no_secret(
    profiles: Profiles, local_aws: LocalAws, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"listed-{os.urandom(3).hex()}/"
    callers = ["arn:aws:iam::123456789012:role/orders-*"]
    good = {**profiles.document(profiles.create()), "allowed_callers": callers}
    local_aws.put_profile(prefix + "orders", good)
    local_aws.put_profile(prefix + "broken", {**good, "token_url": "ftp://idp.example.com/token"})

    status, out, _ = run(capsys, "list", "--prefix", prefix)

    assert status == 0
    assert out.splitlines() == [
        "broken  not a valid profile: profile broken: token_url: an absolute http or https URL with a host is required",
        f"orders  client_secret_basic  {callers[0]}",
    ]
    assert good["client_secret"] not in out


def test_delete_schedules_the_secrets_deletion_and_says_how_to_restore_it(
    profiles: Profiles, local_aws: LocalAws, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = profiles.create()
    secret_id = profiles.prefix + profile

    status, out, _ = run(capsys, "delete", profile, "--recovery-days", "7")

    assert status == 0
    assert f"aws secretsmanager restore-secret --secret-id {secret_id}" in out
    assert "DeletedDate" in local_aws.client("secretsmanager").describe_secret(SecretId=secret_id)
    status, _, err = run(capsys, "delete", "no-such-profile")
    assert status == 1
    assert "no secret token-broker/no-such-profile" in err


@pytest.mark.parametrize("name", ["orders+v2", "bad name!", "_hidden", "a" * 129, "ü"])
def test_put_refuses_a_profile_name_no_caller_can_ask_for_naming_the_pattern(
    tmp_path: Path,
    profiles: Profiles,
    auth_server: LocalAuthorizationServer,
    local_aws: LocalAws,
    capsys: pytest.CaptureFixture[str],
    name: str,
) -> None:
    document = profile_file(tmp_path, profiles, auth_server)

    status, _, err = run(capsys, "put", name, str(document))

    assert status == 1
    assert "[A-Za-z0-9][A-Za-z0-9_.-]{0,127}" in err
    names = [s["Name"] for s in local_aws.client("secretsmanager").list_secrets()["SecretList"]]
    assert f"token-broker/{name}" not in names


def test_put_takes_the_private_key_and_certificate_from_pem_files(
    tmp_path: Path,
    broker: Broker,
    profiles: Profiles,
    auth_server: LocalAuthorizationServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a private_key_jwt client, and its key and certificate as PEM files beside the profile
    key = private_key("rsa")
    certificate = certificate_pem(key)
    auth_server.add_client("pem-files-client", auth_method="private_key_jwt", certificate_pem=certificate)
    (tmp_path / "key.pem").write_text(private_pem(key, SECRETS_USED))
    (tmp_path / "cert.pem").write_text(certificate)
    document = tmp_path / "pem-files.json"
    document.write_text(
        json.dumps(
            {
                "token_url": auth_server.token_url,
                "client_id": "pem-files-client",
                "auth_method": "private_key_jwt",
                "allowed_callers": [CONSUMER_ROLE_ARN],
            }
        )
    )
    arguments = ["--private-key-file", str(tmp_path / "key.pem"), "--certificate-file", str(tmp_path / "cert.pem")]

    status, _, err = run(capsys, "put", "pem-files", str(document), *arguments)

    # Then the secret holds them, newlines and all, and the broker gets a token with them
    assert status == 0, err
    stored = profiles.document("pem-files")
    assert stored["private_key"] == (tmp_path / "key.pem").read_text()
    assert stored["certificate"] == certificate
    assert "access_token" in broker.invoke({"profile": "pem-files"}).answer
    # and a document that holds the field already is refused rather than overwritten
    document.write_text(json.dumps({**stored, "certificate": certificate}))
    status, _, err = run(capsys, "put", "pem-files", str(document), "--certificate-file", str(tmp_path / "cert.pem"))
    assert status == 1
    assert "holds certificate already" in err


def deployed_functions(local_aws: LocalAws, stack: str) -> list[str]:
    """The two serving functions as a deploy leaves them in moto: code published as version 1,
    the alias live on it; and the broker's stack, whose outputs name them and the table."""
    import io
    import zipfile

    iam = local_aws.client("iam")
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    role_arn = iam.create_role(RoleName=f"{stack}-role", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    return event\n")
    lambda_client = local_aws.client("lambda")
    functions = []
    for door in ("direct", "http"):
        name = f"{stack}-{door}"
        lambda_client.create_function(
            FunctionName=name,
            Runtime="python3.13",
            Role=role_arn,
            Handler="app.lambda_handler",
            Code={"ZipFile": code.getvalue()},
        )
        lambda_client.create_alias(
            FunctionName=name, Name="live", FunctionVersion=lambda_client.publish_version(FunctionName=name)["Version"]
        )
        functions.append(name)
    return functions


def test_the_runbooks_incident_commands_run_as_written_against_the_local_stack(
    broker: Broker,
    profiles: Profiles,
    local_aws: LocalAws,
    auth_server: LocalAuthorizationServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a broker stack (its table, its two serving functions behind live) and a cached token
    stack = f"tb-incident-{os.urandom(3).hex()}"
    direct, http = deployed_functions(local_aws, stack)
    outputs = {
        "TokenTableName": broker.table_name,
        "TokenBrokerFunctionName": direct,
        "TokenBrokerHttpFunctionName": http,
    }
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    local_aws.client("cloudformation").create_stack(StackName=stack, TemplateBody=json.dumps(template))
    profile = profiles.create()
    assert "access_token" in broker.invoke({"profile": profile}).answer
    assert broker.item(profiles, profile)

    # When the runbook's revocation commands run as written
    runbook = (ROOT / "docs/RUNBOOK.md").read_text()
    section = runbook[runbook.index("**A token leaked**") : runbook.index("## Metrics")]
    commands = [
        command.replace("<profile>", profile).replace("<stack>", stack).replace(" [--scopes …]", "")
        for command in re.findall(r"`token-broker-admin ([^`]+)`", section)
    ]
    assert [command.split()[0] for command in commands] == ["key", "evict", "recycle"]
    for command in commands:
        status, out, err = run(capsys, *command.split(), "--endpoint-url", local_aws.endpoint_url)
        assert status == 0, err

    # Then the token is out of the table, and both functions' live moved to a new version at once
    assert broker.item(profiles, profile).get("sealed_token") is None
    lambda_client = local_aws.client("lambda")
    for function in (direct, http):
        alias = lambda_client.get_alias(FunctionName=function, Name="live")
        assert (alias["FunctionVersion"], alias["RoutingConfig"]) == ("2", {"AdditionalVersionWeights": {}})
        version = lambda_client.get_function_configuration(FunctionName=function, Qualifier="2")
        assert version["Description"].startswith("recycled by token-broker-admin at ")
    assert f"{direct}: live now at version 2 (was 1)" in out


def test_try_a_secretless_profile_asks_sts_at_the_endpoint_url_it_is_given(
    profiles: Profiles,
    local_sts: LocalSts,
    local_aws: LocalAws,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    broker_log: list[logging.LogRecord],
) -> None:
    # Given no STS endpoint in the environment, and --endpoint-url naming moto's server (which
    # serves every AWS API the CLI calls, STS included, but has no GetWebIdentityToken)
    monkeypatch.delenv("AWS_ENDPOINT_URL_STS", raising=False)
    profile = profiles.create_web_identity()

    status, _, err = run(capsys, "try", profile, "--endpoint-url", local_aws.endpoint_url)

    # Then STS was asked there: moto answered (AWS's STS, unreachable from here, would not have)
    assert status == 1
    assert "GetWebIdentityToken" in err
    (asked,) = [r for r in broker_log if r.getMessage() == "STS refused GetWebIdentityToken"]
    assert asked.__dict__["status"] is not None  # an answer, not an unreachable endpoint
    assert local_sts.web_identity_requests == []


def test_try_against_a_host_that_does_not_resolve_says_so(
    tmp_path: Path, profiles: Profiles, auth_server: LocalAuthorizationServer, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = profiles.create()
    profiles.put(profile, {**profiles.document(profile), "token_url": "https://idp.does-not-resolve.invalid/token"})

    status, _, err = run(capsys, "try", profile)

    assert status == 1
    assert "upstream_unavailable: the token URL's host name does not resolve." in err
