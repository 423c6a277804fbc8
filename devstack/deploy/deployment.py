"""What deploying the stack asks of IAM, read from AWS's own published rules.

CloudFormation's resource provider schemas (cfn-lint ships them) list, for every resource type,
the permissions its create, update and delete handlers need. `needs()` turns the template, as
SAM's translator makes it into plain CloudFormation, into those requests, each naming the ARN
the resource will really have in a stack (its name as the template gives it, or as CloudFormation
generates it: `<stack>-<logical id>-<suffix>`), with the context keys IAM will see. Beside them,
what `sam deploy`, HTTP API access logs and the pipeline's smoke test need, which no handler
lists. A permission that only a property the template does not set needs is left out, with that
property (`UNUSED`): a test holds the template to not setting it.

Longer than the house's 350 lines: about 170 of them are the tables of AWS's rules (`UNUSED`,
`OWN_KINDS`, `SERVICE_KINDS`, `NAME_PROPERTY`...), each beside the one function that reads it.

`key_policy()` is the application's key policy as the account will hold it; bootstrap.yaml's
policies are read by `devstack.deploy.bootstrap`.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from devstack.deploy.iam import ACCOUNT, PARTITION, REGION, Context, request_arns, resolved
from devstack.template import TEMPLATE, load_template

# as samconfig.toml's default environment has them: the stack is <ApplicationName>-<Environment>
APPLICATION, ENVIRONMENT = "token-broker", "dev"
STACK = f"{APPLICATION}-{ENVIRONMENT}"
DEPLOY_ROLE = f"arn:{PARTITION}:iam::{ACCOUNT}:role/token-broker-deploy-{ENVIRONMENT}"
BOUNDARY = f"arn:{PARTITION}:iam::{ACCOUNT}:policy/{STACK}-boundary"
ARTIFACT_BUCKET = f"{STACK}-artifacts-{ACCOUNT}-{REGION}"
STACK_TAG = "token-broker-stack"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
API_ID = "a1b2c3d4e5"
SUFFIX = "1A2B3C4D5E6F7"  # what CloudFormation appends to a name it generates

# Permissions a handler lists that only a property this template does not set needs.
UNUSED: dict[str, dict[str, tuple[str, ...]]] = {
    "AWS::Lambda::Function": {
        **dict.fromkeys(
            ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs"],
            ("VpcConfig",),
        ),
        **dict.fromkeys(["elasticfilesystem:DescribeMountTargets", "s3files:ListMountTargets"], ("FileSystemConfigs",)),
        **dict.fromkeys(
            ["kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"], ("KmsKeyArn",)
        ),
        **dict.fromkeys(
            [
                "lambda:GetCodeSigningConfig",
                "lambda:PutFunctionCodeSigningConfig",
                "lambda:DeleteFunctionCodeSigningConfig",
            ],
            ("CodeSigningConfigArn",),
        ),
        "lambda:PutFunctionConcurrency": ("ReservedConcurrentExecutions",),
        **dict.fromkeys(
            ["lambda:PassCapacityProvider", "lambda:PutFunctionScalingConfig"], ("CapacityProviderConfig",)
        ),
        "lambda:AssociateRuntimeAlias": ("TenancyConfig",),
    },
    "AWS::Lambda::Version": dict.fromkeys(
        ["lambda:PutProvisionedConcurrencyConfig", "lambda:PutFunctionScalingConfig"], ("ProvisionedConcurrencyConfig",)
    ),
    "AWS::Lambda::Alias": dict.fromkeys(
        ["lambda:PutProvisionedConcurrencyConfig", "lambda:DeleteProvisionedConcurrencyConfig"],
        ("ProvisionedConcurrencyConfig",),
    ),
    "AWS::DynamoDB::Table": {
        **dict.fromkeys(
            [
                "dynamodb:ImportTable",
                "dynamodb:DescribeImport",
                "dynamodb:BatchWriteItem",
                "dynamodb:PutItem",
                "dynamodb:DeleteItem",
                "dynamodb:GetItem",
                "dynamodb:UpdateItem",
                "dynamodb:Query",
                "dynamodb:Scan",
                "s3:GetObject",
                "s3:GetObjectMetadata",
                "s3:ListBucket",
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:DescribeLogGroups",
                "logs:DescribeLogStreams",
                "logs:PutLogEvents",
                "logs:PutRetentionPolicy",
            ],
            ("ImportSourceSpecification",),
        ),
        **dict.fromkeys(
            [
                "kinesis:DescribeStream",
                "kinesis:PutRecords",
                "dynamodb:EnableKinesisStreamingDestination",
                "dynamodb:DisableKinesisStreamingDestination",
                "dynamodb:UpdateKinesisStreamingDestination",
            ],
            ("KinesisStreamSpecification",),
        ),
        **dict.fromkeys(
            ["kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:ListAliases", "kms:RevokeGrant"],
            ("SSESpecification.KMSMasterKeyId",),
        ),
        **dict.fromkeys(["dynamodb:PutResourcePolicy", "dynamodb:DeleteResourcePolicy"], ("ResourcePolicy",)),
        **dict.fromkeys(
            ["dynamodb:AssociateTableReplica", "dynamodb:CreateTableReplica", "iam:CreateServiceLinkedRole"],
            ("GlobalTableSettingsReplicationMode", "Replicas"),
        ),
    },
    "AWS::IAM::ManagedPolicy": {
        **dict.fromkeys(["iam:AttachGroupPolicy", "iam:DetachGroupPolicy"], ("Groups",)),
        **dict.fromkeys(["iam:AttachUserPolicy", "iam:DetachUserPolicy"], ("Users",)),
    },
    "AWS::IAM::Role": {
        # what removing a role's boundary needs: the deploy policy denies it outright
        "iam:DeleteRolePermissionsBoundary": ("PermissionsBoundary removed",),
    },
    "AWS::Logs::LogGroup": {
        **dict.fromkeys(["logs:AssociateKmsKey", "logs:DisassociateKmsKey"], ("KmsKeyId",)),
        "logs:PutBearerTokenAuthentication": ("BearerTokenAuthenticationEnabled",),
        "logs:DeleteResourcePolicy": ("ResourcePolicyDocument",),
        **dict.fromkeys(["firehose:TagDeliveryStream", "s3:REST.PUT.OBJECT"], ("DeliveryDestinations",)),
    },
    "AWS::SNS::Topic": dict.fromkeys(["iam:GetRole", "iam:PassRole"], ("DeliveryStatusLogging",)),
    "AWS::SNS::Subscription": dict.fromkeys(["iam:GetRole", "iam:PassRole"], ("SubscriptionRoleArn",)),
    "AWS::CodeDeploy::DeploymentGroup": {"codedeploy:RegisterOnPremisesInstance": ("OnPremisesInstanceTagFilters",)},
    "AWS::ApiGatewayV2::Api": {"s3:getObject": ("BodyS3Location",)},
}

# The ARN fragments of each type's own resources, then of each service's usual one, in the order
# a request for an action of that service is read.
OWN_KINDS = {
    "AWS::Lambda::Function": (":function:${FunctionName}",),
    "AWS::Lambda::Version": (":function:${FunctionName}",),
    "AWS::Lambda::Alias": (":function:${FunctionName}:${Alias}", ":function:${FunctionName}"),
    "AWS::Lambda::LayerVersion": (":layer:",),
    "AWS::Lambda::LayerVersionPermission": (":layer:",),
    "AWS::Lambda::EventInvokeConfig": (":function:${FunctionName}",),
    "AWS::IAM::Role": (":role/",),
    "AWS::IAM::ManagedPolicy": (":policy/",),
    "AWS::KMS::Alias": (":alias/",),
    "AWS::KMS::Key": (":key/",),
    "AWS::ApiGatewayV2::Api": ("::/apis",),
    "AWS::ApiGatewayV2::Stage": ("::/apis/${ApiId}/stages",),
    "AWS::CloudWatch::Dashboard": (":dashboard/",),
    "AWS::CloudWatch::Alarm": (":alarm:",),
    "AWS::CodeDeploy::Application": (":application:",),
    "AWS::CodeDeploy::DeploymentGroup": (":deploymentgroup:", ":deploymentconfig:"),
}
SERVICE_KINDS = {
    "iam": (":role/",),
    "ssm": (":parameter/",),
    "sns": (":${TopicName}",),
    "dynamodb": (":table/${TableName}",),
    "apigateway": ("::/apis",),
    "lambda": (":function:${FunctionName}", ":layer:"),
    "s3": (":::${BucketName}/${ObjectName}", ":::${BucketName}"),
    "codedeploy": (":deploymentgroup:", ":application:", ":deploymentconfig:"),
    "cloudwatch": (":alarm:",),
    "logs": (":log-group:${LogGroupName}",),
    "kms": (":key/",),
}
# Names a handler lists that IAM has no action of: tagging an API Gateway resource is a POST (an
# untagging a DELETE) on its /tags path, as the Service Authorization Reference has it.
TAGS_PATH = "arn:aws:apigateway:us-east-1::/tags/" + quote(
    f"arn:aws:apigateway:us-east-1::/apis/{API_ID}/stages/$default", safe=""
)
TRANSLATED = {
    "apigateway:TagResource": ("apigateway:POST", TAGS_PATH),
    "apigateway:UntagResource": ("apigateway:DELETE", TAGS_PATH),
}
# The actions that carry iam:PermissionsBoundary in their request (the role's boundary), and the
# service a role is passed to, by the resource type that passes it.
BOUNDED_ACTIONS = {
    "iam:CreateRole",
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:AttachRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:DeleteRolePermissionsBoundary",
}
PASSED_TO = {
    "AWS::Lambda::Function": "lambda.amazonaws.com",
    "AWS::CodeDeploy::DeploymentGroup": "codedeploy.amazonaws.com",
}


@dataclass(frozen=True)
class Need:
    """One request deploying the stack makes: `why` names the resource (or the step) that makes
    it; `key_policy`: decided by the key's own policy, not by IAM policies."""

    why: str
    action: str
    resource: str
    context: Context = field(default_factory=dict)
    key_policy: bool = False


