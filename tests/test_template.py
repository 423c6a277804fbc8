"""The SAM template: linted by the real tools, and read for the rules the broker depends on."""

from __future__ import annotations

import copy
import json
import os
import re
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


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [("cfn-lint", "template.yaml"), ("sam", "validate", "--lint"), ("sam", "validate", "--region", "us-east-1")],
    ids=["cfn-lint", "sam-validate-lint", "sam-validate"],
)
def test_the_template_passes_the_linters(command: tuple[str, ...]) -> None:
    result = run_tool(*command)
    assert result.returncode == 0, result.stdout + result.stderr


SERVING_FUNCTIONS = ("TokenBrokerFunction", "TokenBrokerHttpFunction")  # the two doors
BROKER_FUNCTIONS = (*SERVING_FUNCTIONS, "TokenRenewalFunction")


def test_the_functions_are_wired_as_the_contract_names_them() -> None:
    direct = RESOURCES["TokenBrokerFunction"]["Properties"]
    http = RESOURCES["TokenBrokerHttpFunction"]["Properties"]
    renewal = RESOURCES["TokenRenewalFunction"]["Properties"]
    globals_ = TEMPLATE["Globals"]["Function"]
    assert direct["CodeUri"] == http["CodeUri"] == renewal["CodeUri"] == "functions/token_broker/"
    handlers = (direct["Handler"], http["Handler"], renewal["Handler"])
    assert handlers == ("app.lambda_handler", "app.http_handler", "app.renewal_handler")
    assert "Events" not in direct  # nothing but consumers with the invoke policy reaches it
    assert "Events" not in renewal  # nothing but the broker's own functions reaches it
    assert globals_["Runtime"] == "python3.13"
    assert globals_["Architectures"] == ["arm64"]
    assert globals_["Tracing"] == "Active"
    variables = direct["Environment"]["Variables"]
    # the HTTP function's proofs name the direct function: one audience on both doors
    assert http["Environment"]["Variables"] == {
        **variables,
        "BROKER_AUDIENCE": {"Fn::GetAtt": ["TokenBrokerFunction", "Arn"]},
    }
    assert variables["TOKEN_TABLE_NAME"] == {"Ref": "TokenTable"}
    assert variables["CALLER_AUTH"] == {"Ref": "CallerAuth"}
    assert TEMPLATE["Parameters"]["CallerAuth"]["Default"] == "enforce"
    # both doors hand renewals ahead of expiry to the renewal function's alias, which has the
    # cache's settings and no callers to admit
    assert variables["RENEWAL_FUNCTION"] == {"Ref": "TokenRenewalFunction.Alias"}
    assert renewal["Environment"]["Variables"] == {
        name: variables[name] for name in ("TOKEN_TABLE_NAME", "SECRET_PREFIX", "TOKEN_KMS_KEY_ID")
    }


def test_only_the_brokers_functions_may_hand_renewals_over_and_none_is_retried() -> None:
    (statement,) = RESOURCES["HandOffRenewalPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert (statement["Action"], statement["Resource"]) == (
        "lambda:InvokeFunction",
        {"Ref": "TokenRenewalFunction.Alias"},
    )
    holders = [
        name
        for name, resource in RESOURCES.items()
        if {"Ref": "HandOffRenewalPolicy"} in resource.get("Properties", {}).get("Policies", [])
    ]
    assert holders == list(SERVING_FUNCTIONS)
    permissions = [r["Properties"] for r in RESOURCES.values() if r["Type"] == "AWS::Lambda::Permission"]
    assert all("TokenRenewalFunction" not in str(permission["FunctionName"]) for permission in permissions)
    # a renewal that cannot run at once is not worth running later: its lease lapses
    invoke_config = RESOURCES["TokenRenewalFunction"]["Properties"]["EventInvokeConfig"]
    assert invoke_config == {"MaximumEventAgeInSeconds": 60, "MaximumRetryAttempts": 0}


def test_the_table_is_on_demand_with_ttl() -> None:
    table = RESOURCES["TokenTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"]["Enabled"] is True


