"""The SAM template: linted by the real tools, and read for the rules the broker depends on."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devstack.template import ROOT, load_template

BIN = Path(sys.executable).parent
TEMPLATE = load_template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]


def run_tool(*command: str) -> subprocess.CompletedProcess[str]:
    executable = BIN / command[0]
    assert executable.exists() or shutil.which(command[0]), f"{command[0]} is not installed"
    return subprocess.run(
        [str(executable) if executable.exists() else command[0], *command[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"},
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    "command",
    [("cfn-lint", "template.yaml"), ("sam", "validate", "--lint"), ("sam", "validate", "--region", "us-east-1")],
    ids=["cfn-lint", "sam-validate-lint", "sam-validate"],
)
def test_the_template_passes_the_linters(command: tuple[str, ...]) -> None:
    result = run_tool(*command)
    assert result.returncode == 0, result.stdout + result.stderr


BROKER_FUNCTIONS = ("TokenBrokerFunction", "TokenBrokerHttpFunction")


def test_the_functions_are_wired_as_the_contract_names_them() -> None:
    direct = RESOURCES["TokenBrokerFunction"]["Properties"]
    http = RESOURCES["TokenBrokerHttpFunction"]["Properties"]
    globals_ = TEMPLATE["Globals"]["Function"]
    assert direct["CodeUri"] == http["CodeUri"] == "functions/token_broker/"
    assert (direct["Handler"], http["Handler"]) == ("app.lambda_handler", "app.http_handler")
    assert "Events" not in direct  # nothing but consumers with the invoke policy reaches it
    assert globals_["Runtime"] == "python3.13"
    assert globals_["Architectures"] == ["arm64"]
    assert globals_["Tracing"] == "Active"
    assert direct["Environment"] == http["Environment"]
    variables = direct["Environment"]["Variables"]
    assert variables["TOKEN_TABLE_NAME"] == {"Ref": "TokenTable"}
    assert variables["CALLER_AUTH"] == {"Ref": "CallerAuth"}
    assert TEMPLATE["Parameters"]["CallerAuth"]["Default"] == "enforce"


def test_the_table_is_on_demand_with_ttl() -> None:
    table = RESOURCES["TokenTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"]["Enabled"] is True


def test_permissions_are_least_privilege() -> None:
    for name in BROKER_FUNCTIONS:
        assert RESOURCES[name]["Properties"]["Policies"] == [{"Ref": "BrokerAccessPolicy"}], name
    statements = RESOURCES["BrokerAccessPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    by_sid = {statement["Sid"]: statement for statement in statements}
    for statement in statements:
        assert statement["Resource"] != "*"
        assert "*" not in str(statement["Action"])
    secrets = by_sid["ReadProfileSecrets"]
    assert secrets["Action"] == "secretsmanager:GetSecretValue"
    assert "${SecretPrefix}*" in secrets["Resource"]["Fn::Sub"]
    table = by_sid["UseTokenCache"]
    assert sorted(table["Action"]) == ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    assert table["Resource"] == {"Fn::GetAtt": ["TokenTable", "Arn"]}


def test_logs_have_an_explicit_group_with_retention() -> None:
    assert RESOURCES["TokenBrokerLogGroup"]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    for name in BROKER_FUNCTIONS:
        logging_config = RESOURCES[name]["Properties"]["LoggingConfig"]
        assert logging_config["LogGroup"] == {"Ref": "TokenBrokerLogGroup"}


def test_the_http_route_requires_iam_auth_and_logs_no_bodies() -> None:
    api = RESOURCES["TokenApi"]
    assert api["Type"] == "AWS::Serverless::HttpApi"
    assert api["Properties"]["Auth"]["EnableIamAuthorizer"] is True
    (event,) = RESOURCES["TokenBrokerHttpFunction"]["Properties"]["Events"].values()
    assert event["Type"] == "HttpApi"
    route = event["Properties"]
    assert (route["Method"], route["Path"], route["PayloadFormatVersion"]) == ("POST", "/token", "2.0")
    assert route["Auth"]["Authorizer"] == "AWS_IAM"
    access_log = api["Properties"]["AccessLogSettings"]["Format"]
    assert "requestBody" not in access_log
    assert "responseBody" not in access_log
    assert "TokenApiUrl" in TEMPLATE["Outputs"]


def test_only_the_broker_role_may_use_the_cache_key_and_only_with_its_context() -> None:
    from broker.token_sealer import ENCRYPTION_CONTEXT

    statements = RESOURCES["TokenCacheKey"]["Properties"]["KeyPolicy"]["Statement"]
    usage = {"kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt", "kms:*"}
    users = [statement for statement in statements if usage & set(statement["Action"])]
    assert len(users) == 1
    (user,) = users
    assert user["Principal"] == {"AWS": [{"Fn::GetAtt": [f"{name}Role", "Arn"]} for name in BROKER_FUNCTIONS]}
    assert sorted(user["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    context = {key.split(":")[-1]: value for key, value in user["Condition"]["StringEquals"].items()}
    assert context == ENCRYPTION_CONTEXT
    for name in BROKER_FUNCTIONS:
        variables = RESOURCES[name]["Properties"]["Environment"]["Variables"]
        assert variables["TOKEN_KMS_KEY_ID"] == {"Fn::GetAtt": ["TokenCacheKey", "Arn"]}


KEY_USE = {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom", "kms:ReEncryptTo"}


def key_policy_problems(statements: list[dict[str, Any]]) -> list[str]:
    """What in a key policy would let someone but the broker use the key, or grant its use:
    the account root (every IAM admin), a wildcard action (kms:*, kms:Create* covers CreateGrant,
    kms:Put* covers PutKeyPolicy's siblings), CreateGrant, or a use by anyone but the broker."""
    problems = []
    for statement in statements:
        principal, actions = str(statement["Principal"]), statement["Action"]
        broker = statement["Sid"] == "BrokerSealsAndOpensCachedTokens"
        if ":root" in principal:
            problems.append(f"{statement['Sid']}: the account root")
        problems += [f"{statement['Sid']}: {action}" for action in actions if "*" in action]
        problems += [f"{statement['Sid']}: {action}" for action in actions if action == "kms:CreateGrant"]
        problems += [f"{statement['Sid']}: {action}" for action in actions if action in KEY_USE and not broker]
    return problems


def test_the_key_is_administered_by_the_deploy_role_without_a_self_grant_path() -> None:
    statements = RESOURCES["TokenCacheKey"]["Properties"]["KeyPolicy"]["Statement"]
    assert key_policy_problems(statements) == []
    (admin,) = [statement for statement in statements if statement["Sid"].startswith("DeployRole")]
    assert "KeyAdministratorRoleName" in str(admin["Principal"])


@pytest.mark.parametrize("action", ["kms:*", "kms:Create*", "kms:Put*", "kms:CreateGrant", "kms:Decrypt"])
def test_a_self_grant_path_in_the_key_policy_is_caught(action: str) -> None:
    statements = copy.deepcopy(RESOURCES["TokenCacheKey"]["Properties"]["KeyPolicy"]["Statement"])
    statements[0]["Action"].append(action)
    assert key_policy_problems(statements) != []


def test_consumers_get_a_layer_invoke_policies_and_parameters_that_never_block_a_deploy() -> None:
    layer = RESOURCES["TokenClientLayer"]["Properties"]
    assert layer["ContentUri"] == "layers/token_client"
    assert layer["CompatibleRuntimes"] == ["python3.10", "python3.11", "python3.12", "python3.13"]
    (statement,) = RESOURCES["TokenBrokerInvokePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "lambda:InvokeFunction"
    assert statement["Resource"] == {"Fn::GetAtt": ["TokenBrokerFunction", "Arn"]}  # never the HTTP function
    (route,) = RESOURCES["TokenApiInvokePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert route["Action"] == "execute-api:Invoke"
    assert route["Resource"]["Fn::Sub"].endswith("${TokenApi}/*/POST/token")
    # the layer's version changes with every client change: consumers resolve a parameter, and
    # no export of it can be imported (CloudFormation would then refuse the broker's own deploy)
    outputs = TEMPLATE["Outputs"]
    assert "Export" not in outputs["TokenClientLayerArn"]
    assert RESOURCES["TokenClientLayerParameter"]["Properties"]["Value"] == {"Ref": "TokenClientLayer"}
    function_parameter = RESOURCES["TokenBrokerFunctionParameter"]["Properties"]["Value"]
    assert function_parameter == {"Fn::GetAtt": ["TokenBrokerFunction", "Arn"]}
    for name in ("TokenClientLayerParameterName", "TokenBrokerFunctionParameterName", "TokenApiInvokePolicyArn"):
        assert name in outputs
    # sharing with an organization is opt-in, and names the direct function only
    shared = [
        r for r in RESOURCES.values() if r["Type"] in ("AWS::Lambda::Permission", "AWS::Lambda::LayerVersionPermission")
    ]
    assert len(shared) == 2
    for resource in shared:
        assert resource["Condition"] == "SharedWithOrganization"
    permission = RESOURCES["TokenBrokerOrganizationPermission"]["Properties"]
    assert permission["FunctionName"] == {"Fn::GetAtt": ["TokenBrokerFunction", "Arn"]}
    assert permission["PrincipalOrgID"] == {"Ref": "ShareWithOrganization"}
    assert RESOURCES["ExampleConsumerFunction"]["Condition"] == "WithExampleConsumer"


def test_alarms_watch_what_operators_must_hear_of_and_notify_the_optional_topic() -> None:
    alarms = {name: r["Properties"] for name, r in RESOURCES.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    watched = {(a["Namespace"], a["MetricName"]) for a in alarms.values()}
    assert watched >= {
        ("TokenBroker", "TokenRequestFailures"),
        ("TokenBroker", "ErrorAnswers"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
    }
    upstream = alarms["UpstreamUnavailableAlarm"]["Dimensions"]
    assert {"Name": "error", "Value": "upstream_unavailable"} in upstream
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == {
            "Fn::If": ["WithAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
        }
        assert alarm["TreatMissingData"] == "notBreaching"


def test_the_metric_names_alarms_watch_are_the_ones_the_broker_emits() -> None:
    source = (ROOT / "functions/token_broker/broker/observability.py").read_text()
    for alarm in RESOURCES.values():
        if alarm["Type"] == "AWS::CloudWatch::Alarm" and alarm["Properties"]["Namespace"] == "TokenBroker":
            assert f'"{alarm["Properties"]["MetricName"]}"' in source
    assert TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"] == "TokenBroker"


def test_parameters_have_allowed_values() -> None:
    parameters = TEMPLATE["Parameters"]
    for name in ("Stage", "LogLevel", "LogRetentionDays"):
        assert parameters[name]["AllowedValues"], name
    for name in ("SecretPrefix", "AlarmTopicArn"):
        assert parameters[name]["AllowedPattern"], name


def test_lambdas_log_filter_agrees_with_powertools_level() -> None:
    assert TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
    for name in BROKER_FUNCTIONS:
        logging_config = RESOURCES[name]["Properties"]["LoggingConfig"]
        assert logging_config["LogFormat"] == "JSON"
        assert logging_config["ApplicationLogLevel"] == {"Ref": "LogLevel"}