def transformed(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as plain CloudFormation, as SAM's translator makes it when deploying (its
    code already uploaded: S3 URIs where the local folders are)."""
    from samtranslator.translator.transform import transform

    template = copy.deepcopy(load_template(path))
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        for name in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(name), str):
                properties[name] = f"s3://{ARTIFACT_BUCKET}/{STACK}/{name.lower()}"
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)  # the translator asks boto3 for a region

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    return dict(transform(template, {}, NoManagedPolicies()))


@cache
def handler_permissions(resource_type: str) -> frozenset[str]:
    """What CloudFormation's create, update and delete handlers of `resource_type` may need."""
    import cfnlint

    schemas = Path(cfnlint.__file__).parent / "data" / "schemas"
    index = json.loads((schemas / "providers" / f"{REGION}.json").read_text())
    schema = json.loads((schemas / "resources" / f"{index[resource_type]}.json").read_text())
    handlers = schema.get("handlers", {})
    return frozenset(
        permission
        for step in ("create", "update", "delete")
        for permission in handlers.get(step, {}).get("permissions", [])
    )


def application_values(
    template: dict[str, Any], application: str = APPLICATION, environment: str = ENVIRONMENT
) -> dict[str, Any]:
    """The application stack's parameters (their defaults), pseudo parameters, and each
    resource's name and ARN as the stack gives them, for one environment of one application
    (default: STACK)."""
    stack = f"{application}-{environment}"
    values: dict[str, Any] = {
        "AWS::Partition": PARTITION,
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::StackName": stack,
        "AWS::URLSuffix": "amazonaws.com",
        **{name: parameter.get("Default", "") for name, parameter in template["Parameters"].items()},
        "Stage": environment,
        # the bootstrap stack's export
        f"Export::{stack}-PermissionsBoundaryArn": f"arn:{PARTITION}:iam::{ACCOUNT}:policy/{stack}-boundary",
    }
    conditions = _conditions(template, values)
    for logical, resource in template["Resources"].items():
        name = resource_name(logical, resource, values, conditions)
        values[logical] = _ref(resource["Type"], name)
        values[f"{logical}.Arn"] = _arn(resource["Type"], name)
    for logical, resource in template["Resources"].items():  # a version's or alias's Ref is its ARN
        if resource["Type"] in ("AWS::Lambda::Alias", "AWS::Lambda::Version"):
            function = values[f"{resource['Properties']['FunctionName']['Ref']}.Arn"]
            values[logical] = f"{function}:{resource['Properties'].get('Name', '1')}"
    return values