def test_permissions_are_least_privilege() -> None:
    for name in BROKER_FUNCTIONS:
        assert RESOURCES[name]["Properties"]["Policies"][0] == {"Ref": "BrokerAccessPolicy"}, name
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
    # the route's callers are told where to send and whom their caller proofs are for
    outputs = TEMPLATE["Outputs"]
    assert outputs["TokenBrokerAudience"]["Value"] == {"Fn::GetAtt": ["TokenBrokerFunction", "Arn"]}
    assert "TokenApiUrl" in outputs
    parameters = {
        RESOURCES[name]["Properties"]["Name"]["Fn::Sub"]: RESOURCES[name]["Properties"]["Value"]
        for name in ("TokenApiUrlParameter", "TokenBrokerAudienceParameter")
    }
    assert parameters["/${AWS::StackName}/audience"] == outputs["TokenBrokerAudience"]["Value"]
    assert parameters["/${AWS::StackName}/api-url"] == outputs["TokenApiUrl"]["Value"]


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
    """What in a key policy would let someone but the broker use the key, or grant its use, short
    of rewriting the policy: a wildcard action (kms:*, kms:Create* covers CreateGrant, kms:Put*
    covers PutKeyPolicy's siblings), CreateGrant, or a use by anyone but the broker. The account
    root may administer the key (so it outlives any one administrator), never use it."""
    problems = []
    for statement in statements:
        actions = statement["Action"]
        broker = statement["Sid"] == "BrokerSealsAndOpensCachedTokens"
        problems += [f"{statement['Sid']}: {action}" for action in actions if "*" in action]
        problems += [f"{statement['Sid']}: {action}" for action in actions if action == "kms:CreateGrant"]
        problems += [f"{statement['Sid']}: {action}" for action in actions if action in KEY_USE and not broker]
    return problems


