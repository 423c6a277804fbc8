"""`make bench`: the broker's figures beside their targets. Prints one table and writes
bench-results.json. Figures, not pass/fail: the test suite holds no timed assertions.

- Cold start, measured on what ships (`devstack.measure.coldstart`): CPU time of a clean interpreter
  with `make build`'s output on its path (and the runtime's SDK, no awscrt) that imports the
  handler and serves one request whose token is in DynamoDB; beside the floor (boto3, the
  DynamoDB and Secrets Manager clients, one GetItem), the same build without bytecode (as SAM's
  pip workflow alone ships it), and a plain Lambda that fetches its own token with Authlib.
  Medians of 20 interleaved processes per side, tracing on.
- Consumer cold start: a consumer that imports token_client (the built layer) and gets its
  first token, beside one that gives it a boto3 Lambda client, and the floor: `import boto3`
  and one Invoke round trip.
- Hot path: the handler called bare (as Lambda's runtime calls it) for a memory hit, a
  DynamoDB hit (with and without KMS) and a renewal, at INFO with its output to /dev/null; and
  the AWS calls each makes, counted at moto's server.
- DPoP (`devstack.measure.bench_dpop`): a consumer's proof for each algorithm and signer, a DPoP memory
  hit beside a Bearer one, and 8 containers asking for one cold DPoP key.
- Stampedes: 8, 16 and 32 containers (each its own process) asking for one key at once.
- Renewal against a slow server: 8 containers with a token in its refresh-ahead window, handing
  the renewal to the renewal function (behind the local Lambda API, queued as Lambda queues
  Event invocations) while the server takes 0.1, 1, 3 and 8 s: callers' times beside a table
  hit's, token requests, and when the renewed token reached the table.
- Under trouble: simulated containers (`fleet_model`) asking for a cached key through an outage
  (every token request answered 500, or hung), for a cold key through that outage, and for a
  cold key while the table throttles (the scale model: a few hundred containers, a table that
  allows a fixed number of reads per item and second).
- Artifacts: what `make build` produced, unzipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from devstack.local.container import ContainerProcess
from devstack.local.lambda_api import LocalLambdaApi
from devstack.local.lambda_host import (
    BROKER_ENVIRONMENT,
    FUNCTION_ARN,
    RENEWAL_FUNCTION_ARN,
    LambdaContext,
    invoke,
    load_handler_module,
)
from devstack.local.stack import DEMO_PROFILE, DEVELOPER_ROLE_ARN, LocalStack, create_profile
from devstack.local.sts import credentials_environment, with_proof
from devstack.measure import bench_dpop, bench_trouble
from devstack.measure.artifacts import BUILD, artifact_sizes
from devstack.measure.bench_report import report
from devstack.measure.coldstart import measure as measure_cold_start
from devstack.measure.coldstart import measure_consumer, tracing_environment
from devstack.measure.timing import percentile, timed
from devstack.template import ROOT

CONTAINER_COUNTS = (8, 16, 32)
RENEWAL_DELAY_SECONDS = 0.5  # the authorization server's answer time during the stampedes
WINDOW_LIFETIME_SECONDS = 8
HOT_RUNS = 5_000
TABLE_RUNS = 300
RESULTS = ROOT / "bench-results.json"
CALLS = (
    "DynamoDB_20120810.GetItem",
    "DynamoDB_20120810.UpdateItem",
    "TrentService.Decrypt",
    "TrentService.GenerateDataKey",
    "secretsmanager.GetSecretValue",
)


@contextlib.contextmanager
def output_discarded() -> Iterator[None]:
    """This process's stdout (file descriptor 1) goes to /dev/null meanwhile."""
    sys.stdout.flush()
    saved, discard = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(discard, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(discard)


class Bench:
    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        # tokens of WINDOW_LIFETIME_SECONDS must be servable in the stampede's refresh window
        self.environment = {**stack.environment, "MIN_TTL_SECONDS": "1"}

    def profile(self) -> str:
        return self.profile_document()[0]

    def profile_document(self) -> tuple[str, dict[str, Any]]:
        name = f"bench-{os.urandom(4).hex()}"
        document = create_profile(
            self.stack.aws, self.stack.server, name, client_id=name, allowed_callers=[DEVELOPER_ROLE_ARN]
        )
        return name, document

    def signed(self, event: dict[str, Any]) -> dict[str, Any]:
        """`event` with a fresh caller proof of the local developer, whom bench profiles admit."""
        signed: dict[str, Any] = with_proof(event, self.stack.developer)
        return signed

    def developer_session(self) -> Any:
        """A boto3 session with the local developer's credentials."""
        credentials = self.stack.developer.credentials
        return boto3.session.Session(
            aws_access_key_id=credentials.access_key,
            aws_secret_access_key=credentials.secret_key,
            aws_session_token=credentials.token,
            region_name="us-east-1",
        )

    def calls(self) -> dict[str, int]:
        counts = {target: self.stack.aws.calls(target) for target in CALLS}
        counts["token requests"] = len(self.stack.server.token_requests())
        return counts

    def calls_during(self, action: Callable[[], Any]) -> dict[str, int]:
        before = self.calls()
        action()
        return {name: count - before[name] for name, count in self.calls().items() if count - before[name]}

    def cold_start(self) -> dict[str, Any]:
        container = ContainerProcess.start(self.environment, caller=self.stack.developer)
        container.wait_ready()
        container.invoke({"profile": DEMO_PROFILE})  # the token is in the table now
        container.close()
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))  # an X-Ray daemon nobody reads
        environment = {
            **self.environment,
            "RENEWAL_FUNCTION": RENEWAL_FUNCTION_ARN,  # as the template sets it: a client made at first hand-off
            **tracing_environment(sink.getsockname()[1]),
            "AUTHLIB_INSECURE_TRANSPORT": "1",  # the peer's local authorization server is plain http
        }
        secret_id = BROKER_ENVIRONMENT["SECRET_PREFIX"] + DEMO_PROFILE
        result = measure_cold_start(environment, self.signed({"profile": DEMO_PROFILE}), secret_id)
        sink.close()
        return result

    def consumer_cold_start(self) -> dict[str, Any]:
        """A consumer Lambda's cold start against the broker container of `hot_path`, behind the
        local Invoke API (which checks signatures as Lambda does)."""
        api = LocalLambdaApi(load_handler_module(), self.stack.sts).start()
        try:
            profile = self.profile()
            url = f"{api.endpoint_url}/2015-03-31/functions/{quote(FUNCTION_ARN, safe='')}/invocations"
            body = json.dumps(self.signed({"profile": profile})).encode()
            request = AWSRequest("POST", url, data=body, headers={"X-Amz-Invocation-Type": "RequestResponse"})
            SigV4Auth(self.stack.developer.credentials, "lambda", "us-east-1").add_auth(request)
            environment = {
                **credentials_environment(self.stack.developer),
                "AWS_REGION": "us-east-1",
                "AWS_ENDPOINT_URL_LAMBDA": api.endpoint_url,
            }
            with output_discarded():  # the broker's lines, in this process
                return measure_consumer(environment, FUNCTION_ARN, profile, (url, body, dict(request.headers)))
        finally:
            api.stop()

    def hot_path(self) -> dict[str, Any]:  # one container's states in turn, each set up by the last
        """The handler called bare, as Lambda's runtime calls it, with one context and its output
        (the audit line, the EMF documents) written to /dev/null; the AWS calls are counted
        through `invoke`."""
        os.environ.update(self.environment)
        app: Any = load_handler_module()
        from broker.config import Settings
        from broker.token_sealer import TokenSealer
        from broker.wiring import build_caller_identity, build_service

        sealed = app.SERVICE
        plain = build_service(Settings.from_env({**self.environment, "TOKEN_KMS_KEY_ID": ""}))
        profile = self.profile()
        event = self.signed({"profile": profile})
        context = LambdaContext(timeout_seconds=900)  # Lambda's longest: one context serves every run
        results: dict[str, Any] = {}

        def handler(event: dict[str, Any]) -> Callable[[], Any]:
            return lambda: app.lambda_handler(event, context)

        invoke(app, event)  # cached, in memory and (sealed) in the table, and the proof verified
        # A new proof costs one STS call; the container then remembers the identity for its life.
        first_proof = []
        with output_discarded():
            for _ in range(20):
                app.IDENTITY = build_caller_identity(Settings.from_env(self.environment))
                fresh = self.signed({"profile": profile})
                first_proof += timed(handler(fresh), 1)
        results["first_proof_us_p50"] = round(statistics.median(first_proof), 1)
        event = fresh  # the proof this container has verified
        results["memory_hit_calls"] = self.calls_during(lambda: invoke(app, event))
        with output_discarded():
            memory = timed(handler(event), HOT_RUNS)
        results["memory_hit_us_p50"] = round(statistics.median(memory), 1)
        results["memory_hit_us_p99"] = round(percentile(memory, 0.99), 1)

        def table_hit() -> None:
            app.SERVICE._memory.clear()  # a container whose memory tier lacks the key
            app.lambda_handler(event, context)

        app.SERVICE = build_service(Settings.from_env(self.environment))  # a fresh container
        with output_discarded():
            results["first_table_hit_calls"] = self.calls_during(table_hit)
            results["table_hit_calls"] = self.calls_during(table_hit)
            results["table_hit_kms_us_p50"] = round(statistics.median(timed(table_hit, TABLE_RUNS)), 1)
        sealer = TokenSealer(self.stack.aws.client("kms"), self.environment["TOKEN_KMS_KEY_ID"])
        sealed_token = sealer.seal(b"cache-key", "x" * 1200)  # about a JWT access token
        results["unseal_us_p50"] = round(
            statistics.median(timed(lambda: sealer.open(b"cache-key", sealed_token), HOT_RUNS)), 1
        )

        app.SERVICE = plain
        event = self.signed({"profile": self.profile()})
        invoke(app, event)
        with output_discarded():
            results["table_hit_plain_us_p50"] = round(statistics.median(timed(table_hit, TABLE_RUNS)), 1)

        # no force_refresh cooldown: every such request renews
        app.SERVICE = build_service(Settings.from_env({**self.environment, "FORCE_REFRESH_COOLDOWN_SECONDS": "0"}))
        renew_event = self.signed({"profile": profile, "force_refresh": True})
        invoke(app, renew_event)  # the container's first: reads the secret, makes a data key
        results["renewal_calls"] = self.calls_during(lambda: invoke(app, renew_event))
        with output_discarded():
            renewal = timed(handler(renew_event), 100)
        results["renewal_us_p50"] = round(statistics.median(renewal), 1)
        app.SERVICE = sealed
        return results

    def stampede(self, count: int) -> dict[str, Any]:
        containers = [ContainerProcess.start(self.environment, caller=self.stack.developer) for _ in range(count)]
        for container in containers:
            container.wait_ready()
        server = self.stack.server
        try:
            server.delay = RENEWAL_DELAY_SECONDS
            cold_profile = self.profile()
            cold = self.all_at_once(containers, cold_profile)
            # One refresh-ahead window, shortened so as not to wait an hour: tokens live
            # WINDOW_LIFETIME s, so every container (memory tier included) enters the window
            # at half of it; then they all ask at once.
            server.lifetime = WINDOW_LIFETIME_SECONDS
            window_profile = self.profile()
            first = self.all_at_once(containers, window_profile)
            cached = first[0]["answer"]["access_token"]
            time.sleep(WINDOW_LIFETIME_SECONDS / 2 + 0.5)
            before = len(server.token_requests(window_profile))
            window = self.all_at_once(containers, window_profile)
            window_requests = len(server.token_requests(window_profile)) - before
        finally:
            server.delay, server.lifetime = 0.0, 3600
            for container in containers:
                container.close()
        waiting = [r["milliseconds"] for r in window if r["answer"].get("access_token") == cached]
        return {
            "containers": count,
            "cold_key_token_requests": len(server.token_requests(cold_profile)),
            "refresh_window_token_requests": window_requests,
            "errors": sum("error" in r["answer"] for r in [*cold, *first, *window]),
            "non_renewer_wait_ms_p50": round(percentile(waiting, 0.5), 2) if waiting else None,
            "non_renewer_wait_ms_max": round(max(waiting), 2) if waiting else None,
        }

    def all_at_once(self, containers: list[ContainerProcess], profile: str) -> list[dict[str, Any]]:
        for container in containers:
            container.send({"profile": profile})
        return [container.receive() for container in containers]


def main() -> None:
    results: dict[str, Any] = {}
    with LocalStack() as stack:
        bench = Bench(stack)
        print("cold start ...", flush=True)
        results["cold_start"] = bench.cold_start()
        print("hot path ...", flush=True)
        results["hot_path"] = bench.hot_path()
        print("DPoP ...", flush=True)
        results["dpop"] = {
            "proofs": bench_dpop.proof_costs(),
            "memory_hits": bench_dpop.memory_hits(stack, bench.environment, output_discarded),
            "fleet": bench_dpop.fleet(stack, bench.environment),
        }
        print("consumer cold start ...", flush=True)
        results["consumer_cold_start"] = bench.consumer_cold_start()
        results["stampedes"] = []
        for count in CONTAINER_COUNTS:
            print(f"stampede with {count} containers ...", flush=True)
            results["stampedes"].append(bench.stampede(count))
        print("renewal against a slow server ...", flush=True)
        results["slow_server"] = bench_trouble.slow_server(bench)
        print("under trouble ...", flush=True)
        results["trouble"] = bench_trouble.trouble(bench)
    results["artifacts"] = artifact_sizes() if BUILD.is_dir() else {}
    if not results["artifacts"]:
        print("(no artifact sizes: run `make build` first)")
    report(results)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