def _conditions(template: dict[str, Any], values: dict[str, Any]) -> dict[str, bool]:
    """Every condition, as the defaults decide it, except that optional parts are all present."""
    return dict.fromkeys(template.get("Conditions", {}), True) | {
        "OwnAlarmTopic": True,
        "HasKeyAdministratorRoleName": False,
    }


# The property that names each type's resource, where the template may name it.
NAME_PROPERTY = {
    "AWS::Lambda::LayerVersion": "LayerName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::SSM::Parameter": "Name",
    "AWS::KMS::Alias": "AliasName",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::CodeDeploy::Application": "ApplicationName",
    "AWS::CodeDeploy::DeploymentGroup": "DeploymentGroupName",
}


def resource_name(logical: str, resource: dict[str, Any], values: dict[str, Any], conditions: dict[str, bool]) -> str:
    """The name the template gives the resource, else the one CloudFormation generates."""
    given = resource.get("Properties", {}).get(NAME_PROPERTY.get(resource["Type"], ""))
    if given is not None:
        return str(resolved(given, values, conditions))
    return f"{values['AWS::StackName']}-{logical}-{SUFFIX}"[:64]


def _ref(resource_type: str, name: str) -> str:
    """What `Ref` gives for the resource (an ARN for the types whose Ref is one)."""
    if resource_type in ("AWS::IAM::ManagedPolicy", "AWS::SNS::Topic", "AWS::Lambda::LayerVersion"):
        return _arn(resource_type, name)
    if resource_type == "AWS::KMS::Key":
        return KEY_ID
    if resource_type == "AWS::ApiGatewayV2::Api":
        return API_ID
    return name


