"""`make bench`: figures, not pass/fail. Prints one table and writes bench-results.json.

Stampede: for 8, 16 and 32 containers (each its own process) asking for one key at once,
the token requests on a cold key and across one refresh-ahead window (goal: exactly 1), and
how long the callers that did not renew waited (goal: memory or table speed, not the
renewal's). Hot path: the handler's own time on a memory hit in a warm process.
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import time
from typing import Any

from devstack.authserver import LocalAuthorizationServer
from devstack.aws import LocalAws
from devstack.container import ContainerProcess
from devstack.lambda_host import BROKER_ENVIRONMENT, invoke, load_handler_module
from devstack.template import ROOT

CONTAINER_COUNTS = (8, 16, 32)
RENEWAL_DELAY_SECONDS = 0.5  # the authorization server's answer time during the stampedes
WINDOW_LIFETIME_SECONDS = 8
MEMORY_HITS = 5_000
RESULTS = ROOT / "bench-results.json"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Bench:
    def __init__(self) -> None:
        self.aws = LocalAws().start()
        self.server = LocalAuthorizationServer().start()
        self.environment = {
            **self.aws.environment(),
            **BROKER_ENVIRONMENT,
            "TOKEN_TABLE_NAME": self.aws.create_token_table(),
            "TOKEN_KMS_KEY_ID": self.aws.create_kms_key(),
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "MIN_TTL_SECONDS": "1",  # lets the shortened refresh-window tokens be served
        }

    def profile(self) -> str:
        name = f"bench-{secrets.token_hex(4)}"
        client_secret = secrets.token_urlsafe(24)
        self.server.add_client(name, client_secret)
        self.aws.put_profile(
            BROKER_ENVIRONMENT["SECRET_PREFIX"] + name,
            {"token_url": self.server.token_url, "client_id": name, "client_secret": client_secret},
        )
        return name

    def stampede(self, count: int) -> dict[str, Any]:
        containers = [ContainerProcess.start(self.environment) for _ in range(count)]
        for container in containers:
            container.wait_ready()
        try:
            self.server.delay = RENEWAL_DELAY_SECONDS
            cold_profile = self.profile()
            cold = self._all_at_once(containers, cold_profile)
            # One refresh-ahead window, shortened so as not to wait an hour: tokens live
            # WINDOW_LIFETIME s, so every container (memory tier included) enters the window
            # at half of it; then they all ask at once.
            self.server.lifetime = WINDOW_LIFETIME_SECONDS
            window_profile = self.profile()
            first = self._all_at_once(containers, window_profile)
            cached = first[0]["answer"]["access_token"]
            time.sleep(WINDOW_LIFETIME_SECONDS / 2 + 0.5)
            before = len(self.server.token_requests(window_profile))
            window = self._all_at_once(containers, window_profile)
            window_requests = len(self.server.token_requests(window_profile)) - before
        finally:
            self.server.delay, self.server.lifetime = 0.0, 3600
            for container in containers:
                container.close()
        waiting = [r["milliseconds"] for r in window if r["answer"].get("access_token") == cached]
        return {
            "containers": count,
            "cold_key_token_requests": len(self.server.token_requests(cold_profile)),
            "refresh_window_token_requests": window_requests,
            "errors": sum("error" in r["answer"] for r in [*cold, *first, *window]),
            "non_renewer_wait_ms_p50": round(percentile(waiting, 0.5), 2) if waiting else None,
            "non_renewer_wait_ms_max": round(max(waiting), 2) if waiting else None,
        }

    def _all_at_once(self, containers: list[ContainerProcess], profile: str) -> list[dict[str, Any]]:
        for container in containers:
            container.send({"profile": profile})
        return [container.receive() for container in containers]

    def memory_hits(self) -> dict[str, Any]:
        os.environ.update(self.environment)
        app = load_handler_module()
        event = {"profile": self.profile()}
        invoke(app, event)
        timings = []
        for _ in range(MEMORY_HITS):
            started = time.perf_counter()
            invoke(app, event)
            timings.append((time.perf_counter() - started) * 1_000_000)
        return {
            "memory_hit_us_p50": round(statistics.median(timings), 1),
            "memory_hit_us_p99": round(percentile(timings, 0.99), 1),
        }

    def close(self) -> None:
        self.server.stop()
        self.aws.stop()


def main() -> None:
    bench = Bench()
    try:
        stampedes = []
        for count in CONTAINER_COUNTS:
            print(f"stampede with {count} containers ...", flush=True)
            stampedes.append(bench.stampede(count))
        print(f"memory hits x{MEMORY_HITS} ...", flush=True)
        hot = bench.memory_hits()
    finally:
        bench.close()

    print(
        "\n| containers | cold key: token requests (goal 1) | refresh window: token requests (goal 1) "
        "| non-renewers waited p50 / max (ms) | errors |"
    )
    print("| --- | --- | --- | --- | --- |")
    for s in stampedes:
        print(
            f"| {s['containers']} | {s['cold_key_token_requests']} | {s['refresh_window_token_requests']} | "
            f"{s['non_renewer_wait_ms_p50']} / {s['non_renewer_wait_ms_max']} | "
            f"{s['errors']} |"
        )
    print(
        f"\nmemory hit, handler's own time: p50 {hot['memory_hit_us_p50']} µs (target ≤ 150), "
        f"p99 {hot['memory_hit_us_p99']} µs (target ≤ 1000)"
    )
    RESULTS.write_text(json.dumps({"stampedes": stampedes, "hot_path": hot}, indent=2) + "\n")
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
