"""The operator's AWS, as `token-broker-admin`'s options name it, and its failures in plain words."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from broker.config import DEFAULT_SECRET_PREFIX
from broker.wiring import AwsClients


class Refused(Exception):
    """A command that cannot go on; its message says why and what to do, and holds no secret."""


class Aws:
    """The operator's AWS as the options say: a session (`--region`, `--profile`), one endpoint
    for every client (`--endpoint-url`), and the stack (`--stack`) whose table and secret
    prefix are meant unless `--table` and `--prefix` say otherwise. Each is made when a command
    first needs it: `check` needs none."""

    def __init__(self, arguments: argparse.Namespace, clients: AwsClients | None = None) -> None:
        self._arguments = arguments
        self._clients = clients
        self._session: Any = None  # a boto3 Session
        self._stack: dict[str, dict[str, str]] | None = None

    def session(self) -> Any:
        if self._session is None:
            region = getattr(self._arguments, "region", None) or os.environ.get("AWS_REGION")
            self._session = call(
                "start an AWS session",
                lambda: boto3.session.Session(
                    profile_name=getattr(self._arguments, "profile", None), region_name=region
                ),
            )
        return self._session

    def region(self) -> str:
        region = self.session().region_name
        if not region:
            raise Refused("no AWS region: pass --region, or set AWS_REGION (the broker's)")
        return str(region)

    def client(self, service: str) -> Any:
        endpoint = getattr(self._arguments, "endpoint_url", None)
        return call(
            "make a client", lambda: self.session().client(service, region_name=self.region(), endpoint_url=endpoint)
        )

    def clients(self) -> AwsClients:
        if self._clients is None:
            self._clients = AwsClients(
                dynamodb=self.client("dynamodb"), secretsmanager=self.client("secretsmanager"), kms=None, awslambda=None
            )
        return self._clients

    def prefix(self) -> str:
        given = getattr(self._arguments, "prefix", None)
        if given is not None:
            return str(given)
        if getattr(self._arguments, "stack", None):
            return self._stack_values()["parameters"].get("SecretPrefix", DEFAULT_SECRET_PREFIX)
        return DEFAULT_SECRET_PREFIX

    def table(self) -> str:
        given = getattr(self._arguments, "table", None)
        if given:
            return str(given)
        if getattr(self._arguments, "stack", None):
            table = self._stack_values()["outputs"].get("TokenTableName")
            if table:
                return table
            raise Refused(f"stack {self._arguments.stack} has no output TokenTableName: is it the broker's?")
        raise Refused("name the cache table: --stack (the broker's stack) or --table (its output TokenTableName)")

    def output(self, name: str) -> str:
        """The stack's output `name` (`--stack` required)."""
        if not getattr(self._arguments, "stack", None):
            raise Refused(f"name the broker's stack (--stack) to read its {name}, or name it yourself")
        value = self._stack_values()["outputs"].get(name)
        if not value:
            raise Refused(f"stack {self._arguments.stack} has no output {name}: is it the broker's?")
        return value

    def _stack_values(self) -> dict[str, dict[str, str]]:
        if self._stack is None:
            name = self._arguments.stack
            answer = call(f"read stack {name}", lambda: self.client("cloudformation").describe_stacks(StackName=name))
            (stack,) = answer["Stacks"]
            self._stack = {
                "outputs": {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])},
                "parameters": {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])},
            }
        return self._stack


def call[T](doing: str, call: Callable[[], T], missing: str | None = None) -> T:
    """`call`, its failure said plainly; `missing`: what to say when AWS has no such resource."""
    try:
        return call()
    except ClientError as error:
        if missing is not None and error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise Refused(missing) from None
        raise Refused(f"cannot {doing}: {failure(error)}") from None
    except BotoCoreError as error:
        raise Refused(f"cannot {doing}: {failure(error)}") from None


def no_secret(secret_id: str) -> str:
    return f"no secret {secret_id}: check the name, the --prefix (or --stack) and the region"


# What botocore's failures mean to an operator, and what to do; `{...}` are their own fields.
_BOTOCORE_FAILURES = {
    "NoRegionError": "no AWS region: pass --region, or set AWS_REGION",
    "NoCredentialsError": "no AWS credentials: pass --profile (or set AWS_PROFILE), or run where a role is available",
    "PartialCredentialsError": "incomplete AWS credentials ({cred_var} is missing)",
    "ProfileNotFound": "no AWS profile named {profile} in your AWS config: check --profile or AWS_PROFILE",
    "EndpointConnectionError": "cannot reach {endpoint_url}: check --region, --endpoint-url and the network",
    "ConnectTimeoutError": "no answer from {endpoint_url}: check --region, --endpoint-url and the network",
    "TokenRetrievalError": "your SSO session has expired: run `aws sso login`",
    "SSOTokenLoadError": "your SSO session has expired: run `aws sso login`",
}


def failure(error: Exception) -> str:
    """What AWS said, in plain words: a refused credential, a missing permission, a network
    failure, a missing region or profile; its code where there is no plainer word."""
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "ClientError")
        hint = {
            "AccessDeniedException": "your credentials lack the permission",
            "AccessDenied": "your credentials lack the permission",
            "UnrecognizedClientException": "your credentials are not recognized",
            "ExpiredTokenException": "your credentials have expired",
            "ExpiredToken": "your credentials have expired",
            "InvalidClientTokenId": "your credentials are not recognized",
            "ValidationError": "no such stack, or not in this region",
        }.get(code)
        return f"{code} ({hint})" if hint else code
    plain = _BOTOCORE_FAILURES.get(type(error).__name__)
    if plain is not None:
        try:
            return plain.format(**getattr(error, "kwargs", {}))
        except (KeyError, IndexError):
            return plain.split(":")[0]
    return type(error).__name__
