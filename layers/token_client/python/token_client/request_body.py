"""`token-broker-request PROFILE`: the JSON body of a `POST /token` request, with a fresh caller
proof signed with this environment's AWS credentials (as boto3 finds them), for curl:

    curl --aws-sigv4 "aws:amz:$AWS_REGION:execute-api" ... -d "$(token-broker-request okta-default)" "$URL/token"

The proof is made for the broker's audience (`--audience`, else env TOKEN_BROKER_AUDIENCE: the
stack output TokenBrokerAudience) and is good for 5 minutes. It holds your session token: pass
it on, never store or log it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from token_client.caller_proof import Broker, NoCredentials, Prover
from token_client.client import BROKER_AUDIENCE_ENV


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="token-broker-request", description=__doc__.split("\n\n")[0])
    parser.add_argument("profile")
    parser.add_argument("--scopes", nargs="+", help="default: the profile's scopes")
    parser.add_argument("--min-ttl", type=int, help="the least life, in seconds, the token must have left")
    parser.add_argument("--force-refresh", action="store_true", help="the API refused the last token")
    parser.add_argument("--audience", help=f"the broker's audience (default: env {BROKER_AUDIENCE_ENV})")
    arguments = parser.parse_args(argv)
    audience = arguments.audience or os.environ.get(BROKER_AUDIENCE_ENV)
    if not audience:
        parser.error(
            f"name the broker's audience: --audience or env {BROKER_AUDIENCE_ENV} (stack output TokenBrokerAudience)"
        )
    try:
        broker = Broker(audience)
    except ValueError as error:
        parser.error(str(error))
    import boto3

    body: dict[str, Any] = {"profile": arguments.profile}
    if arguments.scopes:
        body["scopes"] = arguments.scopes
    if arguments.min_ttl is not None:
        body["min_ttl"] = arguments.min_ttl
    if arguments.force_refresh:
        body["force_refresh"] = True
    try:
        body["caller_proof"] = Prover(broker, boto3.session.Session).proof()
    except NoCredentials as error:
        print(f"token-broker-request: {error}", file=sys.stderr)
        return 1
    print(json.dumps(body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
