"""`make demo`: the broker's main job on this machine, with local AWS and a local OAuth server.

Shows a cold fetch, a memory hit, and a DynamoDB hit from a fresh container (a new process), each
for a caller whose proof the local STS verified and whom the profile admits; then a caller the
profile does not admit and one without a proof; then a profile with no secret at all (the
broker assumes the profile's own role and proves it with a web identity token from the local
STS); then a token inside its refresh-ahead window, answered from the table while its renewal
runs in the renewal function (queued by the local Lambda API as Lambda queues Event
invocations); last, a DPoP profile (Okta's default), from the broker through token_client to a
resource server that checks every proof. Tokens are shown as fingerprints, never in full.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import warnings
from typing import Any

from devstack.local.container import ContainerProcess
from devstack.local.lambda_api import LocalLambdaApi
from devstack.local.lambda_host import RENEWAL_FUNCTION_ARN, invoke, load_handler_module
from devstack.local.stack import (
    DEMO_PROFILE,
    DEVELOPER_ROLE_ARN,
    DPOP_CLIENT,
    DPOP_PROFILE,
    LocalStack,
    create_profile,
    create_web_identity_profile,
)
from devstack.local.sts import Issued, with_proof

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
        dpop(stack, api)
        requests = stack.server.token_requests()
        challenged = sum(1 for r in requests if r.status == 400 and r.client_id == DPOP_CLIENT)
        print(
            f"\nToken requests the authorization server received: {len(requests)} "
            f"({challenged} of them answered with a DPoP nonce challenge, as Okta answers a first request)"
        )
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
    from devstack.measure.fleet_model import seed_token

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


def dpop(stack: LocalStack, api: LocalLambdaApi) -> None:
    """A DPoP profile from the broker to the API: token_client asks the broker over the local
    Invoke API, and its urllib3 adapter proves each request with the token's key, answering the
    resource server's nonce challenge; a proof sent again is refused."""
    import boto3
    import urllib3

    from token_client import TokenClient
    from token_client.urllib3_auth import request

    credentials = stack.developer.credentials
    session = boto3.session.Session(
        credentials.access_key, credentials.secret_key, credentials.token, region_name="us-east-1"
    )
    os.environ["AWS_ENDPOINT_URL_LAMBDA"] = api.endpoint_url
    client = TokenClient(function_arn=api.function_arn, session=session)
    url = f"{stack.resource.url}/api/v1/users"
    print(f"\nA DPoP profile ({DPOP_PROFILE}, token_binding dpop, as Okta's API Services apps require by default):")
    with contextlib.redirect_stdout(io.StringIO()):  # the handler's metrics, which Lambda sends to CloudWatch
        token = client.token(DPOP_PROFILE)
    if token.dpop_key is None:
        raise SystemExit(f"the broker answered {DPOP_PROFILE} with a {token.token_type} token, not a DPoP one")
    bound = stack.server.introspect(token.value).get("cnf", {}).get("jkt")
    print(
        f"  {'9. the broker':<34} {masked(token.value)}  token_type={token.token_type}  with its key, "
        f"thumbprint {token.dpop_key.thumbprint} ({'= the token' if bound == token.dpop_key.thumbprint else '!='}"
        " cnf.jkt)"
    )
    first = request(client, DPOP_PROFILE, "GET", url)
    second = request(client, DPOP_PROFILE, "GET", url)
    trail = ", ".join(str(r.status) for r in stack.resource.requests)
    print(f"  {'10. token_client to the API':<34} {first.status}, then {second.status} (the API saw {trail}: its nonce")
    print(f"  {'':<34} challenge, answered once; each request with a proof of its own)")
    headers = client.headers(DPOP_PROFILE, "GET", url)
    again = [urllib3.request("GET", url, headers=headers).status for _ in range(2)]
    print(f"  {'11. one proof sent twice':<34} {again[0]}, then {again[1]}: a replayed proof is refused")


if __name__ == "__main__":
    main()
