"""`make serve`: the local stack for developing against the broker, until Ctrl-C.

Serves the Lambda Invoke API (like `sam local start-lambda`) and `POST /token` (like
`sam local start-api`) on one port, both running the broker's real handler in this process,
with moto's server and the local authorization server behind it. No Docker.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass

from devstack.local.lambda_api import LocalLambdaApi
from devstack.local.lambda_host import RENEWAL_FUNCTION_ARN, load_handler_module
from devstack.local.stack import DEMO_PROFILE, DPOP_PROFILE, LocalStack
from devstack.local.sts import Issued

PORT_VARIABLE = "TOKEN_BROKER_PORT"
DEFAULT_PORT = 3001


def chosen_port() -> int:
    """`TOKEN_BROKER_PORT` (default 3001), once it is a port number that nothing else listens on."""
    text = os.environ.get(PORT_VARIABLE, str(DEFAULT_PORT))
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        sys.exit(f"make serve: {PORT_VARIABLE} must be a port number, such as {DEFAULT_PORT}")
    port = int(text)
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds it
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            sys.exit(f"make serve: port {port} is in use; choose another: {PORT_VARIABLE}={port + 1} make serve")
    return port


def main() -> None:
    port = chosen_port()
    stopping = threading.Event()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, or a supervisor's stop
        signal.signal(stop_signal, lambda *_: stopping.set())
    with LocalStack(log_level=os.environ.get("POWERTOOLS_LOG_LEVEL", "INFO")) as stack:
        api = LocalLambdaApi(None, stack.sts, port=port)
        os.environ.update(stack.environment_with(api))
        api.app = load_handler_module()
        api.start()
        print("Token Broker, local stack (Ctrl-C stops it)\n")
        print("\n".join(stack.describe()))
        print(f"  Lambda Invoke API      {api.endpoint_url}/2015-03-31/functions/{api.function_arn}/invocations")
        print(f"  renewal function       {RENEWAL_FUNCTION_ARN}  (renewals ahead of expiry, queued as Lambda does)")
        print(f"  HTTP route             POST {api.endpoint_url}/token  (SigV4 for execute-api, as the IAM authorizer)")
        print(f"  local developer        {stack.developer.arn}  (credentials from the local STS, below)")
        where = Where(api, stack.aws.endpoint_url, f"{stack.resource.url}/api/v1/users")
        print("\n".join(["", *usage(where, stack.developer, DEMO_PROFILE, DPOP_PROFILE), ""]), flush=True)
        try:
            while not stopping.wait(0.5):
                pass
        finally:
            api.stop()
    print("\nStopped the local stack.")


@dataclass(frozen=True)
class Where:
    """The local stack's addresses that the printed commands use."""

    api: LocalLambdaApi
    aws_endpoint: str  # moto's server, for the operator's CLI
    resource_url: str  # an API on the local resource server


def usage(where: Where, developer: Issued, profile: str, dpop_profile: str) -> list[str]:
    """What to paste in another shell, as the local developer (whom both profiles admit):
    token_client by either door, curl with a request body from `token-broker-request`, a call to
    the resource server with `dpop_profile`'s DPoP token (a proof for each request, its nonce
    answered), and the operator's CLI against the local stack's AWS."""
    api = where.api
    credentials = developer.credentials
    request_body = f"PYTHONPATH=layers/token_client/python .venv/bin/python -m token_client.request_body {profile}"
    client = "PYTHONPATH=layers/token_client/python .venv/bin/python -c 'from token_client import TokenClient; "
    return [
        "From another shell, as the local developer (the demo profile admits that role):",
        f"  export AWS_ACCESS_KEY_ID={credentials.access_key} AWS_SECRET_ACCESS_KEY={credentials.secret_key} \\",
        f"    AWS_SESSION_TOKEN={credentials.token} AWS_DEFAULT_REGION=us-east-1 \\",
        f"    AWS_ENDPOINT_URL_LAMBDA={api.endpoint_url} TOKEN_BROKER_FUNCTION={api.function_arn} \\",
        f"    TOKEN_BROKER_AUDIENCE={api.function_arn}",
        f'  {client}print(TokenClient().auth_header("{profile}"))\'',
        f'  {client}print(TokenClient(url="{api.endpoint_url}").auth_header("{profile}"))\'',
        '  curl -s -w "\\n" --aws-sigv4 "aws:amz:us-east-1:execute-api" \\',
        '    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-security-token: $AWS_SESSION_TOKEN" \\',
        '    -H "Content-Type: application/json" \\',
        f'    -d "$({request_body})" {api.endpoint_url}/token',
        f"  {client}from token_client.urllib3_auth import request; "
        f'print(request(TokenClient(), "{dpop_profile}", "GET", "{where.resource_url}").json())\'',
        f"  .venv/bin/token-broker-admin --endpoint-url {where.aws_endpoint} list",
    ]


if __name__ == "__main__":
    main()
