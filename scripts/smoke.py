"""Smoke test of a deployed stage: `python3 scripts/smoke.py --stack token-broker-dev`.

Asks the deployed broker, by direct invocation and over its HTTP route, for what a stage
without any profile answers: an invalid request (400), a call without a caller proof (403),
an unknown profile (404). With `--profile` (or SMOKE_PROFILE) it also gets that profile's token
and prints it masked, with its expiry and scope; the profile's `allowed_callers` must admit the
credentials this runs with. Exits 1 naming each check that failed.

Runs with the credentials of the environment (the pipeline's deploy role, or an operator's). It
needs boto3 and token_client: from the repository (`make smoke STACK=...`), or from the
pipeline's artifact (`.smoke-deps` and the layer's source), with the runner's own Python.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for place in (
    ROOT / ".smoke-deps",
    ROOT / ".aws-sam/build/TokenClientLayer/python",
    ROOT / "layers/token_client/python",
):
    if place.is_dir():
        sys.path.insert(0, str(place))

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError  # noqa: E402

from token_client.caller_proof import Broker, sign_caller_proof  # noqa: E402
from token_client.errors import TokenBrokerError  # noqa: E402
from token_client.transports import HttpTransport  # noqa: E402

CONFIG = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2, "mode": "standard"})


class Smoke:
    def __init__(self, session: Any, function_arn: str, api_url: str, audience: str) -> None:
        self.session = session
        self.function_arn = function_arn
        self.route = HttpTransport(api_url, lambda: session, audience, session.region_name)
        self.lambda_client = session.client("lambda", config=CONFIG)
        self.failures: list[str] = []

    @classmethod
    def of_stack(cls, stack: str, region: str | None) -> Smoke:
        """The stage that the stack `stack` deployed: its function and API from the stack's outputs."""
        session = boto3.session.Session(region_name=region)
        (described,) = session.client("cloudformation", config=CONFIG).describe_stacks(StackName=stack)["Stacks"]
        outputs = {output["OutputKey"]: output["OutputValue"] for output in described.get("Outputs", [])}
        return cls(session, outputs["TokenBrokerAliasArn"], outputs["TokenApiUrl"], outputs["TokenBrokerAudience"])

    def proof(self) -> dict[str, Any]:
        return sign_caller_proof(self.session.get_credentials().get_frozen_credentials(), Broker(self.function_arn))

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        response = self.lambda_client.invoke(FunctionName=self.function_arn, Payload=json.dumps(event).encode())
        answer: dict[str, Any] = json.loads(response["Payload"].read())
        return answer

    def post(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The HTTP route, through token_client's own SigV4-signed transport: the broker's answer,
        or what stopped the call (API Gateway's 403 for a caller without execute-api:Invoke)."""
        try:
            answer = self.route.ask(body, secrets.token_hex(8))
        except TokenBrokerError as error:
            return error.status, {"error": error.error, "error_description": error.description}
        return answer.get("status", 200), answer

    def expect(self, check: str, status: int, error: str | None, got_status: int, got: dict[str, Any]) -> None:
        if got_status == status and got.get("error") == error:
            print(f"ok    {check}: {status} {error or ''}".rstrip())
        else:
            shown = {key: value for key, value in got.items() if key != "access_token"}
            print(f"FAIL  {check}: expected {status} {error}, got {got_status} {json.dumps(shown)}")
            self.failures.append(check)

    def token(self, check: str, status: int, answer: dict[str, Any]) -> None:
        value = answer.get("access_token")
        if status == 200 and isinstance(value, str) and value:
            masked = f"{value[:4]}…({len(value)} characters)"
            print(f"ok    {check}: {masked}, expires in {answer.get('expires_in')} s, scope {answer.get('scope')!r}")
        else:
            self.expect(check, 200, None, status, answer)

    def run(self, profile: str | None) -> int:
        nobody = f"smoke-no-such-profile-{secrets.token_hex(4)}"
        direct = self.invoke({"profile": "not a profile!", "caller_proof": self.proof()})
        self.expect("direct: an invalid request", 400, "invalid_request", direct.get("status", 200), direct)
        direct = self.invoke({"profile": nobody})
        self.expect("direct: no caller proof", 403, "access_denied", direct.get("status", 200), direct)
        direct = self.invoke({"profile": nobody, "caller_proof": self.proof()})
        self.expect("direct: an unknown profile", 404, "unknown_profile", direct.get("status", 200), direct)
        self.expect("http: an invalid request", 400, "invalid_request", *self.post({"profile": "not a profile!"}))
        self.expect("http: an unknown profile", 404, "unknown_profile", *self.post({"profile": nobody}))
        if profile:
            direct = self.invoke({"profile": profile, "caller_proof": self.proof()})
            self.token(f"direct: a token for {profile}", direct.get("status", 200), direct)
            self.token(f"http: a token for {profile}", *self.post({"profile": profile}))
        if self.failures:
            print(f"{len(self.failures)} of the smoke checks failed: {', '.join(self.failures)}")
            return 1
        print("the stage answers as the contract says")
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    stage = parser.add_mutually_exclusive_group(required=True)
    stage.add_argument("--stack", help="the stage's stack, e.g. token-broker-dev")
    stage.add_argument("--config-env", help="samconfig.toml's environment (default, prod): its stack_name")
    parser.add_argument("--region", help="default: the environment's")
    parser.add_argument(
        "--profile", default=os.environ.get("SMOKE_PROFILE") or None, help="a profile to get a real token for"
    )
    arguments = parser.parse_args()
    if arguments.config_env is not None:
        arguments.stack = stack_of(arguments.config_env)
    try:
        smoke = Smoke.of_stack(arguments.stack, arguments.region)
    except (BotoCoreError, ClientError, KeyError) as error:
        print(f"smoke: cannot read the stack {arguments.stack}: {_plainly(error)}", file=sys.stderr)
        return 2
    return smoke.run(arguments.profile)


def stack_of(config_env: str) -> str:
    """The stack name samconfig.toml gives an environment: the one home of the stages' names."""
    import tomllib

    with (ROOT / "samconfig.toml").open("rb") as config:
        environments = tomllib.load(config)
    try:
        return str(environments[config_env]["global"]["parameters"]["stack_name"])
    except KeyError:
        sys.exit(f"smoke: samconfig.toml has no environment {config_env} with a stack_name")


def _plainly(error: Exception) -> str:
    """What went wrong reading the stack, and what to do; never a traceback."""
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials: export them, or AWS_PROFILE, as for the AWS CLI"
    if isinstance(error, NoRegionError):
        return "no AWS region: pass --region, or set AWS_REGION"
    if isinstance(error, KeyError):
        return f"it has no output {error}: is it the broker's stack, deployed?"
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Message") or error.response.get("Error", {}).get("Code"))
    return type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
