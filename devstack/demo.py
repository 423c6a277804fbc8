"""`make demo`: the broker's main job on this machine, with local AWS and a local OAuth server.

Shows a cold fetch, a memory hit, and a DynamoDB hit from a fresh container (a new process),
then stops everything it started. Tokens are shown as fingerprints, never in full.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from devstack.container import ContainerProcess
from devstack.lambda_host import invoke, load_handler_module
from devstack.stack import DEMO_PROFILE, LocalStack

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
    with LocalStack() as stack:
        print("\n".join(stack.describe()), "\n")
        os.environ.update(stack.environment)
        app = load_handler_module()
        event = {"profile": DEMO_PROFILE}
        print(f"Invoking the handler with {json.dumps(event)}:")
        for step in ("1. cold start, nothing cached", "2. same container again"):
            invocation = invoke(app, event)
            describe(step, invocation.answer, invocation.metrics, invocation.milliseconds)
        other = fresh_container(stack.environment, event)
        describe("3. a fresh container (new process)", other["answer"], other["metrics"], other["milliseconds"])

        print(f"\nToken requests the authorization server received: {len(stack.server.token_requests())}")
        print("Answer shape:", json.dumps({**other["answer"], "access_token": "..."}))
    print("\nStopped the local servers.")


if __name__ == "__main__":
    main()
