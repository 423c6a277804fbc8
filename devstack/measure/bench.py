"""`make bench`: the broker's figures beside their targets. Prints one table and writes
bench-results.json. Figures, not pass/fail: the test suite holds no timed assertions.

- Cold start, measured on what ships (`devstack.coldstart`): CPU time of a clean interpreter
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
- DPoP (`devstack.bench_dpop`): a consumer's proof for each algorithm and signer, a DPoP memory
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
import functools
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

from devstack import bench_dpop
from devstack.artifacts import BUILD, FUNCTION_CODE_LIMIT, LAYER_LIMIT, artifact_sizes
from devstack.authserver import Fault
from devstack.coldstart import measure as measure_cold_start
from devstack.coldstart import measure_consumer, tracing_environment
from devstack.container import ContainerProcess
from devstack.fleet_model import SimulatedFleet, latency_ms, percentile, seed_token
from devstack.lambda_api import LocalLambdaApi
from devstack.lambda_host import (
    BROKER_ENVIRONMENT,
    FUNCTION_ARN,
    RENEWAL_FUNCTION_ARN,
    LambdaContext,
    invoke,
    load_handler_module,
)
from devstack.stack import DEMO_PROFILE, DEVELOPER_ROLE_ARN, LocalStack, create_profile
from devstack.sts import credentials_environment, with_proof
from devstack.template import ROOT

CONTAINER_COUNTS = (8, 16, 32)
TROUBLE_CONTAINERS = 8
OUTAGE_SECONDS = 12.0  # how long the containers keep asking during an outage
# a hung server: far longer than a refresh-ahead's one try, shorter than the back-off after it,
# so that the server's count of requests at once is the broker's, not the server's own lag
OUTAGES = {"500": Fault(status=500), "hang (4 s)": Fault(status=503, delay=4)}
SCALE_MODEL = (200, 50)  # containers, and reads (and writes) per item and second the table allows
RENEWAL_DELAY_SECONDS = 0.5  # the authorization server's answer time during the stampedes
WINDOW_LIFETIME_SECONDS = 8
SLOW_SERVER_DELAYS = (0.1, 1.0, 3.0, 8.0)
SLOW_SERVER_CONTAINERS = 8
HOT_RUNS = 5_000
MEMORY_HIT_TARGET_US = 60
TABLE_RUNS = 300
RESULTS = ROOT / "bench-results.json"
CALLS = (
    "DynamoDB_20120810.GetItem",
    "DynamoDB_20120810.UpdateItem",
    "TrentService.Decrypt",
    "TrentService.GenerateDataKey",
    "secretsmanager.GetSecretValue",
)


def timed(action: Callable[[], Any], runs: int) -> list[float]:
    """Microseconds per run of `action`."""
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        timings.append((time.perf_counter() - started) * 1_000_000)
    return timings


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

    def hot_path(self) -> dict[str, Any]:
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
            cold = self._all_at_once(containers, cold_profile)
            # One refresh-ahead window, shortened so as not to wait an hour: tokens live
            # WINDOW_LIFETIME s, so every container (memory tier included) enters the window
            # at half of it; then they all ask at once.
            server.lifetime = WINDOW_LIFETIME_SECONDS
            window_profile = self.profile()
            first = self._all_at_once(containers, window_profile)
            cached = first[0]["answer"]["access_token"]
            time.sleep(WINDOW_LIFETIME_SECONDS / 2 + 0.5)
            before = len(server.token_requests(window_profile))
            window = self._all_at_once(containers, window_profile)
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

    def slow_server(self) -> dict[str, Any]:
        """Eight containers in a key's refresh-ahead window, asking again every 50 ms until the
        renewal they handed over has stored its token, for each of the server's delays; beside
        them, the same containers' table hits on a key in its window with an outage remembered
        (served from the table, nothing handed over). A container's first ask for a profile also
        reads its secret: first asks and later ones are compared apart."""
        api = LocalLambdaApi(load_handler_module(), self.stack.sts).start()
        from broker.config import Settings
        from broker.profiles import cache_key, parse_profile
        from broker.renewal_function import Renewal, renewal_event
        from broker.wiring import aws_clients

        environment = {**self.environment, **self.stack.environment_with(api)}
        os.environ.update(self.environment)
        settings, clients = Settings.from_env(self.environment), aws_clients()
        containers = [
            ContainerProcess.start(environment, caller=self.stack.developer) for _ in range(SLOW_SERVER_CONTAINERS)
        ]
        for container in containers:
            container.wait_ready()
        server, results = self.stack.server, {}
        dynamodb = self.stack.aws.client("dynamodb")

        def in_window() -> tuple[str, dict[str, Any]]:
            """A profile whose token is 200 s from expiry, and its item's key."""
            name, document = self.profile_document()
            profile = parse_profile(name, json.dumps(document))
            seed_token(settings, clients, profile, life_left=200, age=3400, value=f"bench-{name}")
            return name, {"cache_key": {"S": cache_key(profile, frozenset())}}

        def fetched_at(key: dict[str, Any]) -> str:
            return str(dynamodb.get_item(TableName=settings.table_name, Key=key)["Item"]["fetched_at"]["N"])

        def rounds(profile: str, until: Callable[[], bool], least: int) -> tuple[list[float], list[dict[str, Any]]]:
            """The first round's times, and every round's results, asking until `until` (or `least` rounds)."""
            first = self._all_at_once(containers, profile)
            later: list[dict[str, Any]] = []
            while len(later) < least * len(containers) or not until():
                time.sleep(0.05)
                later += self._all_at_once(containers, profile)
            return [r["milliseconds"] for r in first], [*first, *later]

        try:
            hit_profile, hit_key = in_window()
            dynamodb.update_item(  # an outage remembered for a minute: every answer a plain table hit
                TableName=settings.table_name,
                Key=hit_key,
                UpdateExpression="SET failed_until = :until, failure_error = :error, failure_code = :code",
                ExpressionAttributeValues={
                    ":until": {"N": str(int(time.time()) + 60)},
                    ":error": {"S": "upstream_unavailable"},
                    ":code": {"S": ""},
                },
            )
            first, answers = rounds(hit_profile, lambda: True, least=10)
            later = [r["milliseconds"] for r in answers[len(first) :]]
            results["table_hit_ms"] = {"first_max": round(max(first), 2), "later_max": round(max(later), 2)}
            # The renewal function warm, as it is once it has renewed anything (the first renewal after a
            # deploy also waits for its cold start): an event naming a lease nobody holds renews nothing.
            warm_up = renewal_event(Renewal(hit_profile, frozenset(), "0" * 32))
            self.developer_session().client("lambda", endpoint_url=api.endpoint_url).invoke(
                FunctionName=RENEWAL_FUNCTION_ARN, Payload=json.dumps(warm_up).encode()
            )
            for delay in SLOW_SERVER_DELAYS:
                profile, key = in_window()
                seeded_at, server.delay, started = fetched_at(key), delay, time.time()
                renewed = functools.partial(lambda key, seeded: fetched_at(key) != seeded, key, seeded_at)
                first, answers = rounds(profile, renewed, least=10)
                arrived = time.time() - started
                api.drain()
                later = [r["milliseconds"] for r in answers[len(first) :]]
                results[f"{delay:g} s"] = {
                    "delay_s": delay,
                    "first_max_ms": round(max(first), 2),
                    "later_ms": {
                        "p50": round(statistics.median(later), 2),
                        "p99": round(percentile(later, 0.99), 2),
                        "max": round(max(later), 2),
                    },
                    "answers": len(answers),
                    "errors": sum("error" in r["answer"] for r in answers),
                    "token_requests": len(server.token_requests(profile)),
                    "renewed_token_in_table_after_s": round(arrived, 2),
                }
        finally:
            server.delay = 0.0
            api.stop()
            for container in containers:
                container.close()
        return results

    def trouble(self) -> dict[str, Any]:
        """The fleet's answers when the authorization server or the table is in trouble."""
        from broker.profiles import parse_profile

        os.environ.update(self.environment)  # the simulated containers' AWS clients reach moto
        server, results = self.stack.server, {}
        fleet = SimulatedFleet(self.environment, TROUBLE_CONTAINERS, self.stack.developer.arn)
        for name, outage in OUTAGES.items():
            # a cached token inside the refresh-ahead window, as an outage begins
            profile, document = self.profile_document()
            seed_token(
                fleet.settings,
                fleet.clients,
                parse_profile(profile, json.dumps(document)),
                life_left=200,
                age=3400,
                value=f"bench-{profile}",
            )
            server.reset()
            server.outage = outage
            outcomes = fleet.ask_for({"profile": profile}, OUTAGE_SECONDS)
            server.outage = None
            results[f"cached_{name}"] = {
                **latency_ms(outcomes),
                "answers": len(outcomes),
                "errors": sum(outcome.error is not None for outcome in outcomes),
                "token_requests_per_second": round(server.arrived / OUTAGE_SECONDS, 2),
                "most_token_requests_at_once": server.peak_in_flight,
            }
        server.reset()
        server.outage = OUTAGES["500"]
        outcomes = fleet.ask_at_once({"profile": self.profile()})
        server.outage = None
        results["cold_500"] = {
            **latency_ms(outcomes),
            "answers": len(outcomes),
            "503_with_retry_after": sum(
                bool(outcome.error and outcome.error["status"] == 503 and outcome.error.get("retry_after"))
                for outcome in outcomes
            ),
            "token_requests": server.arrived,
            "most_token_requests_at_once": server.peak_in_flight,
        }
        server.reset()
        containers, per_second = SCALE_MODEL
        fleet = SimulatedFleet(self.environment, containers, self.stack.developer.arn)
        with self.stack.aws.throttled(per_second) as throttle:
            outcomes = fleet.ask_at_once({"profile": self.profile()})
        results["scale_model"] = {
            **latency_ms(outcomes),
            "containers": containers,
            "allowed_reads_per_second": per_second,
            "errors": sum(outcome.error is not None for outcome in outcomes),
            "distinct_tokens": len({outcome.token for outcome in outcomes}),
            "token_requests": server.arrived,
            "reads_per_second_peak": throttle.peak("read"),
            "reads_asked_per_second_peak": throttle.peak("read", throttle.accepted + throttle.refused),
            "throttled_requests": sum(throttle.refused.values()),
        }
        return results

    def _all_at_once(self, containers: list[ContainerProcess], profile: str) -> list[dict[str, Any]]:
        for container in containers:
            container.send({"profile": profile})
        return [container.receive() for container in containers]