def _arn(resource_type: str, name: str) -> str:
    prefix = f"arn:{PARTITION}"
    return {
        "AWS::Lambda::Function": f"{prefix}:lambda:{REGION}:{ACCOUNT}:function:{name}",
        "AWS::Lambda::LayerVersion": f"{prefix}:lambda:{REGION}:{ACCOUNT}:layer:{name}:1",
        "AWS::IAM::Role": f"{prefix}:iam::{ACCOUNT}:role/{name}",
        "AWS::IAM::ManagedPolicy": f"{prefix}:iam::{ACCOUNT}:policy/{name}",
        "AWS::DynamoDB::Table": f"{prefix}:dynamodb:{REGION}:{ACCOUNT}:table/{name}",
        "AWS::KMS::Key": f"{prefix}:kms:{REGION}:{ACCOUNT}:key/{KEY_ID}",
        "AWS::SNS::Topic": f"{prefix}:sns:{REGION}:{ACCOUNT}:{name}",
        "AWS::Logs::LogGroup": f"{prefix}:logs:{REGION}:{ACCOUNT}:log-group:{name}:*",
    }.get(resource_type, name)


def example_names(template: dict[str, Any], values: dict[str, Any]) -> dict[str, str]:
    """A value for every placeholder of the ARN formats the stack's requests use: the stack's
    own resources' names (the first of each kind), and ids for what has no name."""
    conditions = _conditions(template, values)
    first: dict[str, str] = {}
    for logical, resource in template["Resources"].items():
        first.setdefault(resource["Type"], resource_name(logical, resource, values, conditions))
    names = {
        "FunctionName": first["AWS::Lambda::Function"],
        "Alias": "live",
        "Version": "1",
        "LayerName": first["AWS::Lambda::LayerVersion"],
        "LayerVersion": "1",
        "RoleNameWithPath": first["AWS::IAM::Role"],
        "PolicyNameWithPath": first["AWS::IAM::ManagedPolicy"],
        "TableName": first["AWS::DynamoDB::Table"],
        "IndexName": "none",
        "StreamLabel": "none",
        "KeyId": KEY_ID,
        "LogGroupName": first["AWS::Logs::LogGroup"],
        "LogStreamName": "none",
        "AlarmName": first["AWS::CloudWatch::Alarm"],
        "DashboardName": first["AWS::CloudWatch::Dashboard"],
        "TopicName": first["AWS::SNS::Topic"],
        "ParameterNameWithoutLeadingSlash": first["AWS::SSM::Parameter"].lstrip("/"),
        "ApplicationName": first["AWS::CodeDeploy::Application"],
        "DeploymentGroupName": first["AWS::CodeDeploy::DeploymentGroup"],
        "DeploymentConfigurationName": "CodeDeployDefault.LambdaCanary10Percent5Minutes",
        "BucketName": ARTIFACT_BUCKET,
        "ObjectName": f"{STACK}/codeuri",
        "ApiId": API_ID,
    }
    # API Gateway's sub-resources have ids of their own
    for placeholder in (
        "StageName", "RouteId", "IntegrationId", "DeploymentId", "AuthorizerId", "ModelId", "RouteResponseId",
        "IntegrationResponseId", "RequestParameterKey", "RouteKey", "Specification",
    ):  # fmt: skip
        names[placeholder] = "x1"
    return names