def test_the_key_outlives_its_administrators_and_neither_they_nor_the_account_may_use_it() -> None:
    statements = RESOURCES["TokenCacheKey"]["Properties"]["KeyPolicy"]["Statement"]
    assert key_policy_problems(statements) == []
    (admin,) = [statement for statement in statements if statement["Sid"].startswith("AdministeredBy")]
    root, deploy_role = admin["Principal"]["AWS"]
    assert root == {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}  # never stranded
    assert "KeyAdministratorRoleName" in str(deploy_role)
    assert "kms:ScheduleKeyDeletion" in admin["Action"]
    assert "kms:PutKeyPolicy" in admin["Action"]  # the one deliberate way to use it, as the comment says


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
    assert statement["Resource"] == {
        "Ref": "TokenBrokerFunction.Alias"
    }  # the alias: never $LATEST or the HTTP function
    (route,) = RESOURCES["TokenApiInvokePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert route["Action"] == "execute-api:Invoke"
    assert route["Resource"]["Fn::Sub"].endswith("${TokenApi}/*/POST/token")
    # the layer's version changes with every client change: consumers resolve a parameter, and
    # no export of it can be imported (CloudFormation would then refuse the broker's own deploy)
    outputs = TEMPLATE["Outputs"]
    assert "Export" not in outputs["TokenClientLayerArn"]
    assert RESOURCES["TokenClientLayerParameter"]["Properties"]["Value"] == {"Ref": "TokenClientLayer"}
    function_parameter = RESOURCES["TokenBrokerFunctionParameter"]["Properties"]["Value"]
    assert function_parameter == {"Ref": "TokenBrokerFunction.Alias"}
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
    assert permission["FunctionName"] == {"Ref": "TokenBrokerFunction.Alias"}
    assert permission["PrincipalOrgID"] == {"Ref": "ShareWithOrganization"}
    assert RESOURCES["ExampleConsumerFunction"]["Condition"] == "WithExampleConsumer"


ALARMS = {name: r["Properties"] for name, r in RESOURCES.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
# Alarms on events rare and grave enough that one bad minute must page.
AT_ONCE = {"FunctionErrorsAlarm", "HttpFunctionErrorsAlarm", "InternalErrorsAlarm"}


def test_alarms_watch_what_the_broker_exists_for_and_need_more_than_one_bad_datapoint() -> None:
    watched = {(alarm.get("Namespace"), alarm.get("MetricName")) for alarm in ALARMS.values()}
    assert watched >= {
        ("TokenBroker", "TokenFetchFailures"),
        ("TokenBroker", "TokenRefusals"),
        ("TokenBroker", "ErrorAnswers"),
        ("TokenBroker", "CacheUnavailable"),
        ("TokenBroker", "CacheThrottled"),
        ("TokenBroker", "KmsUnavailable"),
        ("TokenBroker", "UnreadableCacheItem"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Duration"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/ApiGateway", "5xx"),
    }
    # the rate against the quota, and the hit ratio, are metric math
    expressions = {name: alarm["Metrics"][0]["Expression"] for name, alarm in ALARMS.items() if "Metrics" in alarm}
    assert "TokenRequestQuotaPerMinute" in str(expressions["TokenRequestRateAlarm"])
    assert "memory + table" in expressions["CacheHitRatioAlarm"]
    for name, alarm in ALARMS.items():
        assert alarm["TreatMissingData"] == "notBreaching", name
        assert alarm["DatapointsToAlarm"] <= alarm["EvaluationPeriods"], name
        if name not in AT_ONCE:
            assert alarm["DatapointsToAlarm"] >= 2, f"{name} fires on one datapoint"
    # one timed-out waiter is no outage
    assert ALARMS["UpstreamUnavailableAlarm"]["Threshold"] >= 5
    assert ALARMS["DurationAlarm"]["ExtendedStatistic"] == "p99"


def test_alarms_notify_the_stacks_own_topic_unless_another_is_named() -> None:
    actions = [{"Fn::If": ["OwnAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}]
    for name, alarm in ALARMS.items():
        assert alarm["AlarmActions"] == actions, name
        assert alarm["OKActions"] == actions, name
    assert RESOURCES["AlarmTopic"]["Condition"] == "OwnAlarmTopic"
    assert RESOURCES["AlarmEmailSubscription"]["Condition"] == "AlarmByEmail"
    assert RESOURCES["AlarmEmailSubscription"]["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}


def test_alarm_notifications_can_reach_the_topic() -> None:
    """CloudWatch cannot publish to a topic encrypted with alias/aws/sns: the stack's own topic is
    not encrypted at rest, with the reason written down."""
    topic = RESOURCES["AlarmTopic"]
    assert "KmsMasterKeyId" not in topic["Properties"]
    (skip,) = topic["Metadata"]["checkov"]["skip"]
    assert skip["id"] == "CKV_AWS_26"
    assert "alias/aws/sns" in skip["comment"]
    topics = [r["Properties"] for r in RESOURCES.values() if r["Type"] == "AWS::SNS::Topic"]
    assert all(topic.get("KmsMasterKeyId") != "alias/aws/sns" for topic in topics)


def test_each_stack_watches_only_its_own_metrics() -> None:
    """dev and prod in one account: each stack's metrics carry its own name as `service`, and its
    alarms and dashboard read only those."""
    own = {"Ref": "AWS::StackName"}
    assert TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == own
    for name, alarm in ALARMS.items():
        stats = [alarm] + [query["MetricStat"]["Metric"] for query in alarm.get("Metrics", []) if "MetricStat" in query]
        for metric in stats:
            for dimension in metric.get("Dimensions", []):
                if dimension["Name"] == "service":
                    assert dimension["Value"] == own, name
    body = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert '"service", "token-broker"' not in body
    assert body.count('"service", "${AWS::StackName}"') >= 10
    searches = re.findall(r"SEARCH\('([^']+)'", body)
    assert searches
    assert all('service=\\"${AWS::StackName}\\"' in search for search in searches), searches


def samconfig_overrides(environment: str) -> dict[str, str]:
    import tomllib

    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    pairs = config[environment]["deploy"]["parameters"]["parameter_overrides"].split()
    return dict(pair.split("=", 1) for pair in pairs)


def test_a_prod_stack_whose_alarms_reach_nobody_is_refused() -> None:
    rule = TEMPLATE["Rules"]["ProdAlarmsReachSomeone"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "Stage"}, "prod"]}
    (assertion,) = rule["Assertions"]
    assert {"Ref": "AlarmEmail"} in [part["Fn::Not"][0]["Fn::Equals"][0] for part in assertion["Assert"]["Fn::Or"]]
    assert {"Ref": "AlarmTopicArn"} in [part["Fn::Not"][0]["Fn::Equals"][0] for part in assertion["Assert"]["Fn::Or"]]
    # samconfig's prod holds no placeholder: a first prod deploy stops until someone names a destination
    prod = samconfig_overrides("prod")
    assert prod["Stage"] == "prod"
    pattern = TEMPLATE["Parameters"]["AlarmEmail"]["AllowedPattern"]
    assert prod.get("AlarmEmail", "") == "" or re.fullmatch(pattern, prod["AlarmEmail"])


@pytest.mark.parametrize(
    ("address", "taken"),
    [
        ("oncall@acme.io", True),
        ("", True),
        ("token-broker-oncall@example.com", False),
        ("oncall@mail.example.org", False),
        ("oncall@broker.test", False),
        ("not-an-address", False),
    ],
)
def test_an_alarm_address_at_a_domain_kept_for_examples_is_refused(address: str, taken: bool) -> None:
    pattern = TEMPLATE["Parameters"]["AlarmEmail"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, address)) is taken


def documented_parameters(heading: str) -> set[str]:
    """The parameters the runbook's table under `heading` names."""
    runbook = (ROOT / "docs/RUNBOOK.md").read_text()
    section = runbook.split(heading, 1)[1].split("\n\n|", 1)[1].split("\n\n", 1)[0]
    return {name for row in section.splitlines() for name in re.findall(r"`([A-Za-z]+)`", row.split("|")[1])}


def test_every_parameter_is_documented() -> None:
    assert set(TEMPLATE["Parameters"]) <= documented_parameters("### The application stack's parameters")
    bootstrap = load_template(ROOT / "bootstrap.yaml")["Parameters"]
    assert set(bootstrap) <= documented_parameters("**1. The bootstrap")
    assert "replaces the environment's whole" in (ROOT / "docs/RUNBOOK.md").read_text()


def test_every_deploy_is_a_canary_rolled_back_by_the_brokers_own_alarms() -> None:
    for name in SERVING_FUNCTIONS:
        properties = RESOURCES[name]["Properties"]
        assert properties["AutoPublishAlias"] == "live"
        preference = properties["DeploymentPreference"]
        assert preference["Type"].startswith("Canary")
        rollback = [alarm["Ref"] for alarm in preference["Alarms"]]
        assert rollback
        for alarm in rollback:
            assert RESOURCES[alarm]["Type"] == "AWS::CloudWatch::Alarm", alarm
    assert TEMPLATE["Outputs"]["TokenBrokerAliasArn"]["Value"] == {"Ref": "TokenBrokerFunction.Alias"}
    example = RESOURCES["ExampleConsumerFunction"]["Properties"]["Environment"]["Variables"]
    assert example["TOKEN_BROKER_FUNCTION"] == {"Ref": "TokenBrokerFunction.Alias"}  # an ARN, never a name


def metrics_plotted(body: dict[str, Any]) -> set[tuple[str, str, tuple[str, ...]]]:
    """(namespace, metric, dimension names) of every metric a dashboard body draws, its SEARCH
    expressions included."""
    plotted = set()
    search = re.compile(r"\{([^}]+)\} MetricName=\"([^\"]+)\"")
    for widget in body["widgets"]:
        for line in widget["properties"]["metrics"]:
            if isinstance(line[0], dict):
                for found in search.finditer(line[0].get("expression", "")):
                    namespace, *dimensions = found.group(1).split(",")
                    plotted.add((namespace, found.group(2), tuple(sorted(dimensions))))
                continue
            fields = [field for field in line if isinstance(field, str)]
            namespace, metric, pairs = fields[0], fields[1], fields[2:]
            plotted.add((namespace, metric, tuple(sorted(pairs[0::2]))))
    return plotted


def test_the_dashboard_and_the_alarms_plot_only_metrics_the_broker_emits() -> None:
    from broker.observability import EMITTED, NAMESPACE

    source = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    body = json.loads(re.sub(r"\$\{[^}]+\}", "1", source))
    plotted = metrics_plotted(body)
    for alarm in ALARMS.values():
        stats = [alarm] + [query["MetricStat"]["Metric"] for query in alarm.get("Metrics", []) if "MetricStat" in query]
        for metric in stats:
            if "MetricName" in metric:
                names = tuple(sorted(dimension["Name"] for dimension in metric["Dimensions"]))
                plotted.add((metric["Namespace"], metric["MetricName"], names))
    ours = {entry for entry in plotted if entry[0] == NAMESPACE}
    assert ours
    for _, metric, dimensions in ours:
        assert EMITTED.get(metric) == dimensions, (metric, dimensions)
    # and the dashboard shows what operators asked for
    names = {metric for _, metric, _ in plotted}
    assert names >= {"TokenRequestsByProfile", "MemoryHit", "ErrorAnswers", "Duration", "Throttles", "4xx", "5xx"}
    assert TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE


def test_parameters_have_allowed_values() -> None:
    parameters = TEMPLATE["Parameters"]
    for name in ("Stage", "LogLevel", "LogRetentionDays"):
        assert parameters[name]["AllowedValues"], name
    for name in ("SecretPrefix", "AlarmTopicArn"):
        assert parameters[name]["AllowedPattern"], name


def test_lambdas_log_filter_never_drops_the_metrics() -> None:
    """Powertools filters by LogLevel. Lambda's filter takes a JSON line without `level` (every
    EMF document the broker writes on its own) as INFO: above INFO it would drop the metrics."""
    assert TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
    assert TEMPLATE["Conditions"]["DebugLogs"] == {"Fn::Equals": [{"Ref": "LogLevel"}, "DEBUG"]}
    for name in BROKER_FUNCTIONS:
        logging_config = RESOURCES[name]["Properties"]["LoggingConfig"]
        assert logging_config["LogFormat"] == "JSON"
        assert logging_config["ApplicationLogLevel"] == {"Fn::If": ["DebugLogs", "DEBUG", "INFO"]}


# The attack of a secret writer: a profile whose secret names another profile's role.
BROKER_ROLE = "arn:aws:iam::123456789012:role/tb-dev-TokenBrokerFunctionRole-ABC"


def assume(role: str, tags: dict[str, str]) -> list[Any]:
    from devstack.deploy.iam import Request

    context = {"aws:TagKeys": list(tags), **{f"aws:RequestTag/{key}": value for key, value in tags.items()}}
    return [Request(action, role, context) for action in ("sts:AssumeRole", "sts:TagSession")]


def profile_role(stack: str, profile: str) -> Any:
    from devstack.deploy.iam import resolved

    document = load_template(ROOT / "docs" / "profile-role.yaml")
    values = {
        "BrokerStackName": stack,
        "ProfileName": profile,
        "BrokerRoleArns": [BROKER_ROLE],
        "AssertionAudience": "api://AzureADTokenExchange",
        "AWS::Partition": "aws",
    }
    return resolved(document["Resources"]["ProfileRole"]["Properties"], values, {})


def broker_role_policy(stack: str) -> Any:
    from devstack.deploy.iam import resolved

    values = {"AWS::Partition": "aws", "AWS::AccountId": "123456789012", "AWS::StackName": stack}
    statements = RESOURCES["ProfileRolesPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    return resolved(statements, values, {})


@pytest.mark.parametrize(
    ("role", "tags", "allowed"),
    [
        ("role/token-broker-profiles/tb-dev/orders", {"token-broker-profile": "orders"}, True),
        ("role/token-broker-profiles/tb-dev/orders", {}, False),
        ("role/token-broker-profiles/tb-dev/orders", {"token-broker-profile": "orders", "team": "x"}, False),
        ("role/token-broker-profiles/tb-dev-prod/orders", {"token-broker-profile": "orders"}, False),
        ("role/token-broker-profiles/orders", {"token-broker-profile": "orders"}, False),
        ("role/admin", {"token-broker-profile": "orders"}, False),
    ],
    ids=["its-path-tagged", "untagged", "another-tag", "a-longer-stack-name", "no-stack", "any-other-role"],
)
def test_the_brokers_roles_assume_only_profile_roles_of_their_stack_and_only_tagged(
    role: str, tags: dict[str, str], allowed: bool
) -> None:
    from devstack.deploy.iam import allows

    policy = broker_role_policy("tb-dev")
    assert RESOURCES["ProfileRolesPolicy"]["Properties"]["Roles"] == [{"Ref": f"{n}Role"} for n in BROKER_FUNCTIONS]
    requests = assume(f"arn:aws:iam::123456789012:{role}", tags)
    assert [allows(policy, request) for request in requests] == [allowed, allowed]


@pytest.mark.parametrize(
    ("principal", "tag", "allowed"),
    [
        (BROKER_ROLE, "orders", True),
        (BROKER_ROLE, "billing", False),
        ("arn:aws:iam::123456789012:role/x", "orders", False),
    ],
    ids=["the-broker-for-its-profile", "the-broker-for-another-profile", "anyone-else"],
)
def test_a_profile_role_trusts_the_broker_only_for_its_own_profile(principal: str, tag: str, allowed: bool) -> None:
    from devstack.deploy.iam import allows

    # Given the role of profile "orders", named by a secret writer from profile "billing" too
    trust = profile_role("tb-dev", "orders")["AssumeRolePolicyDocument"]["Statement"]
    requests = assume("*", {"token-broker-profile": tag})

    assert [allows(trust, request, principal) for request in requests] == [allowed, allowed]


def test_a_profile_role_gets_five_minute_web_identity_tokens_for_its_audience_only() -> None:
    from broker.client_auth.web_identity import ASSERTION_ALGORITHMS
    from broker.sts import WEB_IDENTITY_SECONDS
    from devstack.deploy.iam import Request, allows

    role = profile_role("tb-dev", "orders")
    assert role["Path"] == "/token-broker-profiles/tb-dev/"
    (policy,) = role["Policies"]
    statements = policy["PolicyDocument"]["Statement"]

    def asks(audiences: list[str], seconds: int, algorithm: str) -> bool:
        context = {
            "sts:IdentityTokenAudience": audiences,
            "sts:DurationSeconds": str(seconds),
            "sts:SigningAlgorithm": algorithm,
        }
        return allows(statements, Request("sts:GetWebIdentityToken", "*", context))

    audience = ["api://AzureADTokenExchange"]
    assert all(asks(audience, WEB_IDENTITY_SECONDS, algorithm) for algorithm in ASSERTION_ALGORITHMS)
    assert not asks([*audience, "https://attacker.example"], WEB_IDENTITY_SECONDS, "RS256")
    assert not asks(audience, WEB_IDENTITY_SECONDS + 1, "RS256")
    assert not asks(audience, WEB_IDENTITY_SECONDS, "HS256")
    # and the template says where such roles are made
    path = TEMPLATE["Outputs"]["ProfileRolePath"]["Value"]
    assert path == {"Fn::Sub": "/token-broker-profiles/${AWS::StackName}/"}


def test_the_table_the_template_defines_has_the_key_and_ttl_the_broker_names() -> None:
    from broker.token_store import Attribute
    from devstack.template import table_definition, ttl_attribute

    ((key,),) = [[schema["AttributeName"] for schema in table_definition()["KeySchema"]]]
    assert (key, ttl_attribute()) == (Attribute.KEY, Attribute.TTL)