def report(results: dict[str, Any]) -> None:
    cold, consumer, hot = results["cold_start"], results["consumer_cold_start"], results["hot_path"]
    rows = [
        ("cold start, CPU: floor (boto3, 2 clients, 1 GetItem)", f"{cold['floor_ms']} ms", "-"),
        (
            "cold start, CPU: broker as built (bytecode) / floor",
            f"{cold['ratio']} ({cold['broker_ms']} ms)",
            "<= 1.25, below the peer",
        ),
        (
            "cold start, CPU: Authlib Lambda (the peer) / floor",
            f"{cold['peer_ratio']} ({cold['authlib_peer_ms']} ms)",
            "-",
        ),
        (
            "cold start, CPU: broker without bytecode (SAM's pip workflow) / floor",
            f"{cold['without_bytecode_ratio']} ({cold['broker_without_bytecode_ms']} ms)",
            "-",
        ),
        (
            "consumer cold start, CPU: floor (import boto3, 1 Invoke round trip)",
            f"{consumer['consumer_floor_ms']} ms",
            "-",
        ),
        (
            "consumer cold start, CPU: token_client / floor",
            f"{consumer['ratio']} ({consumer['consumer_ms']} ms)",
            "<= 1.15",
        ),
        (
            "consumer cold start, CPU: token_client with a boto3 Lambda client / floor",
            f"{consumer['boto3_client_ratio']} ({consumer['consumer_with_boto3_client_ms']} ms)",
            "-",
        ),
        (
            "memory hit p50, bare handler at INFO, proof verified earlier",
            f"{hot['memory_hit_us_p50']} µs",
            f"<= {MEMORY_HIT_TARGET_US} µs",
        ),
        ("memory hit p99", f"{hot['memory_hit_us_p99']} µs", "<= 250 µs"),
        ("first request with a new proof p50 (1 STS call, memory hit)", f"{hot['first_proof_us_p50']} µs", "-"),
        ("DynamoDB hit p50, sealed (KMS)", f"{hot['table_hit_kms_us_p50']} µs", "-"),
        ("DynamoDB hit p50, plaintext", f"{hot['table_hit_plain_us_p50']} µs", "-"),
        ("unsealing a cached token (AES-GCM, data key cached)", f"{hot['unseal_us_p50']} µs", "-"),
        ("renewal p50 (local server)", f"{hot['renewal_us_p50']} µs", "-"),
        ("AWS calls, memory hit", json.dumps(hot["memory_hit_calls"]), "none"),
        ("AWS calls, first DynamoDB hit", json.dumps(hot["first_table_hit_calls"]), "1 read, 1 KMS"),
        ("AWS calls, later DynamoDB hit", json.dumps(hot["table_hit_calls"]), "1 read, no KMS"),
        ("AWS calls, renewal", json.dumps(hot["renewal_calls"]), "<= 3 writes, 1 token request"),
    ]
    for name, size in results["artifacts"].items():
        limit = FUNCTION_CODE_LIMIT if name.endswith("Function") else LAYER_LIMIT
        rows.append((f"artifact {name} (unzipped)", f"{size / 1024:.1f} KiB", f"<= {limit / 1024:.0f} KiB"))
    print("\n| figure | measured | target |\n| --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(
        "\n| containers | cold key: token requests | refresh window: token requests | non-renewers waited "
        "p50 / max (ms) | errors |\n| --- | --- | --- | --- | --- |"
    )
    for s in results["stampedes"]:
        print(
            f"| {s['containers']} | {s['cold_key_token_requests']} (goal 1) | {s['refresh_window_token_requests']} "
            f"(goal 1) | {s['non_renewer_wait_ms_p50']} / {s['non_renewer_wait_ms_max']} | {s['errors']} |"
        )
    report_slow_server(results["slow_server"])
    report_trouble(results["trouble"])
    bench_dpop.report(results["dpop"], MEMORY_HIT_TARGET_US)


