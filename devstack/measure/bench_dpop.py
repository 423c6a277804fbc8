"""`make bench`'s DPoP figures (contract 4): what a proof costs a consumer, what a DPoP memory hit
costs the broker beside a Bearer one, and what a fleet asking for one DPoP key costs the
authorization server (its nonce challenge included)."""

from __future__ import annotations

import functools
import os
import statistics
import time
from typing import Any

from devstack.local.container import ContainerProcess
from devstack.local.lambda_host import LambdaContext, load_handler_module
from devstack.local.stack import DEVELOPER_ROLE_ARN, LocalStack, create_profile
from devstack.local.sts import with_proof
from devstack.measure.timing import percentile, timed

PROOF_RUNS = {"ES256": 2_000, "RS256": 100, "PS256": 100}
PROOF_RUNS_PURE_RSA = 30  # about 10 ms each in pure Python
HIT_RUNS = 5_000
FLEET_CONTAINERS = 8


def proof_costs() -> dict[str, Any]:
    """A consumer's proof (token_client's `DpopKey.proof`) for each algorithm and signer, and the
    pure-Python signer's one-time table of P-256 multiples, made at a process's first ES256 proof."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm

    from token_client import dpop

    dpop._COMB.clear()
    started = time.perf_counter()
    dpop._comb()
    results: dict[str, Any] = {"python_es256_table_ms": round((time.perf_counter() - started) * 1000, 1)}
    for algorithm, runs in PROOF_RUNS.items():
        if algorithm == "ES256":
            jwk = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), as_dict=True)
        else:
            jwk = RSAAlgorithm.to_jwk(rsa.generate_private_key(public_exponent=65537, key_size=2048), as_dict=True)
        for signer in sorted(dpop.SIGNERS):
            key = dpop.DpopKey({**jwk, "alg": algorithm}, signer)
            count = PROOF_RUNS_PURE_RSA if signer == "python" and algorithm != "ES256" else runs
            proof = functools.partial(key.proof, "GET", "https://api.example.com/v1/users", "t" * 900)
            timings = timed(proof, count)
            results[f"{algorithm}_{signer}"] = {
                "p50_us": round(statistics.median(timings), 1),
                "p99_us": round(percentile(timings, 0.99), 1),
            }
    return results


def memory_hits(stack: LocalStack, environment: dict[str, str], discard: Any) -> dict[str, Any]:
    """The bare handler's memory hit for a Bearer and a DPoP profile, side by side in one container
    (the DPoP answer also carries its key)."""
    os.environ.update(environment)
    app: Any = load_handler_module()
    context = LambdaContext(timeout_seconds=900)
    results = {}
    for binding in ("bearer", "dpop"):
        name = f"bench-{binding}-{os.urandom(3).hex()}"
        create_profile(stack.aws, stack.server, name, name, allowed_callers=[DEVELOPER_ROLE_ARN], token_binding=binding)
        event = with_proof({"profile": name}, stack.developer)
        with discard():
            app.lambda_handler(event, context)  # fetched, cached, and the proof verified
            timings = timed(functools.partial(app.lambda_handler, event, context), HIT_RUNS)
        results[binding] = {
            "p50_us": round(statistics.median(timings), 1),
            "p99_us": round(percentile(timings, 0.99), 1),
        }
    return results


def fleet(stack: LocalStack, environment: dict[str, str]) -> dict[str, Any]:
    """Containers (each its own process, none knowing the server's nonce) asking for one cold DPoP
    key at once: token requests and tokens issued at the server, and the keys they were handed."""
    containers = [ContainerProcess.start(environment, caller=stack.developer) for _ in range(FLEET_CONTAINERS)]
    for container in containers:
        container.wait_ready()
    name = f"bench-dpop-fleet-{os.urandom(3).hex()}"
    create_profile(stack.aws, stack.server, name, name, allowed_callers=[DEVELOPER_ROLE_ARN], token_binding="dpop")
    try:
        for container in containers:
            container.send({"profile": name})
        answers = [container.receive()["answer"] for container in containers]
    finally:
        for container in containers:
            container.close()
    requests = stack.server.token_requests(name)
    return {
        "containers": FLEET_CONTAINERS,
        "token_requests": len(requests),
        "nonce_challenges": sum(1 for request in requests if request.status == 400),
        "tokens_issued": sum(1 for token in stack.server.tokens.values() if token.client_id == name),
        "distinct_tokens": len({answer.get("access_token") for answer in answers}),
        "distinct_keys": len({str(answer.get("dpop_key")) for answer in answers}),
        "errors": sum("error" in answer for answer in answers),
    }


def report(results: dict[str, Any], bearer_target_us: int) -> None:
    proofs, hits, fleet_result = results["proofs"], results["memory_hits"], results["fleet"]
    print("\nDPoP (contract 4)\n| figure | measured | target |\n| --- | --- | --- |")
    for name, figure in proofs.items():
        if name == "python_es256_table_ms":
            continue
        algorithm, signer = name.split("_")
        target = "p50 <= 150 µs" if algorithm == "ES256" else "-"
        print(
            f"| a consumer's proof, {algorithm}, {signer} signer: p50 / p99 | {figure['p50_us']} / "
            f"{figure['p99_us']} µs | {target} |"
        )
    print(
        f"| pure Python: P-256 table, once per process (first ES256 proof) | {proofs['python_es256_table_ms']} ms | - |"
    )
    print(
        f"| memory hit p50 / p99, Bearer | {hits['bearer']['p50_us']} / {hits['bearer']['p99_us']} µs | "
        f"p50 <= {bearer_target_us} µs |"
    )
    print(
        f"| memory hit p50 / p99, DPoP (the answer carries the key) | {hits['dpop']['p50_us']} / "
        f"{hits['dpop']['p99_us']} µs | - |"
    )
    print(
        f"| {fleet_result['containers']} containers, one cold DPoP key | {fleet_result['tokens_issued']} token issued, "
        f"{fleet_result['token_requests']} requests ({fleet_result['nonce_challenges']} nonce challenge), "
        f"{fleet_result['distinct_tokens']} token and {fleet_result['distinct_keys']} key handed out, "
        f"{fleet_result['errors']} errors | 1 token, 1 key, 0 errors |"
    )
