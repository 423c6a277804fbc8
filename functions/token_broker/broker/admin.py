"""`token-broker-admin`: the operator's commands, with the operator's own AWS credentials.

    token-broker-admin check FILE                 validate a profile document offline
    token-broker-admin put NAME FILE              validate it, then create or update its secret
    token-broker-admin try NAME [--scopes ...]    get a token with it from this machine (masked)
    token-broker-admin key NAME [--scopes ...]    the cache key of that profile and scope set
    token-broker-admin evict NAME [--scopes ...] --table TABLE
                                                  remove the key's cached token

Every check is the broker's own (its profile parser, its token endpoint client, its cache key),
so what passes here passes in the broker. Never prints a secret or a whole token.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from broker.config import (
    AWS_ENDPOINT_URL_STS,
    DEFAULT_REFRESH_AHEAD,
    DEFAULT_SECRET_PREFIX,
    Settings,
    loopback_sts_endpoint,
)
from broker.decisions import cache_key
from broker.errors import BrokerError, ProfileMisconfigured
from broker.profiles import AuthMethod, Profile, parse_profile
from broker.token_endpoint import TokenEndpoint
from broker.token_table import PARTITION_KEY
from broker.wiring import AwsClients, aws_clients, web_identity_tokens

TRY_SECONDS = 15.0


class Refused(Exception):
    """A command that cannot go on; its message says why and what to do, and holds no secret."""


def main(argv: Sequence[str] | None = None, clients: AwsClients | None = None) -> int:
    """`clients` replaces the AWS clients made from the environment (tests give stubbed ones)."""
    arguments = _parser().parse_args(argv)
    made: list[AwsClients] = [clients] if clients is not None else []

    def aws() -> AwsClients:  # made when a command first needs AWS: `check` never does
        if not made:
            made.append(aws_clients())
        return made[0]

    try:
        print(arguments.command(arguments, aws))
    except Refused as refusal:
        print(f"token-broker-admin: {refusal}", file=sys.stderr)
        return 1
    return 0


def check(arguments: argparse.Namespace, clients: Callable[[], AwsClients]) -> str:
    profile = _parsed(Path(arguments.file).stem, _read_file(arguments.file))
    return f"{arguments.file}: a valid profile. {_summary(profile)}"


def put(arguments: argparse.Namespace, clients: Callable[[], AwsClients]) -> str:
    document = _read_file(arguments.file)
    profile = _parsed(arguments.name, document)
    secret_id = arguments.prefix + arguments.name
    secrets = clients().secretsmanager
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


def try_profile(arguments: argparse.Namespace, clients: Callable[[], AwsClients]) -> str:
    profile = _stored(arguments, clients)
    scopes = _scopes(arguments, profile)
    note = ""
    web_identity = None
    if profile.auth_method is AuthMethod.AWS_WEB_IDENTITY_TOKEN:
        session = boto3.session.Session()
        if not session.region_name:
            raise Refused("GetWebIdentityToken needs a region: set AWS_REGION (the broker's)")
        settings = Settings(table_name="-", region=session.region_name)
        override = loopback_sts_endpoint(os.environ.get(AWS_ENDPOINT_URL_STS))
        web_identity = web_identity_tokens(replace(settings, sts_endpoint_override=override), session)
        note = (
            " The assertion came from STS GetWebIdentityToken with your own credentials, not the broker's role: "
            "it names your role as subject, so the authorization server accepts it only if it trusts that too."
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
        f"a token for {profile.name}: {value[:4]}…({len(value)} characters), expires in {issued.expires_in} s, "
        f"scope {granted!r}.{note}"
    )


def key(arguments: argparse.Namespace, clients: Callable[[], AwsClients]) -> str:
    profile = _stored(arguments, clients)
    return cache_key(profile, _scopes(arguments, profile))


def evict(arguments: argparse.Namespace, clients: Callable[[], AwsClients]) -> str:
    profile = _stored(arguments, clients)
    item_key = cache_key(profile, _scopes(arguments, profile))
    table = arguments.table
    try:
        answer = clients().dynamodb.delete_item(
            TableName=table, Key={PARTITION_KEY: {"S": item_key}}, ReturnValues="ALL_OLD"
        )
    except (ClientError, BotoCoreError) as error:
        raise Refused(f"cannot remove the item from table {table}: {_failure(error)}") from None
    found = "removed the cached token" if answer.get("Attributes") else "no cached token was there"
    return (
        f"{found} of {profile.name} (key {item_key}) from {table}. Warm containers keep serving their "
        f"memory copy until it enters its refresh-ahead window (REFRESH_AHEAD_SECONDS, default "
        f"{DEFAULT_REFRESH_AHEAD} s before expiry, at most half its life); to cut them off at once, "
        "publish a new version or change the functions' configuration (docs/RUNBOOK.md, Revocation)."
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="token-broker-admin", description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", default=DEFAULT_SECRET_PREFIX, help="the stack's SecretPrefix")
    commands = parser.add_subparsers(required=True, metavar="command")

    def command(name: str, action: Any, help_text: str, *, stored: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.set_defaults(command=action)
        if stored:
            sub.add_argument("name", help="the profile's name")
        return sub

    command("check", check, "validate a profile document offline", stored=False).add_argument("file")
    command("put", put, "validate a profile document, then create or update its secret").add_argument("file")
    for name, action, help_text in (
        ("try", try_profile, "get a token with a stored profile, from this machine"),
        ("key", key, "print the cache key of a profile and scope set"),
        ("evict", evict, "remove a profile's cached token from the table"),
    ):
        sub = command(name, action, help_text)
        sub.add_argument("--scopes", nargs="+", help="default: the profile's scopes")
        if name == "evict":
            sub.add_argument("--table", required=True, help="the cache table (the stack's output TokenTableName)")
    return parser


def _summary(profile: Profile) -> str:
    """What an operator checks at a glance; nothing secret (no secret, key or token)."""
    scopes = " ".join(sorted(profile.scopes)) or "none"
    callers = len(profile.allowed_callers)
    return f"auth_method {profile.auth_method}, default scopes {scopes}, {callers} allowed_callers entries."


def _read_file(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as error:
        raise Refused(f"cannot read {path}: {error.strerror}") from None


def _parsed(name: str, document: str) -> Profile:
    try:
        return parse_profile(name, document)
    except ProfileMisconfigured as error:  # names the field, never its value
        raise Refused(f"not a valid profile: {error.detail}") from None


def _stored(arguments: argparse.Namespace, clients: Callable[[], AwsClients]) -> Profile:
    secret_id = arguments.prefix + arguments.name
    try:
        answer = clients().secretsmanager.get_secret_value(SecretId=secret_id)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise Refused(f"no secret {secret_id}: check the name, the --prefix and the region") from None
        raise Refused(f"cannot read secret {secret_id}: {_failure(error)}") from None
    except BotoCoreError as error:
        raise Refused(f"cannot read secret {secret_id}: {_failure(error)}") from None
    return _parsed(arguments.name, answer.get("SecretString"))


def _scopes(arguments: argparse.Namespace, profile: Profile) -> frozenset[str]:
    return frozenset(arguments.scopes) if arguments.scopes else profile.scopes


def _failure(error: Exception) -> str:
    """What AWS said, by its code: a refused credential, a missing permission, a network failure."""
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "ClientError")
        hint = {
            "AccessDeniedException": "your credentials lack the permission",
            "AccessDenied": "your credentials lack the permission",
            "UnrecognizedClientException": "your credentials are not recognized",
            "ExpiredTokenException": "your credentials have expired",
            "InvalidClientTokenId": "your credentials are not recognized",
        }.get(code)
        return f"{code} ({hint})" if hint else code
    return type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