def report_slow_server(slow: dict[str, Any]) -> None:
    hit = slow["table_hit_ms"]
    print(
        f"\nRenewal against a slow server ({SLOW_SERVER_CONTAINERS} containers in the refresh-ahead window, "
        f"RENEWAL_FUNCTION set); beside a table hit in the window: first ask max {hit['first_max']} ms, later "
        f"asks max {hit['later_max']} ms\n"
        "| server answers in | first ask max (ms) | later asks p50 / p99 / max (ms) | answers, errors | "
        "token requests | renewed token in the table after | target |\n| --- | --- | --- | --- | --- | --- | --- |"
    )
    for row in (value for name, value in slow.items() if name != "table_hit_ms"):
        later = row["later_ms"]
        print(
            f"| {row['delay_s']:g} s | {row['first_max_ms']} | {later['p50']} / {later['p99']} / {later['max']} | "
            f"{row['answers']}, {row['errors']} | {row['token_requests']} | "
            f"{row['renewed_token_in_table_after_s']} s | max within 20 ms of a table hit's, 1 token request, "
            f"<= {row['delay_s'] + 1:g} s |"
        )


def report_trouble(trouble: dict[str, Any]) -> None:
    print(
        f"\nUnder trouble ({TROUBLE_CONTAINERS} simulated containers; outages last {OUTAGE_SECONDS:.0f} s)\n"
        "| situation | answers p50 / p95 / max (ms) | outcome | token requests | target |\n"
        "| --- | --- | --- | --- | --- |"
    )
    for name in OUTAGES:
        t = trouble[f"cached_{name}"]
        print(
            f"| cached key, server answers {name} | {t['p50']} / {t['p95']} / {t['max']} | "
            f"{t['answers']} answers, {t['errors']} errors | {t['token_requests_per_second']}/s, "
            f"at most {t['most_token_requests_at_once']} at once | p95 <= 50 ms, max <= one try "
            "(0.8 s, growing to 5 s through the window), 0 errors, 1 at once |"
        )
    c = trouble["cold_500"]
    print(
        f"| cold key, server answers 500 | {c['p50']} / {c['p95']} / {c['max']} | {c['503_with_retry_after']} of "
        f"{c['answers']} are 503 with retry_after | {c['token_requests']}, at most {c['most_token_requests_at_once']} "
        "at once | p95 <= 5000 ms, all 503 with retry_after, 1 at once |"
    )
    m = trouble["scale_model"]
    print(
        f"| cold key, {m['containers']} containers, table allows {m['allowed_reads_per_second']} reads/s per item | "
        f"{m['p50']} / {m['p95']} / {m['max']} | {m['errors']} errors, {m['distinct_tokens']} token(s); reads/s "
        f"peak {m['reads_per_second_peak']} served of {m['reads_asked_per_second_peak']} asked, "
        f"{m['throttled_requests']} throttled | {m['token_requests']} | 1 token request, 0 errors |"
    )


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
        results["slow_server"] = bench.slow_server()
        print("under trouble ...", flush=True)
        results["trouble"] = bench.trouble()
    results["artifacts"] = artifact_sizes() if BUILD.is_dir() else {}
    if not results["artifacts"]:
        print("(no artifact sizes: run `make build` first)")
    report(results)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
