"""A first deploy in a real account, checked against AWS's published rules where no account can be
had: the deploy policy of bootstrap.yaml against every permission CloudFormation's handlers list
for every resource of the transformed template (and what sam deploy, HTTP API access logs and
the smoke test need), the key policy against the key's handlers, and the boundary that keeps
every role the stack creates to what the broker needs."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import pytest

from broker.sts import PROFILE_TAG
from devstack.deploy.bootstrap import bootstrap_policies, bootstrap_values
from devstack.deploy.deployment import (
    BOUNDARY,
    DEPLOY_ROLE,
    STACK,
    STACK_TAG,
    SUFFIX,
    UNUSED,
    Need,
    application_values,
    key_policy,
    needs,
    transformed,
)
from devstack.deploy.iam import ACCOUNT, PARTITION, REGION, Request, acts_on, allows, known_action, like, resolved
from devstack.template import ROOT, load_template
from devstack.template import TEMPLATE as TEMPLATE_PATH


@cache
def all_needs() -> tuple[Need, ...]:
    return tuple(needs())


@cache
def the_template() -> dict[str, Any]:
    return transformed()


@cache
def deploy_policy() -> list[dict[str, Any]]:
    return bootstrap_policies()["DeployPolicy"]


@cache
def the_key_policy() -> list[dict[str, Any]]:
    return key_policy()


def allowed(need: Need) -> bool:
    request = Request(need.action, need.resource, need.context)
    if need.key_policy:
        return allows(the_key_policy(), request, principal=DEPLOY_ROLE)
    return allows(deploy_policy(), request)


def test_every_request_a_deploy_makes_is_allowed() -> None:
    found = all_needs()
    assert len({need.why for need in found}) > 60  # every resource of the stack, and the deploy's own steps
    refused = sorted({f"{need.why}: {need.action} on {need.resource}" for need in found if not allowed(need)})
    assert refused == []


def test_every_permission_is_a_real_iam_action() -> None:
    assert sorted({need.action for need in all_needs() if not known_action(need.action)}) == []


def test_the_deploy_policy_grants_nothing_a_deploy_does_not_need() -> None:
    needed = {need.action.lower() for need in all_needs()}
    surplus = [
        (statement["Sid"], action)
        for statement in deploy_policy()
        if statement["Effect"] == "Allow"
        for action in listed(statement["Action"])
        if action.lower() not in needed
    ]
    assert surplus == []


def listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


# Resources that are the stack's without holding its name: AWS's own (the SAM transform, CodeDeploy's
# deployment configurations), the route of an API whose id no policy can know beforehand, and the
# list of the account's HTTP APIs (a read: CloudFormation looks for the stack's among them).
SHARED = {
    f"arn:{PARTITION}:apigateway:{REGION}::/apis",
    f"arn:{PARTITION}:cloudformation:{REGION}:aws:transform/Serverless-2016-10-31",
    f"arn:{PARTITION}:codedeploy:{REGION}:{ACCOUNT}:deploymentconfig:*",
    f"arn:{PARTITION}:execute-api:{REGION}:{ACCOUNT}:*/*/POST/token",
}


def test_nothing_is_granted_on_a_name_the_stack_does_not_use() -> None:
    from devstack.deploy.iam import _formats

    loose = []
    for statement in deploy_policy():
        if statement["Effect"] != "Allow":
            continue
        tagged = STACK_TAG in str(statement.get("Condition", {}))
        for resource in listed(statement["Resource"]):
            if resource == "*":
                # only actions that have no resource type, or a tag that only the stack's resources carry
                scoped = tagged or all(not _formats(action) for action in listed(statement["Action"]))
            else:
                scoped = STACK in resource or tagged or resource in SHARED
            if not scoped:
                loose.append((statement["Sid"], resource))
    assert loose == []


def property_set(properties: dict[str, Any], path: str) -> bool:
    head, _, rest = path.partition(".")
    value = properties.get(head)
    return value is not None and (not rest or (isinstance(value, dict) and property_set(value, rest)))


def test_each_permission_left_out_serves_only_a_property_the_template_never_sets() -> None:
    resources = the_template()["Resources"]
    for kind, left_out in UNUSED.items():
        for name, resource in resources.items():
            if resource["Type"] != kind:
                continue
            for action, properties in left_out.items():
                for path in properties:
                    assert not property_set(resource.get("Properties", {}), path), (name, path, action)


def test_every_role_the_stack_creates_carries_the_boundary() -> None:
    roles = {name: r for name, r in the_template()["Resources"].items() if r["Type"] == "AWS::IAM::Role"}
    assert len(roles) >= 5
    values = application_values(the_template())
    for name, role in roles.items():
        assert resolved(role["Properties"].get("PermissionsBoundary"), values, {}) == BOUNDARY, name


@pytest.mark.parametrize(
    ("action", "resource", "context"),
    [
        ("iam:CreateRole", f"{STACK}-Mine", {}),
        ("iam:CreateRole", f"{STACK}-Mine", {"iam:PermissionsBoundary": "arn:aws:iam::aws:policy/AdministratorAccess"}),
        ("iam:PutRolePermissionsBoundary", f"{STACK}-TokenBrokerFunctionRole-X", {"iam:PermissionsBoundary": "none"}),
        (
            "iam:DeleteRolePermissionsBoundary",
            f"{STACK}-TokenBrokerFunctionRole-X",
            {"iam:PermissionsBoundary": BOUNDARY},
        ),
        ("iam:AttachRolePolicy", "token-broker-deploy-dev", {"iam:PermissionsBoundary": BOUNDARY}),
        ("iam:PutRolePolicy", "token-broker-deploy-dev", {"iam:PermissionsBoundary": BOUNDARY}),
        ("iam:UpdateAssumeRolePolicy", "token-broker-deploy-dev", {}),
        ("iam:CreateRole", "someone-else", {"iam:PermissionsBoundary": BOUNDARY}),
    ],
)
def test_the_deploy_role_cannot_make_a_role_beyond_the_boundary_nor_change_itself(
    action: str, resource: str, context: dict[str, str]
) -> None:
    request = Request(action, f"arn:{PARTITION}:iam::{ACCOUNT}:role/{resource}", context)
    assert not allows(deploy_policy(), request)


@pytest.mark.parametrize(
    "action", ["iam:CreatePolicyVersion", "iam:DeletePolicy", "iam:DeletePolicyVersion", "iam:SetDefaultPolicyVersion"]
)
def test_the_deploy_role_cannot_change_the_boundary(action: str) -> None:
    assert not allows(deploy_policy(), Request(action, BOUNDARY))
    # while the stack's own policies it can
    if action != "iam:SetDefaultPolicyVersion":
        assert allows(deploy_policy(), Request(action, f"arn:{PARTITION}:iam::{ACCOUNT}:policy/{STACK}-Broker-X"))


# The context the broker's own requests carry, where a policy's condition tests it.
PROFILE_TAGGED = {"aws:TagKeys": [PROFILE_TAG], f"aws:RequestTag/{PROFILE_TAG}": "orders"}
SEALING = {f"aws:ResourceTag/{STACK_TAG}": STACK, "kms:EncryptionContext:purpose": "token-broker-cache"}
SENT_WITH = {
    "sts:AssumeRole": PROFILE_TAGGED,
    "sts:TagSession": PROFILE_TAGGED,
    "kms:Decrypt": SEALING,
    "kms:GenerateDataKey": SEALING,
}


def role_needs() -> list[Request]:
    """What the stack's roles do, from their own policies, as the account will hold them; and
    what the AWS managed policies they carry are for (logs, traces, CodeDeploy's traffic shift)."""
    template = the_template()
    values = application_values(template)
    conditions = dict.fromkeys(template.get("Conditions", {}), True) | {"HasKeyAdministratorRoleName": False}
    attached = {
        reference["Ref"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::IAM::Role"
        for reference in resource["Properties"].get("ManagedPolicyArns", [])
        if isinstance(reference, dict) and "Ref" in reference
    }
    found = []
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::IAM::ManagedPolicy" or not (name in attached or "Roles" in resource["Properties"]):
            continue  # a policy for the broker's callers, not its own roles
        document = resolved(resource["Properties"]["PolicyDocument"], values, conditions)
        for statement in document["Statement"]:
            for action in listed(statement["Action"]):
                found += [Request(action, arn, SENT_WITH.get(action, {})) for arn in listed(statement["Resource"])]
    log_group = f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{STACK}-TokenBrokerLogGroup-X:log-stream:x"
    function = values["TokenBrokerFunction.Arn"]
    found += [
        Request("logs:CreateLogStream", log_group),
        Request("logs:PutLogEvents", log_group),
        Request("xray:PutTraceSegments", "*"),
        Request("kms:Decrypt", values["TokenCacheKey.Arn"], SEALING),
        Request("kms:GenerateDataKey", values["TokenCacheKey.Arn"], SEALING),
        Request("lambda:UpdateAlias", f"{function}:live"),
        Request(
            "cloudwatch:DescribeAlarms", f"arn:{PARTITION}:cloudwatch:{REGION}:{ACCOUNT}:alarm:{STACK}-internal-errors"
        ),
    ]
    return found


def test_the_boundary_allows_what_the_stacks_roles_do() -> None:
    boundary = bootstrap_policies()["PermissionsBoundary"]
    refused = [f"{r.action} on {r.resource}" for r in role_needs() if not allows(boundary, r)]
    assert refused == []


def test_the_boundary_allows_no_iam_action_at_all_and_assumes_only_profile_roles_tagged() -> None:
    boundary = bootstrap_policies()["PermissionsBoundary"]
    actions = [action for statement in boundary for action in listed(statement["Action"])]
    assert not [action for action in actions if action.lower().startswith(("iam:", "*"))]
    profile_role = f"arn:{PARTITION}:iam::{ACCOUNT}:role/token-broker-profiles/{STACK}/orders"
    tagged = {"aws:TagKeys": ["token-broker-profile"], "aws:RequestTag/token-broker-profile": "orders"}
    assert allows(boundary, Request("sts:AssumeRole", profile_role, tagged))
    assert not allows(boundary, Request("sts:AssumeRole", profile_role, {}))
    for elsewhere in (f"{STACK}-other/orders", "orders"):
        role = f"arn:{PARTITION}:iam::{ACCOUNT}:role/token-broker-profiles/{elsewhere}"
        assert not allows(boundary, Request("sts:AssumeRole", role, tagged))
    assert not allows(boundary, Request("sts:AssumeRole", f"arn:{PARTITION}:iam::{ACCOUNT}:role/admin", tagged))


def test_the_key_administrator_has_every_key_action_cloudformation_needs_and_is_the_deploy_role() -> None:
    key_actions = {
        need.action for need in all_needs() if need.key_policy
    }  # every KMS request on the key itself, from the Key's and the Alias's handlers
    assert {"kms:PutKeyPolicy", "kms:EnableKeyRotation", "kms:CreateAlias", "kms:ScheduleKeyDeletion"} <= key_actions
    (administrator,) = [s for s in the_key_policy() if DEPLOY_ROLE in listed(s["Principal"]["AWS"])]
    assert key_actions <= set(administrator["Action"])
    # the application names the bootstrap's role by default, for every stage
    bootstrap = load_template(ROOT / "bootstrap.yaml")["Resources"]["DeployRole"]["Properties"]["RoleName"]
    assert bootstrap == {"Fn::Sub": "token-broker-deploy-${Environment}"}
    assert DEPLOY_ROLE.endswith("role/token-broker-deploy-dev")


def test_the_deploy_role_is_assumed_only_by_its_environments_jobs_or_the_named_operators() -> None:
    template = load_template(ROOT / "bootstrap.yaml")
    values = bootstrap_values()
    trust = resolved(
        template["Resources"]["DeployRole"]["Properties"]["AssumeRolePolicyDocument"],
        values,
        {"CreateOidcProvider": True, "HasOperatorRole": True},
    )["Statement"]
    github, operators = trust
    assert github["Action"] == "sts:AssumeRoleWithWebIdentity"
    # the repository by its id (a renamed or deleted one's name may be taken), the environment,
    # and the workflow with its ref: only ci.yml on main, as GitHub's hardening guide advises
    assert github["Condition"]["StringEquals"] == {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
        "token.actions.githubusercontent.com:sub": (
            "repository_id:123456789:environment:dev:"
            "job_workflow_ref:your-org/token-broker/.github/workflows/ci.yml@refs/heads/main"
        ),
    }
    assert operators["Principal"] == {"AWS": values["OperatorRoleArn"]}


def test_cloudsplaining_finds_nothing_unscoped_and_nothing_without_a_reason() -> None:
    from devstack.deploy.iam_audit import policies, problems

    assert {"bootstrap.yaml DeployPolicy", "bootstrap.yaml PermissionsBoundary"} <= set(policies())
    assert problems() == []


# Application names as the bootstrap admits or refuses them, adversarial ones first: prefixes of
# one another, names ending where another environment's stack name goes on, the bootstrap's own
# names, and environment words hidden in a name.
ADMITTED = ("token-broker", "tb", "tb-x", "t", "token", "token-broker-x", "devops", "prod2", "a-b-c", "tbdev")
REFUSED = ("tb-dev", "dev", "tb-prod-x", "staging-tb", "tb--x", "tb-", "-tb", "Tb", "a" * 15, "tb_x", "1tb")
ENVIRONMENTS = ("dev", "staging", "prod")
# the admitted names most likely to reach one another: each a prefix of another, or of the
# bootstrap's own names (token-broker-deploy-<environment>)
ADVERSARIAL = ("token-broker", "token-broker-x", "token", "t", "tb", "tb-x")


def application_name_admitted(name: str) -> bool:
    parameter = load_template(ROOT / "bootstrap.yaml")["Parameters"]["ApplicationName"]
    return len(name) <= parameter["MaxLength"] and re.fullmatch(parameter["AllowedPattern"], name) is not None


@pytest.mark.parametrize("name", ADMITTED + REFUSED)
def test_the_bootstrap_admits_application_names_whose_environments_cannot_collide(name: str) -> None:
    assert application_name_admitted(name) is (name in ADMITTED)


def other_stack_arns(application: str, environment: str) -> list[str]:
    """Every ARN of a stack (its resources as CloudFormation names them, its bootstrap's boundary,
    deploy role and policy, its profile roles) that another environment's deploy role must never
    change."""
    values = application_values(the_template(), application, environment)
    stack = f"{application}-{environment}"
    iam = f"arn:{PARTITION}:iam::{ACCOUNT}"
    arns = [value for name, value in values.items() if name.endswith(".Arn") and str(value).startswith("arn:")]
    return [
        *arns,
        f"{iam}:policy/{stack}-boundary",
        f"{iam}:role/token-broker-deploy-{environment}",
        f"{iam}:policy/token-broker-deploy-{environment}",
        f"{iam}:role/token-broker-profiles/{stack}/orders",
        f"arn:{PARTITION}:ssm:{REGION}:{ACCOUNT}:parameter/{stack}/function-arn",
        f"arn:{PARTITION}:cloudwatch:{REGION}:{ACCOUNT}:alarm:{stack}-internal-errors",
        f"arn:{PARTITION}:cloudwatch::{ACCOUNT}:dashboard/{stack}",
        f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:alias/{stack}-token-cache",
    ]


def written_actions(policy: list[dict[str, Any]], arn: str) -> list[str]:
    """The deploy policy's allowed actions that change something (reading is harmless) and can be
    asked of `arn`, as AWS's Service Authorization Reference gives their resource types, from the
    statements whose resources take it in."""
    return sorted(
        {
            action
            for statement in policy
            if statement["Effect"] == "Allow" and any(like(resource, arn) for resource in listed(statement["Resource"]))
            for action in listed(statement["Action"])
            if not action.split(":")[1].startswith(("Get", "List", "Describe")) and acts_on(action, arn)
        }
    )


def changes(policy: list[dict[str, Any]], arns: list[str], context: dict[str, str]) -> list[str]:
    return [
        f"{action} {arn}"
        for arn in arns
        for action in written_actions(policy, arn)
        if allows(policy, Request(action, arn, context))
    ]


def test_no_environments_deploy_role_can_change_anothers_names_whatever_names_the_bootstrap_admits() -> None:
    # Given every pair of admitted application names and environments in one account, the
    # adversarial prefixes included (token-broker and token-broker-x, tb and tb-x, t and token)
    stacks = [(application, environment) for application in ADVERSARIAL for environment in ENVIRONMENTS]
    arns = {stack: other_stack_arns(*stack) for stack in stacks}
    reaches = []
    for application, environment in stacks:
        policy = bootstrap_policies(environment, application)["DeployPolicy"]
        for other in stacks:
            if other != (application, environment):
                tagged = {f"aws:ResourceTag/{STACK_TAG}": f"{other[0]}-{other[1]}"}
                reaches += [
                    f"{application}-{environment} may {change}" for change in changes(policy, arns[other], tagged)
                ]
    # Then none of their deploy roles may change any name of another
    assert reaches == []


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_a_deploy_role_can_change_neither_itself_nor_its_policy_nor_any_boundary(environment: str) -> None:
    # the most dangerous name: an application called "token-broker", whose deploy role's own
    # names begin with "token-broker-"
    policy = bootstrap_policies(environment, "token-broker")["DeployPolicy"]
    iam = f"arn:{PARTITION}:iam::{ACCOUNT}"
    own = [
        f"{iam}:role/token-broker-deploy-{environment}",
        f"{iam}:policy/token-broker-deploy-{environment}",
        f"{iam}:policy/token-broker-{environment}-boundary",
    ]
    assert changes(policy, own, {}) == []


def test_the_bootstraps_names_fit_aws_limits_for_the_longest_admitted_application_name() -> None:
    # Given the longest name admitted, in the environment and the region with the longest names
    import botocore.session

    application = "a" * load_template(ROOT / "bootstrap.yaml")["Parameters"]["ApplicationName"]["MaxLength"]
    stack = f"{application}-{max(ENVIRONMENTS, key=len)}"
    regions = botocore.session.get_session().get_available_regions("sts")
    region = max(regions, key=len)
    # Then the artifact bucket's name is at most 63 characters (S3's limit)
    assert len(f"{stack}-artifacts-{ACCOUNT}-{region}") <= 63
    # and every name CloudFormation generates (<stack>-<logical id>-<13 characters>) of a role or
    # function is whole within 64, so the deploy policy's <stack>-* patterns hold it
    for logical, resource in the_template()["Resources"].items():
        if resource["Type"] in ("AWS::IAM::Role", "AWS::Lambda::Function"):
            assert len(f"{stack}-{logical}-{SUFFIX}") <= 64, logical


def test_the_names_the_bootstrap_refuses_are_those_that_would_collide() -> None:
    # Given dev's "tb" and a prod application named "tb-dev" (refused), whose stack tb-dev-prod
    # begins with dev's "tb-dev-"
    assert not application_name_admitted("tb-dev")
    policy = bootstrap_policies("dev", "tb")["DeployPolicy"]

    reaches = changes(policy, other_stack_arns("tb-dev", "prod"), {f"aws:ResourceTag/{STACK_TAG}": "tb-dev-prod"})

    # Then dev's deploy role would change prod's roles and functions: the evaluator sees it
    assert any(change.startswith("iam:UpdateAssumeRolePolicy") for change in reaches)
    assert any(change.startswith("lambda:UpdateFunctionCode") for change in reaches)


def test_the_operator_policy_allows_every_admin_command_on_its_environment_and_nothing_of_anothers() -> None:
    # Given the operator policy of dev, and what token-broker-admin asks of AWS
    policy = bootstrap_policies("dev", "token-broker")["OperatorPolicy"]
    values = application_values(the_template(), "token-broker", "dev")
    prod = application_values(the_template(), "token-broker", "prod")
    secret = f"arn:{PARTITION}:secretsmanager:{REGION}:{ACCOUNT}:secret:token-broker/orders-AbCdEf"
    stack = f"arn:{PARTITION}:cloudformation:{REGION}:{ACCOUNT}:stack/token-broker-dev/0a1b2c3d"
    asked = [
        Request("secretsmanager:ListSecrets", "*"),  # list
        *(
            Request(action, secret) for action in ("secretsmanager:PutSecretValue", "secretsmanager:CreateSecret")
        ),  # put
        Request("secretsmanager:GetSecretValue", secret),  # try, key, evict
        Request("secretsmanager:DeleteSecret", secret),  # delete
        Request("dynamodb:DeleteItem", values["TokenTable.Arn"]),  # evict
        Request("cloudformation:DescribeStacks", stack),  # --stack
        *(
            Request(action, f"{values[f'{function}.Arn']}{qualifier}")  # recycle
            for function in ("TokenBrokerFunction", "TokenBrokerHttpFunction")
            for action, qualifier in (
                ("lambda:GetAlias", ":live"),
                ("lambda:UpdateFunctionConfiguration", ""),
                ("lambda:GetFunction", ""),
                ("lambda:PublishVersion", ""),
                ("lambda:UpdateAlias", ":live"),
            )
        ),
    ]
    # Then each is allowed
    assert [f"{r.action} {r.resource}" for r in asked if not allows(policy, r)] == []
    # and nothing of prod's, no renewal function, no layer of the operator's, no IAM
    refused = [
        Request("dynamodb:DeleteItem", prod["TokenTable.Arn"]),
        Request("lambda:UpdateAlias", f"{prod['TokenBrokerFunction.Arn']}:live"),
        Request("lambda:UpdateFunctionConfiguration", values["TokenRenewalFunction.Arn"]),
        Request(
            "lambda:UpdateFunctionConfiguration",
            values["TokenBrokerFunction.Arn"],
            {"lambda:Layer": ["arn:aws:lambda:us-east-1:999999999999:layer:mine:1"]},
        ),
        Request("cloudformation:DescribeStacks", stack.replace("token-broker-dev", "token-broker-prod")),
        Request("iam:AttachRolePolicy", f"arn:{PARTITION}:iam::{ACCOUNT}:role/token-broker-deploy-dev"),
    ]
    assert [f"{r.action} {r.resource}" for r in refused if allows(policy, r)] == []


def test_updating_one_environments_bootstrap_into_anothers_is_refused_while_the_application_stands() -> None:
    # The application imports its boundary from its own environment's bootstrap, by the export name
    # the bootstrap gives it: a bootstrap updated with another Environment would remove that export,
    # which CloudFormation refuses while an import names it (and the prod command is its own stack).
    bootstrap = load_template(ROOT / "bootstrap.yaml")
    export = bootstrap["Outputs"]["PermissionsBoundaryArn"]["Export"]["Name"]
    assert export == {"Fn::Sub": "${ApplicationName}-${Environment}-PermissionsBoundaryArn"}
    template = load_template(TEMPLATE_PATH)
    boundary = template["Globals"]["Function"]["PermissionsBoundary"]
    assert boundary == {"Fn::ImportValue": {"Fn::Sub": "${AWS::StackName}-PermissionsBoundaryArn"}}
    roles = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    assert all(role["Properties"]["PermissionsBoundary"] == boundary for role in roles)
    runbook = (ROOT / "docs/RUNBOOK.md").read_text()
    assert "--stack-name token-broker-bootstrap-prod" in runbook


@pytest.mark.parametrize(
    ("pattern", "value", "matched"),
    [
        ("role/tb-*", "role/tb-dev-Fn", True),
        ("role/tb-?ev", "role/tb-dev", True),
        ("role/[ab]", "role/a", False),  # fnmatch's character class: IAM reads the brackets as themselves
        ("role/[ab]", "role/[ab]", True),
        ("role/tb-*", "role/TB-dev", False),
    ],
)
def test_the_evaluator_matches_wildcards_as_iam_does(pattern: str, value: str, matched: bool) -> None:
    assert like(pattern, value) is matched
