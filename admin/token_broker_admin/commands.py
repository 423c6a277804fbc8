"""The commands of `token-broker-admin`: each takes the parsed options and the operator's AWS,
and returns what it prints; a command that cannot go on raises `Refused`."""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from broker.client_auth import WebIdentity
from broker.config import (
    AWS_ENDPOINT_URL_STS,
    DEFAULT_REFRESH_AHEAD,
    loopback_sts_endpoint,
)
from broker.decisions import jwt_claims
from broker.dpop import key_thumbprint
from broker.errors import BrokerError, ProfileMisconfigured
from broker.profiles import Profile, cache_key, parse_profile
from broker.token_binding import BEARER
from broker.token_endpoint import IssuedToken, TokenEndpoint
from broker.token_request import PROFILE_PATTERN
from broker.token_table import PARTITION_KEY
from broker.wiring import web_identity_tokens
from token_broker_admin.aws import Aws, Refused, call, failure, no_secret

TRY_SECONDS = 15.0
# The alias callers and the HTTP API invoke, and the stack outputs naming the functions behind it.
ALIAS = "live"
SERVING_FUNCTION_OUTPUTS = ("TokenBrokerFunctionName", "TokenBrokerHttpFunctionName")
# Secrets Manager keeps a deleted secret this many days (7 to 30) before it is gone for good.
RECOVERY_DAYS = 30


def check(arguments: argparse.Namespace, aws: Aws) -> str:
    profile = _parsed(Path(arguments.file).stem, _read_profile_file(arguments.file))
    return f"{arguments.file}: a valid profile. {_summary(profile)}"


def put(arguments: argparse.Namespace, aws: Aws) -> str:
    name = arguments.name
    if PROFILE_PATTERN.fullmatch(name) is None:
        raise Refused(
            f"{name!r} is not a profile name a caller can ask for: it must match {PROFILE_PATTERN.pattern} "
            "(a letter or digit, then letters, digits, _, . or -, 128 characters at most)"
        )
    document = _with_pem_files(_read_profile_file(arguments.file), arguments)
    profile = _parsed(name, document)
    secret_id = aws.prefix() + name
    secrets = aws.clients().secretsmanager
    try:
        try:
            answer = secrets.put_secret_value(SecretId=secret_id, SecretString=document)
            done = "updated"
        except secrets.exceptions.ResourceNotFoundException:
            answer = secrets.create_secret(Name=secret_id, SecretString=document)
            done = "created"
    except (ClientError, BotoCoreError) as error:
        raise Refused(f"cannot store secret {secret_id}: {failure(error)}") from None
    return (
        f"{done} secret {secret_id} (version {answer['VersionId']}). {_summary(profile)} "
        "Warm containers read it within 5 minutes, or at once when the server refuses the old one."
    )


# put's options that take a PEM file into a profile field, so nobody escapes its newlines by hand.
PEM_FILES = {"private_key_file": "private_key", "certificate_file": "certificate"}


def _with_pem_files(document: str, arguments: argparse.Namespace) -> str:
    """The document with each PEM file given (`--private-key-file`, `--certificate-file`) in its
    field; a field the document holds already is refused rather than overwritten."""
    given = {field: getattr(arguments, option) for option, field in PEM_FILES.items() if getattr(arguments, option)}
    if not given:
        return document
    fields = json.loads(document)
    if not isinstance(fields, dict):
        return document  # the parser says what is wrong
    for field, path in given.items():
        if field in fields:
            raise Refused(f"{arguments.file} holds {field} already: give it there or as a file, not both")
        try:
            fields[field] = Path(path).read_text()
        except OSError as error:
            raise Refused(f"cannot read {path}: {error.strerror}") from None
    return json.dumps(fields)


