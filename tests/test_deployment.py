"""A first deploy in a real account, checked against AWS's published rules where no account can be
had: the deploy policy of bootstrap.yaml against every permission CloudFormation's handlers list
for every resource of the transformed template (and what sam deploy, HTTP API access logs and
the smoke test need), the key policy against the key's handlers, and the boundary that keeps
every role the stack creates to what the broker needs."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from broker.sts import PROFILE_TAG
from devstack import deployment
from devstack.deployment import (
    BOUNDARY,
    DEPLOY_ROLE,
    STACK,
    STACK_TAG,
    UNUSED,
    Need,
    application_values,
    bootstrap_policies,
    key_policy,
    needs,
    transformed,
)
from devstack.iam import ACCOUNT, PARTITION, REGION, Request, allows, known_action, resolved
from devstack.template import ROOT, load_template


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
    from devstack.iam import _formats

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
SENT_WITH = {"sts:AssumeRole": PROFILE_TAGGED, "sts:TagSession": PROFILE_TAGGED}


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
        Request("kms:Decrypt", values["TokenCacheKey.Arn"]),
        Request("kms:GenerateDataKey", values["TokenCacheKey.Arn"]),
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
    values = deployment.bootstrap_values()
    trust = resolved(
        template["Resources"]["DeployRole"]["Properties"]["AssumeRolePolicyDocument"],
        values,
        {"CreateOidcProvider": True, "HasOperatorRole": True},
    )["Statement"]
    github, operators = trust
    assert github["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert github["Condition"]["StringEquals"] == {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
        "token.actions.githubusercontent.com:sub": "repo:your-org/token-broker:environment:dev",
    }
    assert operators["Principal"] == {"AWS": values["OperatorRoleArn"]}


def test_cloudsplaining_finds_nothing_unscoped_and_nothing_without_a_reason() -> None:
    from devstack.iam_audit import policies, problems

    assert {"bootstrap.yaml DeployPolicy", "bootstrap.yaml PermissionsBoundary"} <= set(policies())
    assert problems() == []
