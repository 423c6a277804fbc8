"""`token-broker-admin`: the operator's commands, with the operator's own AWS credentials.

    token-broker-admin check FILE                 validate a profile document offline
    token-broker-admin put NAME FILE              validate it, then create or update its secret
    token-broker-admin list                       every profile: its kind and who may use it
    token-broker-admin try NAME [--scopes ...]    get a token with it from this machine (masked)
    token-broker-admin key NAME [--scopes ...]    the cache key of that profile and scope set
    token-broker-admin evict NAME [--scopes ...]  remove the key's cached token from the table
    token-broker-admin delete NAME                delete the profile's secret (recoverable)
    token-broker-admin recycle                    cut every warm container off, at once (incidents)

Options, before or after the command: --stack (the table and the secret prefix from the stack),
--region, --profile (the AWS CLI's named profile), --endpoint-url, --prefix, --table.

Every check is the broker's own (its profile parser, its token endpoint client, its cache key),
so what passes here passes in the broker. Never prints a secret or a whole token. Only the
answer is on stdout; what went wrong, and the broker's own warnings, are on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from broker import observability
from broker.config import DEFAULT_SECRET_PREFIX
from broker.wiring import AwsClients
from token_broker_admin.aws import Aws, Refused
from token_broker_admin.commands import (
    RECOVERY_DAYS,
    check,
    delete,
    evict,
    key,
    list_profiles,
    put,
    recycle,
    try_profile,
)


def main(argv: Sequence[str] | None = None, clients: AwsClients | None = None) -> int:
    """`clients` replaces the AWS clients the options would make (tests give stubbed ones)."""
    arguments = parser().parse_args(argv)
    try:
        with observability.operator_command():
            answer = arguments.command(arguments, Aws(arguments, clients))
    except Refused as refusal:
        print(f"token-broker-admin: {refusal}", file=sys.stderr)
        return 1
    print(answer)
    return 0


def parser() -> argparse.ArgumentParser:
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
    command_line = argparse.ArgumentParser(
        prog="token-broker-admin", description=__doc__.split("\n\n")[0], parents=[common]
    )
    commands = command_line.add_subparsers(required=True, metavar="command")

    def command(name: str, action: Any, help_text: str, *, stored: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, parents=[common])
        sub.set_defaults(command=action)
        if stored:
            sub.add_argument("name", help="the profile's name")
        return sub

    command("check", check, "validate a profile document offline", stored=False).add_argument("file")
    storing = command("put", put, "validate a profile document, then create or update its secret")
    storing.add_argument("file")
    storing.add_argument("--private-key-file", metavar="PEM", help="a PEM file to store as the profile's private_key")
    storing.add_argument("--certificate-file", metavar="PEM", help="a PEM file to store as the profile's certificate")
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
    command("recycle", recycle, "cut every warm container off: move live to a new version, at once", stored=False)
    recycling = commands.choices["recycle"]
    recycling.add_argument(
        "--function", action="append", help="a function to recycle (default: the stack's two serving functions)"
    )
    return command_line


if __name__ == "__main__":
    sys.exit(main())
