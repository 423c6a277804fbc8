"""`token-broker-admin`: the operator's commands, with the operator's own AWS credentials.

    token-broker-admin check FILE                 validate a profile document offline
    token-broker-admin put NAME FILE              validate it, then create or update its secret
    token-broker-admin list                       every profile: its kind and who may use it
    token-broker-admin try NAME [--scopes ...]    get a token with it from this machine (masked)
    token-broker-admin key NAME [--scopes ...]    the cache key of that profile and scope set
    token-broker-admin evict NAME [--scopes ...]  remove the key's cached token from the table
    token-broker-admin delete NAME                delete the profile's secret (recoverable)

Options, before or after the command: --stack (the table and the secret prefix from the stack),
--region, --profile (the AWS CLI's named profile), --endpoint-url, --prefix, --table.

Every check is the broker's own (its profile parser, its token endpoint client, its cache key),
so what passes here passes in the broker. Never prints a secret or a whole token. Only the
answer is on stdout; what went wrong, and the broker's own warnings, are on stderr.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from broker import observability
from broker.client_auth import WebIdentity
from broker.config import (
    AWS_ENDPOINT_URL_STS,
    DEFAULT_REFRESH_AHEAD,
    DEFAULT_SECRET_PREFIX,
    loopback_sts_endpoint,
)
from broker.decisions import jwt_claims
from broker.dpop import key_thumbprint
from broker.errors import BrokerError, ProfileMisconfigured
from broker.profiles import Profile, cache_key, parse_profile
from broker.token_binding import BEARER
from broker.token_endpoint import IssuedToken, TokenEndpoint
from broker.token_table import PARTITION_KEY
from broker.wiring import AwsClients, web_identity_tokens

TRY_SECONDS = 15.0
# Secrets Manager keeps a deleted secret this many days (7 to 30) before it is gone for good.
RECOVERY_DAYS = 30


class Refused(Exception):
    """A command that cannot go on; its message says why and what to do, and holds no secret."""


def main(argv: Sequence[str] | None = None, clients: AwsClients | None = None) -> int:
    """`clients` replaces the AWS clients the options would make (tests give stubbed ones)."""
    arguments = _parser().parse_args(argv)
    try:
        with observability.operator_command():
            answer = arguments.command(arguments, Aws(arguments, clients))
    except Refused as refusal:
        print(f"token-broker-admin: {refusal}", file=sys.stderr)
        return 1
    print(answer)
    return 0


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
            self._session = _aws(
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
        return _aws(
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

    def _stack_values(self) -> dict[str, dict[str, str]]:
        if self._stack is None:
            name = self._arguments.stack
            answer = _aws(f"read stack {name}", lambda: self.client("cloudformation").describe_stacks(StackName=name))
            (stack,) = answer["Stacks"]
            self._stack = {
                "outputs": {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])},
                "parameters": {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])},
            }
        return self._stack


def check(arguments: argparse.Namespace, aws: Aws) -> str:
    profile = _parsed(Path(arguments.file).stem, _read_profile_file(arguments.file))
    return f"{arguments.file}: a valid profile. {_summary(profile)}"


def put(arguments: argparse.Namespace, aws: Aws) -> str:
    document = _read_profile_file(arguments.file)
    profile = _parsed(arguments.name, document)
    secret_id = aws.prefix() + arguments.name
    secrets = aws.clients().secretsmanager
    try:
        try:
            answer = secrets.put_secret_value(SecretId=secret_id, SecretString=document)
            done = "updated"
        except secrets.exceptions.ResourceNotFoundException:
            answer = secrets.create_secret(Name=secret_id, SecretString=document)
            done = "created"
    except (ClientError, BotoCoreError) as error:
        raise Refused(f"cannot store secret {secret_id}: {_failure(error)}") from None
    return (
        f"{done} secret {secret_id} (version {answer['VersionId']}). {_summary(profile)} "
        "Warm containers read it within 5 minutes, or at once when the server refuses the old one."
    )


def list_profiles(arguments: argparse.Namespace, aws: Aws) -> str:
    """One line per profile: its name, credential kind and `allowed_callers`; never a secret."""
    prefix = aws.prefix()
    secrets = aws.clients().secretsmanager
    names = _aws(
        f"list the secrets under {prefix}",
        lambda: [
            secret["Name"]
            for page in secrets.get_paginator("list_secrets").paginate(Filters=[{"Key": "name", "Values": [prefix]}])
            for secret in page["SecretList"]
            if secret["Name"].startswith(prefix)
        ],
    )
    if not names:
        return f"no profiles under {prefix} in {aws.region()}"
    lines = []
    for secret_id in sorted(names):
        name = secret_id.removeprefix(prefix)
        read = functools.partial(secrets.get_secret_value, SecretId=secret_id)
        text = _aws(f"read secret {secret_id}", read).get("SecretString")
        try:
            profile = parse_profile(name, text)
        except ProfileMisconfigured as error:
            lines.append(f"{name}  not a valid profile: {error.detail}")
            continue
        callers = json.loads(text or "{}").get("allowed_callers", [])
        kind = profile.client_auth.method + ("" if profile.binding == BEARER else f"+{profile.binding.name}")
        lines.append(f"{name}  {kind}  {' '.join(callers) or 'no callers admitted'}")
    return "\n".join(lines)


def try_profile(arguments: argparse.Namespace, aws: Aws) -> str:
    profile = _stored(arguments, aws)
    scopes = _scopes(arguments, profile)
    note = ""
    web_identity = None
    if isinstance(profile.client_auth, WebIdentity):
        override = loopback_sts_endpoint(os.environ.get(AWS_ENDPOINT_URL_STS))
        web_identity = web_identity_tokens(aws.region(), override, aws.session())
        note = (
            " The assertion came from STS GetWebIdentityToken with your own credentials, not the profile's role "
            f"({profile.client_auth.role}): it names you as subject, so the authorization server accepts it only "
            "if it trusts that too."
        )
    try:
        issued = TokenEndpoint(web_identity=web_identity).fetch(profile, scopes, time.time() + TRY_SECONDS)
    except ProfileMisconfigured as error:
        raise Refused(f"no token for {profile.name}: {error.detail}") from None
    except BrokerError as error:
        upstream = f" ({error.upstream_error})" if error.upstream_error else ""
        raise Refused(f"no token for {profile.name}: {error.error}{upstream}: {error.description}{note}") from None
    value = issued.access_token.reveal()
    granted = issued.scope if issued.scope is not None else " ".join(sorted(scopes))
    return (
        f"a {issued.token_type} token for {profile.name}: {value[:4]}…({len(value)} characters), expires in "
        f"{issued.expires_in} s, scope {granted!r}.{_binding(issued)}{note}"
    )


def _binding(issued: IssuedToken) -> str:
    """What a DPoP token is bound to: its key's thumbprint, beside what the token says (`cnf.jkt`,
    when it is a JWT) so the operator sees the server bound it to that key."""
    if issued.dpop_key is None:
        return ""
    thumbprint = key_thumbprint(issued.dpop_key)
    claims = jwt_claims(issued.access_token.reveal())
    confirmation = claims.get("cnf") if claims else None
    said = confirmation.get("jkt") if isinstance(confirmation, dict) else None
    if not isinstance(said, str):
        return f" Bound to the key whose thumbprint is {thumbprint} (the token does not say cnf.jkt)."
    agreement = "the same key" if said == thumbprint else "ANOTHER key: the server did not bind it to this proof"
    return f" Bound to the key whose thumbprint is {thumbprint}; the token's cnf.jkt is {said}: {agreement}."


def key(arguments: argparse.Namespace, aws: Aws) -> str:
    profile = _stored(arguments, aws)
    return cache_key(profile, _scopes(arguments, profile))


def evict(arguments: argparse.Namespace, aws: Aws) -> str:
    profile = _stored(arguments, aws)
    item_key = cache_key(profile, _scopes(arguments, profile))
    table = aws.table()
    remove = functools.partial(
        aws.clients().dynamodb.delete_item,
        TableName=table,
        Key={PARTITION_KEY: {"S": item_key}},
        ReturnValues="ALL_OLD",
    )
    answer = _aws(f"remove the item from table {table}", remove)
    found = "removed the cached token" if answer.get("Attributes") else "no cached token was there"
    return (
        f"{found} of {profile.name} (key {item_key}) from {table}. Warm containers keep serving their "
        f"memory copy until it enters its refresh-ahead window (REFRESH_AHEAD_SECONDS, default "
        f"{DEFAULT_REFRESH_AHEAD} s before expiry, at most half its life); to cut them off at once, "
        "publish a new version or change the functions' configuration (docs/RUNBOOK.md, Revocation)."
    )


def delete(arguments: argparse.Namespace, aws: Aws) -> str:
    secret_id = aws.prefix() + arguments.name
    delete = functools.partial(
        aws.clients().secretsmanager.delete_secret, SecretId=secret_id, RecoveryWindowInDays=arguments.recovery_days
    )
    answer = _aws(f"delete secret {secret_id}", delete, missing=_no_secret(secret_id))
    return (
        f"deleted secret {secret_id}: it can be restored until {answer['DeletionDate']:%Y-%m-%d} with "
        f"`aws secretsmanager restore-secret --secret-id {secret_id}`. Callers get unknown_profile once their "
        "container reads it again (within 5 minutes); tokens cached for it stay in the table until they expire "
        "(`token-broker-admin evict` removes them, while the profile can still be read)."
    )


def _parser() -> argparse.ArgumentParser:
    # The options every command takes, before or after its name: given at either place, they
    # are set (SUPPRESS leaves unset what is given at neither).
    common = argparse.ArgumentParser(add_help=False)
    aws = common.add_argument_group("where")
    aws.add_argument("--stack", default=argparse.SUPPRESS, help="the broker's stack: its table and secret prefix")
    aws.add_argument("--region", default=argparse.SUPPRESS, help="the broker's region (default: AWS_REGION)")
    aws.add_argument("--profile", default=argparse.SUPPRESS, help="the AWS CLI's named profile to use")
    aws.add_argument("--endpoint-url", default=argparse.SUPPRESS, help="one endpoint for every AWS call")
    aws.add_argument(
        "--prefix", default=argparse.SUPPRESS, help=f"the stack's SecretPrefix (default: {DEFAULT_SECRET_PREFIX})"
    )
    aws.add_argument("--table", default=argparse.SUPPRESS, help="the cache table (the stack's TokenTableName)")
    parser = argparse.ArgumentParser(prog="token-broker-admin", description=__doc__.split("\n\n")[0], parents=[common])
    commands = parser.add_subparsers(required=True, metavar="command")

    def command(name: str, action: Any, help_text: str, *, stored: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, parents=[common])
        sub.set_defaults(command=action)
        if stored:
            sub.add_argument("name", help="the profile's name")
        return sub

    command("check", check, "validate a profile document offline", stored=False).add_argument("file")
    command("put", put, "validate a profile document, then create or update its secret").add_argument("file")
    command("list", list_profiles, "every profile: its credential kind and who may use it", stored=False)
    for name, action, help_text in (
        ("try", try_profile, "get a token with a stored profile, from this machine"),
        ("key", key, "print the cache key of a profile and scope set"),
        ("evict", evict, "remove a profile's cached token from the table"),
    ):
        command(name, action, help_text).add_argument("--scopes", nargs="+", help="default: the profile's scopes")
    command("delete", delete, "delete a profile's secret, recoverable for --recovery-days").add_argument(
        "--recovery-days", type=int, choices=range(7, 31), default=RECOVERY_DAYS, metavar="7-30"
    )
    return parser


def _summary(profile: Profile) -> str:
    """What an operator checks at a glance; nothing secret (no secret, key or token)."""
    scopes = " ".join(sorted(profile.scopes)) or "none"
    callers = len(profile.allowed_callers)
    return (
        f"auth_method {profile.client_auth.describe()}, token_binding {profile.binding.describe()}, "
        f"default scopes {scopes}, {callers} allowed_callers entries."
    )


def _read_profile_file(path: str) -> str:
    """The file's text, once it is JSON: a mistake is named by line and column, never quoted."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise Refused(f"cannot read {path}: {error.strerror}") from None
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        raise Refused(f"{path} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}") from None
    return text


