"""Every IAM policy the project writes, read by cloudsplaining (an IAM analyzer) as the account will
hold it: bootstrap.yaml's deploy policy and boundary, template.yaml's policies, and any policy in
the docs. `python -m devstack.deploy.iam_audit` (make lint) prints each privilege-escalation and
resource-exposure finding with why it is safe, and fails for one without a reason, for a reason
no finding needs any more, and for any finding of its default scan (an action that a resource
or a condition does not limit).

The findings are those of cloudsplaining's strictest scan, which flags a risky action whatever
resource or condition limits it; the reasons say what does.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from typing import Any

from devstack.deploy.bootstrap import bootstrap_policies
from devstack.deploy.deployment import application_values, transformed
from devstack.deploy.iam import resolved
from devstack.template import ROOT, load_template

# What makes each finding of the strict scan safe, by policy and finding.
WITH_THE_BOUNDARY = (
    "a role only with the boundary (bootstrap.yaml); and, denied by ARN whatever the names, never a "
    "boundary, never any environment's deploy role or policy, never a profile role: whatever the stack's "
    "roles are given, they can do no more than the broker does"
)
BOUNDED_CODE = (
    "functions named after the stack run as its roles, which carry the boundary: code deployed or "
    "invoked this way can do no more than the broker does"
)
REASONS: dict[tuple[str, str, str], str] = {
    **{
        ("bootstrap.yaml DeployPolicy", "PrivilegeEscalation", method): BOUNDED_CODE
        # (the two PassExistingRoleToNewLambda methods are not found: cloudsplaining drops an
        # action that any Deny names, and the deploy policy denies iam:PassRole of the roles that
        # must never run code: the deploy roles and secretless profiles' roles)
        for method in (
            "EditExistingLambdaFunctionWithRole",
            "UpdateAndInvokeLambdaFunction",
            "UpdateLambdaFunctionAndAddPermission",
        )
    },
    ("bootstrap.yaml DeployPolicy", "PrivilegeEscalation", "ExecuteCloudFormationChangeSet"): (
        "change sets of the stack only, executed with the deploy role's own credentials (it passes "
        "CloudFormation no role): a change set can do nothing the deploy role cannot"
    ),
    **{
        ("bootstrap.yaml DeployPolicy", "ResourceExposure", action): WITH_THE_BOUNDARY
        for action in (
            "iam:AttachRolePolicy",
            "iam:CreateRole",
            "iam:DeleteRolePolicy",
            "iam:DetachRolePolicy",
            "iam:PutRolePermissionsBoundary",
            "iam:PutRolePolicy",
            "iam:DeleteRole",
            "iam:UpdateAssumeRolePolicy",
            "iam:UpdateRole",
            "iam:UpdateRoleDescription",
            "iam:PassRole",
            "iam:CreatePolicy",
            "iam:CreatePolicyVersion",
            "iam:DeletePolicy",
            "iam:DeletePolicyVersion",
        )
    },
    **{
        ("bootstrap.yaml DeployPolicy", "ResourceExposure", action): (
            "resource policies of the stack's functions and layers: API Gateway's invoke permission, "
            "and ShareWithOrganization, which opens the direct function and the client layer to one "
            "AWS Organization when the operator asks"
        )
        for action in (
            "lambda:AddPermission",
            "lambda:RemovePermission",
            "lambda:AddLayerVersionPermission",
            "lambda:RemoveLayerVersionPermission",
        )
    },
    **{
        ("bootstrap.yaml DeployPolicy", "ResourceExposure", action): (
            "the stack's alarm topic, whose policy the stack leaves as SNS makes it (its owner only)"
        )
        for action in ("sns:CreateTopic", "sns:SetTopicAttributes")
    },
    **{
        (policy, "CredentialsExposure", "sts:AssumeRole"): (
            "secretless profiles' own roles only: under the stack's profile role path, and only with the "
            "session tag token-broker-profile, which each such role's trust policy requires to be its own "
            "profile's name (docs/profile-role.yaml); a profile role can do only what its creator gave it"
        )
        for policy in ("bootstrap.yaml PermissionsBoundary", "template.yaml ProfileRolesPolicy")
    },
}
# Kinds of finding that need a reason, and kinds that must not occur at all.
EXPLAINED_KINDS = ("PrivilegeEscalation", "ResourceExposure", "CredentialsExposure")
FORBIDDEN_KINDS = ("ServiceWildcard",)


@dataclass(frozen=True)
class Finding:
    policy: str
    kind: str
    what: str  # the escalation method, or the exposing action

    @property
    def key(self) -> tuple[str, str, str]:
        return self.policy, self.kind, self.what


def policies() -> dict[str, dict[str, Any]]:
    """Every identity policy the project writes, by where it is, resolved for a dev stack."""
    found = {
        f"bootstrap.yaml {name}": {"Version": "2012-10-17", "Statement": statements}
        for name, statements in bootstrap_policies().items()
    }
    template = transformed()
    values = application_values(template)
    conditions = dict.fromkeys(template.get("Conditions", {}), True) | {"HasKeyAdministratorRoleName": False}
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::IAM::ManagedPolicy":
            found[f"template.yaml {name}"] = resolved(resource["Properties"]["PolicyDocument"], values, conditions)
        for policy in (
            resource.get("Properties", {}).get("Policies", []) if resource["Type"] == "AWS::IAM::Role" else []
        ):
            found[f"template.yaml {name} {policy['PolicyName']}"] = resolved(
                policy["PolicyDocument"], values, conditions
            )
    profile_role = load_template(ROOT / "docs" / "profile-role.yaml")["Resources"]["ProfileRole"]["Properties"]
    example = {
        "BrokerStackName": "token-broker-dev",
        "ProfileName": "orders",
        "BrokerRoleArns": ["arn:aws:iam::123456789012:role/token-broker-dev-TokenBrokerFunctionRole-X"],
        "AssertionAudience": "api://AzureADTokenExchange",
        "AWS::Partition": "aws",
    }
    for policy in profile_role["Policies"]:
        found[f"docs/profile-role.yaml {policy['PolicyName']}"] = resolved(policy["PolicyDocument"], example, {})
    for path in sorted((ROOT / "docs").glob("*.md")):
        for number, block in enumerate(re.findall(r"```json\n(.*?)```", path.read_text(), re.DOTALL)):
            document = json.loads(block)
            if isinstance(document, dict) and "Statement" in document and "Principal" not in json.dumps(document):
                found[f"{path.relative_to(ROOT)} policy {number + 1}"] = document
    return found


def findings(strict: bool) -> list[Finding]:
    from cloudsplaining.command.scan_policy_file import scan_policy

    found = []
    for name, document in policies().items():
        results = scan_policy(document, {}, flag_conditional_statements=strict, flag_resource_arn_statements=strict)
        for kind in (*EXPLAINED_KINDS, *FORBIDDEN_KINDS):
            for item in (results.get(kind) or {}).get("findings", []):
                found.append(Finding(name, kind, item["type"] if isinstance(item, dict) else item))
    return found


def problems() -> list[str]:
    """What makes the audit fail: a finding of the default scan, a forbidden kind, a strict-scan
    finding without a reason, or a reason without a finding."""
    lenient, strict = findings(strict=False), findings(strict=True)
    said = [f"unscoped: {f.policy}: {f.kind}: {f.what}" for f in lenient]
    said += [f"never allowed: {f.policy}: {f.kind}: {f.what}" for f in strict if f.kind in FORBIDDEN_KINDS]
    said += [
        f"no reason given: {f.policy}: {f.kind}: {f.what}"
        for f in strict
        if f.kind in EXPLAINED_KINDS and f.key not in REASONS
    ]
    keys = {f.key for f in strict}
    said += [f"a reason no finding needs: {' / '.join(key)}" for key in REASONS if key not in keys]
    return said


def main() -> int:
    strict = findings(strict=True)
    print(f"IAM audit (cloudsplaining): {len(policies())} policies")
    for finding in strict:
        if finding.kind in EXPLAINED_KINDS and finding.key in REASONS:
            print(f"  {finding.policy}: {finding.kind} {finding.what}: {REASONS[finding.key]}")
    found = problems()
    for problem in found:
        print(f"  FAIL {problem}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