def needs() -> list[Need]:
    """Every request deploying, updating and deleting the stack makes, with its ARN and context."""
    template = transformed()
    values = application_values(template)
    names = example_names(template, values)
    conditions = _conditions(template, values)
    boundaries = role_boundaries(template, values)
    found: list[Need] = []
    for logical, resource in template["Resources"].items():
        kind = resource["Type"]
        own = {**names, **_own_names(kind, logical, resource, values, conditions)}
        for action in sorted(handler_permissions(kind) - set(UNUSED.get(kind, {}))):
            found += _requests(f"{logical} ({kind})", kind, action, own, boundaries)
    return found + deploy_steps(values)


def role_boundaries(template: dict[str, Any], values: dict[str, Any]) -> dict[str, str]:
    """Each of the stack's roles, by name, and the permissions boundary it carries ("" for none)."""
    conditions = _conditions(template, values)
    return {
        resource_name(logical, resource, values, conditions): str(
            resolved(resource["Properties"].get("PermissionsBoundary", ""), values, conditions)
        )
        for logical, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
    }


def _own_names(
    kind: str, logical: str, resource: dict[str, Any], values: dict[str, Any], conditions: dict[str, bool]
) -> dict[str, str]:
    name = resource_name(logical, resource, values, conditions)
    placeholder = {
        "AWS::Lambda::Function": "FunctionName",
        "AWS::Lambda::LayerVersion": "LayerName",
        "AWS::IAM::Role": "RoleNameWithPath",
        "AWS::IAM::ManagedPolicy": "PolicyNameWithPath",
        "AWS::DynamoDB::Table": "TableName",
        "AWS::Logs::LogGroup": "LogGroupName",
        "AWS::CloudWatch::Alarm": "AlarmName",
        "AWS::CloudWatch::Dashboard": "DashboardName",
        "AWS::SNS::Topic": "TopicName",
        "AWS::KMS::Alias": "Alias",
        "AWS::CodeDeploy::Application": "ApplicationName",
        "AWS::CodeDeploy::DeploymentGroup": "DeploymentGroupName",
    }.get(kind)
    if kind == "AWS::SSM::Parameter":
        return {"ParameterNameWithoutLeadingSlash": name.lstrip("/")}
    if kind == "AWS::KMS::Alias":
        return {"Alias": name.removeprefix("alias/")}
    return {placeholder: name} if placeholder else {}