def _parsed(name: str, document: str | None) -> Profile:
    try:
        return parse_profile(name, document)
    except ProfileMisconfigured as error:  # names the field, never its value
        raise Refused(f"not a valid profile: {error.detail}") from None


def _stored(arguments: argparse.Namespace, aws: Aws) -> Profile:
    secret_id = aws.prefix() + arguments.name
    read = functools.partial(aws.clients().secretsmanager.get_secret_value, SecretId=secret_id)
    answer = _aws(f"read secret {secret_id}", read, missing=_no_secret(secret_id))
    return _parsed(arguments.name, answer.get("SecretString"))


def _scopes(arguments: argparse.Namespace, profile: Profile) -> frozenset[str]:
    return frozenset(arguments.scopes) if arguments.scopes else profile.scopes


def _aws[T](doing: str, call: Callable[[], T], missing: str | None = None) -> T:
    """`call`, its failure said plainly; `missing`: what to say when AWS has no such resource."""
    try:
        return call()
    except ClientError as error:
        if missing is not None and error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise Refused(missing) from None
        raise Refused(f"cannot {doing}: {_failure(error)}") from None
    except BotoCoreError as error:
        raise Refused(f"cannot {doing}: {_failure(error)}") from None


def _no_secret(secret_id: str) -> str:
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


def _failure(error: Exception) -> str:
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


if __name__ == "__main__":
    sys.exit(main())
