"""`make demo`: the broker's main job on this machine, with local AWS and a local OAuth server.

Shows a cold fetch, a memory hit, and a DynamoDB hit from a fresh container (a new process),
then stops everything it started. Tokens are shown as fingerprints, never in full.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from typing import Any

from devstack.authserver import LocalAuthorizationServer
from devstack.aws import LocalAws
from devstack.container import ContainerProcess
from devstack.lambda_host import BROKER_ENVIRONMENT, invoke, load_handler_module

PROFILE = "okta-default"
TIERS = {"MemoryHit": "memory tier", "TableHit": "DynamoDB tier", "TokenRequests": "authorization server"}


def masked(token: str) -> str:
    return f"token#{hashlib.sha256(token.encode()).hexdigest()[:10]} ({len(token)} chars)"


def describe(step: str, answer: dict[str, Any], metrics: list[str], milliseconds: float) -> None:
    if "error" in answer:
        print(f"  {step:<34} ERROR {json.dumps(answer)}")
        return
    tier = next((label for name, label in TIERS.items() if name in metrics), "?")
    print(
        f"  {step:<34} {masked(answer['access_token'])}  expires_in={answer['expires_in']}  "
        f"scope={answer['scope']!r}  from the {tier} in {milliseconds:.1f} ms"
    )


def fresh_container(environment: dict[str, str], event: dict[str, Any]) -> dict[str, Any]:
    """One invocation in a new process: a new Lambda container sharing only the table."""
    container = ContainerProcess.start(environment)
    container.wait_ready()
    result = container.invoke(event)
    container.close()
    return result


def main() -> None:
    print("Token Broker demo: local AWS (moto) and a local OAuth 2.0 server, no Docker, no AWS account\n")
    aws = LocalAws().start()
    server = LocalAuthorizationServer().start()
    try:
        client_secret = secrets.token_urlsafe(24)
        server.add_client("demo-service-app", client_secret)
        table = aws.create_token_table("token-broker-demo")
        aws.put_profile(
            BROKER_ENVIRONMENT["SECRET_PREFIX"] + PROFILE,
            {
                "token_url": server.token_url,
                "client_id": "demo-service-app",
                "client_secret": client_secret,
                "scopes": ["customScope"],
            },
        )
        print(f"  moto server            {aws.endpoint_url}  (Secrets Manager, KMS, DynamoDB table {table!r})")
        print(f"  authorization server   {server.token_url}  (client demo-service-app)")
        print(f"  profile                secret {BROKER_ENVIRONMENT['SECRET_PREFIX'] + PROFILE!r}\n")

        environment = {
            **aws.environment(),
            **BROKER_ENVIRONMENT,
            "TOKEN_TABLE_NAME": table,
            "TOKEN_KMS_KEY_ID": aws.create_kms_key(),  # cached tokens are sealed, as deployed
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
        os.environ.update(environment)
        app = load_handler_module()
        event = {"profile": PROFILE}
        print(f"Invoking the handler with {json.dumps(event)}:")
        for step in ("1. cold start, nothing cached", "2. same container again"):
            invocation = invoke(app, event)
            describe(step, invocation.answer, invocation.metrics, invocation.milliseconds)
        other = fresh_container(environment, event)
        describe("3. a fresh container (new process)", other["answer"], other["metrics"], other["milliseconds"])

        requests = server.token_requests()
        print(f"\nToken requests the authorization server received: {len(requests)}")
        print("Answer shape:", json.dumps({**other["answer"], "access_token": "..."}))
    finally:
        server.stop()
        aws.stop()
    print("\nStopped the local servers.")


if __name__ == "__main__":
    main()