def list_profiles(arguments: argparse.Namespace, aws: Aws) -> str:
    """One line per profile: its name, credential kind and `allowed_callers`; never a secret."""
    prefix = aws.prefix()
    secrets = aws.clients().secretsmanager
    names = call(
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
        text = call(f"read secret {secret_id}", read).get("SecretString")
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
        # --endpoint-url is every AWS call's, STS's too (a loopback one: the local stack)
        given = getattr(arguments, "endpoint_url", None) or os.environ.get(AWS_ENDPOINT_URL_STS)
        override = loopback_sts_endpoint(given)
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
        said = error.description if error.description.endswith(".") else f"{error.description}."
        raise Refused(f"no token for {profile.name}: {error.error}{upstream}: {said}{note}") from None
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
    answer = call(f"remove the item from table {table}", remove)
    found = "removed the cached token" if answer.get("Attributes") else "no cached token was there"
    return (
        f"{found} of {profile.name} (key {item_key}) from {table}. Warm containers keep serving their "
        f"memory copy until it enters its refresh-ahead window (REFRESH_AHEAD_SECONDS, default "
        f"{DEFAULT_REFRESH_AHEAD} s before expiry, at most half its life); to cut them off at once, "
        "recycle them: token-broker-admin recycle (docs/RUNBOOK.md, Revocation)."
    )


def delete(arguments: argparse.Namespace, aws: Aws) -> str:
    secret_id = aws.prefix() + arguments.name
    delete = functools.partial(
        aws.clients().secretsmanager.delete_secret, SecretId=secret_id, RecoveryWindowInDays=arguments.recovery_days
    )
    answer = call(f"delete secret {secret_id}", delete, missing=no_secret(secret_id))
    return (
        f"deleted secret {secret_id}: it can be restored until {answer['DeletionDate']:%Y-%m-%d} with "
        f"`aws secretsmanager restore-secret --secret-id {secret_id}`. Callers get unknown_profile once their "
        "container reads it again (within 5 minutes); tokens cached for it stay in the table until they expire "
        "(`token-broker-admin evict` removes them, while the profile can still be read)."
    )


def recycle(arguments: argparse.Namespace, aws: Aws) -> str:
    """Cuts every warm container of the functions that serve tokens off at once: their alias
    `live` (which callers and the HTTP API invoke) moves to a new version of the same code,
    with no canary. The old containers are invoked no more, and their memory tiers go with them;
    the new version starts cold and reads the table and the secrets afresh."""
    functions = arguments.function or [aws.output(name) for name in SERVING_FUNCTION_OUTPUTS]
    # a new version needs a change: Lambda publishes none for code and configuration it has
    note = f"recycled by token-broker-admin at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
    lines = [_recycled(aws.client("lambda"), function, note) for function in functions]
    return "\n".join(
        [
            *lines,
            "Every warm container of the earlier versions is invoked no more. The next deploy publishes from the "
            "template again (its description included); to go back, move the alias to the earlier version.",
        ]
    )


def _recycled(client: Any, function: str, note: str) -> str:
    """`function`'s alias moved to a new version of its code, with no canary; what became of it."""
    was = call(
        f"read the alias {ALIAS} of {function}", functools.partial(client.get_alias, FunctionName=function, Name=ALIAS)
    )
    update = functools.partial(client.update_function_configuration, FunctionName=function, Description=note)
    call(f"change {function}", update)
    waiter = client.get_waiter("function_updated_v2")
    call(f"wait for {function}", functools.partial(waiter.wait, FunctionName=function))
    publish = functools.partial(client.publish_version, FunctionName=function, Description=note)
    version = call(f"publish a version of {function}", publish)["Version"]
    move = functools.partial(
        client.update_alias,
        FunctionName=function,
        Name=ALIAS,
        FunctionVersion=version,
        RoutingConfig={"AdditionalVersionWeights": {}},  # no canary: every request, at once
    )
    call(f"move the alias {ALIAS} of {function}", move)
    return f"{function}: {ALIAS} now at version {version} (was {was['FunctionVersion']})"


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
    answer = call(f"read secret {secret_id}", read, missing=no_secret(secret_id))
    return _parsed(arguments.name, answer.get("SecretString"))


def _scopes(arguments: argparse.Namespace, profile: Profile) -> frozenset[str]:
    return frozenset(arguments.scopes) if arguments.scopes else profile.scopes
