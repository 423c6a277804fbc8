"""`make demo`: the broker's main job on this machine, with local AWS and a local OAuth server.

Shows a cold fetch, a memory hit, and a DynamoDB hit from a fresh container (a new process), each
for a caller whose proof the local STS verified and whom the profile admits; then a caller the
profile does not admit and one without a proof; then a profile with no secret at all (the
broker's role proves itself with a web identity token from the local STS); then a token inside
its refresh-ahead window,
answered from the table while its renewal runs in the renewal function (queued by the local
Lambda API as Lambda queues Event invocations). Tokens are shown as fingerprints, never in full.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from typing import Any

from devstack.container import ContainerProcess
from devstack.lambda_api import LocalLambdaApi
from devstack.lambda_host import RENEWAL_FUNCTION_ARN, invoke, load_handler_module
from devstack.stack import (
    DEMO_PROFILE,
    DEVELOPER_ROLE_ARN,
    LocalStack,
    create_profile,
    create_web_identity_profile,
)
from devstack.sts import Issued, with_proof

TIERS = {"MemoryHit": "memory tier", "TableHit": "DynamoDB tier", "TokenRequests": "authorization server"}
# POWERTOOLS_LOG_LEVEL=DEBUG (or INFO) make demo: the handler logs at that level, above each step
LOG_LEVEL = os.environ.get("POWERTOOLS_LOG_LEVEL")


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


def fresh_container(environment: dict[str, str], event: dict[str, Any], caller: Issued) -> dict[str, Any]:
    """One invocation in a new process: a new Lambda container sharing only the table."""
    container = ContainerProcess.start(environment, caller=caller)
    container.wait_ready()
    result = container.invoke(event)
    container.close()
    return result


def main() -> None:
    # an error answer publishes its metric on its own; Powertools warns that the rest is empty
    warnings.filterwarnings("ignore", "No application metrics to publish")
    print("Token Broker demo: local AWS (moto) and a local OAuth 2.0 server, no Docker, no AWS account\n")
    with LocalStack(log_level=LOG_LEVEL or "WARNING") as stack:
        print("\n".join(stack.describe()), "\n")
        api = LocalLambdaApi(None, stack.sts)
        environment = stack.environment_with(api)  # renewals ahead of expiry go to the renewal function
        os.environ.update(environment)
        app = api.app = load_handler_module()
        api.start()
        developer = stack.developer
        event = {"profile": DEMO_PROFILE}
        print(f"Invoking the handler with {json.dumps(event)} and a caller proof of {developer.arn}:")
        for step in ("1. cold start, nothing cached", "2. same container again"):
            invocation = invoke(app, with_proof(event, developer))
            describe(step, invocation.answer, invocation.metrics, invocation.milliseconds)
        other = fresh_container(environment, event, developer)
        describe("3. a fresh container (new process)", other["answer"], other["metrics"], other["milliseconds"])

        outsider = stack.sts.assume_role("reporting", "reporting-fn")
        print(f"\nThe profile admits {developer.arn.split('/')[1]}'s sessions only:")
        refused = invoke(app, with_proof(event, outsider))
        describe(f"4. {outsider.arn.split(':')[-1]}", refused.answer, refused.metrics, refused.milliseconds)
        unproven = invoke(app, event)
        describe("5. no caller proof", unproven.answer, unproven.metrics, unproven.milliseconds)

        secretless(stack, app)
        ahead(stack, app, api, environment)
        print(f"\nToken requests the authorization server received: {len(stack.server.token_requests())}")
        print("Answer shape:", json.dumps({**other["answer"], "access_token": "..."}))
        if not LOG_LEVEL:
            print("(POWERTOOLS_LOG_LEVEL=DEBUG make demo shows the handler's log lines above each step)")
        api.stop()
    print("\nStopped the local servers.")


def secretless(stack: LocalStack, app: Any) -> None:
    """A profile without any secret: the app trusts the profile's own role through a federated
    credential (as Entra ID does); the broker assumes that role, tagged with the profile's name, and
    proves it with a JWT the local STS issues."""
    document = create_web_identity_profile(
        stack.aws, stack.server, stack.sts, "entra-federated", "federated-app", allowed_callers=[DEVELOPER_ROLE_ARN]
    )
    print(f"\nA profile with no secret at all (it holds {', '.join(sorted(document))}):")
    invocation = invoke(app, with_proof({"profile": "entra-federated"}, stack.developer))
    describe("6. aws_web_identity_token", invocation.answer, invocation.metrics, invocation.milliseconds)
    print(
        f"  {'':<34} the broker assumed {document['web_identity_role']} (tag token-broker-profile=entra-federated)"
        f" and proved it with a JWT of {stack.sts.issuer} (GetWebIdentityToken)"
    )


def ahead(stack: LocalStack, app: Any, api: LocalLambdaApi, environment: dict[str, str]) -> None:
    """A token 200 s from expiry, inside its 300 s refresh-ahead window, and a server taking 1 s."""
    from broker.config import Settings
    from broker.profiles import parse_profile
    from broker.wiring import aws_clients
    from devstack.fleet_model import seed_token

    document = create_profile(stack.aws, stack.server, "okta-ahead", "ahead-app", allowed_callers=[DEVELOPER_ROLE_ARN])
    profile = parse_profile("okta-ahead", json.dumps(document))
    seed_token(Settings.from_env(environment), aws_clients(), profile, life_left=200, age=3400, value="seeded-token")
    stack.server.delay = 1.0
    event = with_proof({"profile": "okta-ahead"}, stack.developer)
    print("\nA token 200 s from expiry (inside its refresh-ahead window); the server now takes 1 s to answer:")
    seeded = invoke(app, event)
    describe("7. in the window", seeded.answer, seeded.metrics, seeded.milliseconds)
    print(f"  {'':<34} the renewal was handed to {RENEWAL_FUNCTION_ARN.split(':')[-1]}, which runs it meanwhile")
    api.drain()
    renewed = fresh_container(environment, {"profile": "okta-ahead"}, stack.developer)
    describe("8. a fresh container, afterwards", renewed["answer"], renewed["metrics"], renewed["milliseconds"])
    stack.server.delay = 0.0


if __name__ == "__main__":
    main()
