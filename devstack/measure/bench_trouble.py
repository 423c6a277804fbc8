"""`make bench`'s figures of a fleet in trouble: renewal against a slow server (the renewal
function takes it), and simulated containers through an outage, a hung server and a throttled
table."""

from __future__ import annotations

import functools
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from devstack.local.authserver import Fault
from devstack.local.container import ContainerProcess
from devstack.local.lambda_api import LocalLambdaApi
from devstack.local.lambda_host import RENEWAL_FUNCTION_ARN, load_handler_module
from devstack.measure.fleet_model import SimulatedFleet, latency_ms, seed_token
from devstack.measure.timing import percentile

if TYPE_CHECKING:
    from devstack.measure.bench import Bench

TROUBLE_CONTAINERS = 8
OUTAGE_SECONDS = 12.0  # how long the containers keep asking during an outage
# a hung server: far longer than a refresh-ahead's one try, shorter than the back-off after it,
# so that the server's count of requests at once is the broker's, not the server's own lag
OUTAGES = {"500": Fault(status=500), "hang (4 s)": Fault(status=503, delay=4)}
SCALE_MODEL = (200, 50)  # containers, and reads (and writes) per item and second the table allows
SLOW_SERVER_DELAYS = (0.1, 1.0, 3.0, 8.0)
SLOW_SERVER_CONTAINERS = 8


def slow_server(bench: Bench) -> dict[str, Any]:  # its helpers close over the containers it starts
    """Eight containers in a key's refresh-ahead window, asking again every 50 ms until the
    renewal they handed over has stored its token, for each of the server's delays; beside
    them, the same containers' table hits on a key in its window with an outage remembered
    (served from the table, nothing handed over). A container's first ask for a profile also
    reads its secret: first asks and later ones are compared apart."""
    api = LocalLambdaApi(load_handler_module(), bench.stack.sts).start()
    from broker.config import Settings
    from broker.profiles import cache_key, parse_profile
    from broker.renewal_function import Renewal, renewal_event
    from broker.wiring import aws_clients

    environment = {**bench.environment, **bench.stack.environment_with(api)}
    os.environ.update(bench.environment)
    settings, clients = Settings.from_env(bench.environment), aws_clients()
    containers = [
        ContainerProcess.start(environment, caller=bench.stack.developer) for _ in range(SLOW_SERVER_CONTAINERS)
    ]
    for container in containers:
        container.wait_ready()
    server, results = bench.stack.server, {}
    dynamodb = bench.stack.aws.client("dynamodb")

    def in_window() -> tuple[str, dict[str, Any]]:
        """A profile whose token is 200 s from expiry, and its item's key."""
        name, document = bench.profile_document()
        profile = parse_profile(name, json.dumps(document))
        seed_token(settings, clients, profile, life_left=200, age=3400, value=f"bench-{name}")
        return name, {"cache_key": {"S": cache_key(profile, frozenset())}}

    def fetched_at(key: dict[str, Any]) -> str:
        return str(dynamodb.get_item(TableName=settings.table_name, Key=key)["Item"]["fetched_at"]["N"])

    def rounds(profile: str, until: Callable[[], bool], least: int) -> tuple[list[float], list[dict[str, Any]]]:
        """The first round's times, and every round's results, asking until `until` (or `least` rounds)."""
        first = bench.all_at_once(containers, profile)
        later: list[dict[str, Any]] = []
        while len(later) < least * len(containers) or not until():
            time.sleep(0.05)
            later += bench.all_at_once(containers, profile)
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
        bench.developer_session().client("lambda", endpoint_url=api.endpoint_url).invoke(
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


def trouble(bench: Bench) -> dict[str, Any]:
    """The fleet's answers when the authorization server or the table is in trouble."""
    from broker.profiles import parse_profile

    os.environ.update(bench.environment)  # the simulated containers' AWS clients reach moto
    server, results = bench.stack.server, {}
    fleet = SimulatedFleet(bench.environment, TROUBLE_CONTAINERS, bench.stack.developer.arn)
    for name, outage in OUTAGES.items():
        # a cached token inside the refresh-ahead window, as an outage begins
        profile, document = bench.profile_document()
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
    outcomes = fleet.ask_at_once({"profile": bench.profile()})
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
    fleet = SimulatedFleet(bench.environment, containers, bench.stack.developer.arn)
    with bench.stack.aws.throttled(per_second) as throttle:
        outcomes = fleet.ask_at_once({"profile": bench.profile()})
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