def _requests(why: str, kind: str, action: str, names: dict[str, str], boundaries: dict[str, str]) -> list[Need]:
    service = action.split(":")[0]
    if action in TRANSLATED:
        action, arn = TRANSLATED[action]
        arns = [arn]
    else:
        kinds = OWN_KINDS.get(kind, ()) + SERVICE_KINDS.get(service, ())
        arns = request_arns(action, kinds, names)
    found = []
    for arn in arns:
        context: dict[str, str | list[str]] = {}
        if action in BOUNDED_ACTIONS:  # the boundary of the role the request names
            context["iam:PermissionsBoundary"] = boundaries.get(names["RoleNameWithPath"], "")
        if action == "iam:PassRole":
            context["iam:PassedToService"] = PASSED_TO.get(kind, "")
        if service == "apigateway" and not arn.endswith("::/apis"):
            context[f"aws:ResourceTag/{STACK_TAG}"] = STACK
        elif service == "apigateway" and action in ("apigateway:POST", "apigateway:PUT"):
            context[f"aws:RequestTag/{STACK_TAG}"] = STACK  # a new API, with its tag
        if action == "kms:CreateKey" or (action == "kms:TagResource" and arn == "*"):
            context[f"aws:RequestTag/{STACK_TAG}"] = STACK
        # a key's own actions are decided by its key policy, which names no account root
        key_policy = service == "kms" and ":key/" in arn
        found.append(Need(why, action, arn, context, key_policy))
        if service == "kms" and ":alias/" in arn:  # an alias's actions need the key too
            key = arn.split(":alias/")[0] + f":key/{KEY_ID}"
            found.append(Need(why, action, key, {}, key_policy=True))
    return found


# What no handler lists: sam deploy itself, HTTP API access logs, and the pipeline's smoke test.
ACCESS_LOGS = "https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-logging.html"


def deploy_steps(values: dict[str, Any]) -> list[Need]:
    stack = f"arn:{PARTITION}:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
    transform = f"arn:{PARTITION}:cloudformation:{REGION}:aws:transform/Serverless-2016-10-31"
    deploy = [
        Need("sam deploy: the change set", action, stack)
        for action in (
            "cloudformation:CreateChangeSet",
            "cloudformation:DescribeChangeSet",
            "cloudformation:ExecuteChangeSet",
            "cloudformation:DescribeStacks",
            "cloudformation:DescribeStackEvents",
            "cloudformation:GetTemplateSummary",
        )
    ]
    deploy.append(Need("sam deploy: the SAM transform", "cloudformation:CreateChangeSet", transform))
    deploy += [
        Need("sam deploy: the uploaded code", action, f"arn:{PARTITION}:s3:::{ARTIFACT_BUCKET}/{STACK}/codeuri")
        for action in ("s3:PutObject", "s3:GetObject")
    ]
    deploy += [
        Need(f"HTTP API access logs ({ACCESS_LOGS})", action, "*")
        for action in (
            "logs:CreateLogDelivery",
            "logs:PutResourcePolicy",
            "logs:UpdateLogDelivery",
            "logs:DeleteLogDelivery",
            "logs:DescribeResourcePolicies",
            "logs:GetLogDelivery",
            "logs:ListLogDeliveries",
        )
    ]
    api = f"arn:{PARTITION}:execute-api:{REGION}:{ACCOUNT}:{API_ID}/$default/POST/token"
    deploy += [
        Need("the smoke test: the stack's outputs", "cloudformation:DescribeStacks", stack),
        Need("the smoke test: the direct door", "lambda:InvokeFunction", f"{values['TokenBrokerFunction.Arn']}:live"),
        Need("the smoke test: the HTTP route", "execute-api:Invoke", api),
    ]
    return deploy


def key_policy() -> list[dict[str, Any]]:
    """The cache key's policy, as the account holds it for STACK."""
    template = transformed()
    values = application_values(template)
    statements: list[dict[str, Any]] = resolved(
        template["Resources"]["TokenCacheKey"]["Properties"]["KeyPolicy"]["Statement"],
        values,
        _conditions(template, values),
    )
    return statements
