"""`make serve`: the local stack for developing against the broker, until Ctrl-C.

Serves the Lambda Invoke API (like `sam local start-lambda`) and `POST /token` (like
`sam local start-api`) on one port, both running the broker's real handler in this process,
with moto's server and the local authorization server behind it. No Docker.
"""

from __future__ import annotations

import os
import signal
import threading

from devstack.lambda_api import CALLER_HEADER, LOCAL_CALLER_ARN, LocalLambdaApi
from devstack.lambda_host import load_handler_module
from devstack.stack import DEMO_PROFILE, LocalStack

PORT = int(os.environ.get("TOKEN_BROKER_PORT", "3001"))


def main() -> None:
    stopping = threading.Event()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, or a supervisor's stop
        signal.signal(stop_signal, lambda *_: stopping.set())
    with LocalStack(log_level=os.environ.get("POWERTOOLS_LOG_LEVEL", "INFO")) as stack:
        os.environ.update(stack.environment)
        api = LocalLambdaApi(load_handler_module(), port=PORT).start()
        url = api.endpoint_url
        print("Token Broker, local stack (Ctrl-C stops it)\n")
        print("\n".join(stack.describe()))
        developer = stack.developer
        credentials = developer.credentials
        print(f"  Lambda Invoke API      {url}/2015-03-31/functions/{api.function_arn}/invocations")
        print(f"  HTTP route             POST {url}/token  (caller {LOCAL_CALLER_ARN}, or header {CALLER_HEADER})")
        print(f"  local developer        {developer.arn}  (credentials from the local STS, below)")
        print("\nFrom another shell, as the local developer (the demo profile admits that role):")
        print(f"  AWS_ENDPOINT_URL_LAMBDA={url} TOKEN_BROKER_FUNCTION={api.function_arn} \\")
        print(f"  AWS_ACCESS_KEY_ID={credentials.access_key} AWS_SECRET_ACCESS_KEY={credentials.secret_key} \\")
        print(f"  AWS_SESSION_TOKEN={credentials.token} AWS_DEFAULT_REGION=us-east-1 \\")
        print(
            "    PYTHONPATH=layers/token_client/python .venv/bin/python -c "
            f"'from token_client import TokenClient; print(TokenClient().auth_header(\"{DEMO_PROFILE}\"))'"
        )
        print(f'  curl -s -X POST {url}/token -d \'{{"profile": "{DEMO_PROFILE}"}}\'\n', flush=True)
        try:
            while not stopping.wait(0.5):
                pass
        finally:
            api.stop()
    print("\nStopped the local stack.")


if __name__ == "__main__":
    main()
