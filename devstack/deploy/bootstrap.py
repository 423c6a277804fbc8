"""bootstrap.yaml's deploy policy, permissions boundary and operator policy, for one
environment of one application, as the account will hold them once an administrator deploys it."""

from __future__ import annotations

from typing import Any

from devstack.deploy.deployment import APPLICATION, ENVIRONMENT
from devstack.deploy.iam import ACCOUNT, PARTITION, REGION, resolved
from devstack.template import ROOT, load_template

BOOTSTRAP = ROOT / "bootstrap.yaml"


def bootstrap_values(environment: str = ENVIRONMENT, application: str = APPLICATION) -> dict[str, Any]:
    template = load_template(BOOTSTRAP)
    stack = f"{application}-{environment}"
    values: dict[str, Any] = {
        "AWS::Partition": PARTITION,
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        **{name: parameter.get("Default", "") for name, parameter in template["Parameters"].items()},
        "Environment": environment,
        "ApplicationName": application,
        "GitHubRepository": "your-org/token-broker",
        "GitHubRepositoryId": "123456789",
        "OperatorRoleArn": f"arn:{PARTITION}:iam::{ACCOUNT}:role/administrators",
    }
    values |= {
        "PermissionsBoundary": f"arn:{PARTITION}:iam::{ACCOUNT}:policy/{stack}-boundary",
        "DeployPolicy": f"arn:{PARTITION}:iam::{ACCOUNT}:policy/token-broker-deploy-{environment}",
        "GitHubOidcProvider": f"arn:{PARTITION}:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com",
        "ArtifactBucket": f"{stack}-artifacts-{ACCOUNT}-{REGION}",
        "ArtifactBucket.Arn": f"arn:{PARTITION}:s3:::{stack}-artifacts-{ACCOUNT}-{REGION}",
    }
    return values


def bootstrap_policies(
    environment: str = ENVIRONMENT, application: str = APPLICATION
) -> dict[str, list[dict[str, Any]]]:
    """The deploy policy, the boundary and the operator policy, as the account holds them for one
    environment of one application (default: ENVIRONMENT's, STACK)."""
    template = load_template(BOOTSTRAP)
    conditions = {"CreateOidcProvider": True, "HasOperatorRole": True}
    resources = resolved(template["Resources"], bootstrap_values(environment, application), conditions)
    return {
        name: resources[name]["Properties"]["PolicyDocument"]["Statement"]
        for name in ("DeployPolicy", "PermissionsBoundary", "OperatorPolicy")
    }
