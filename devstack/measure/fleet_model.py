"""A fleet of broker containers in one process, for tests and figures that need hundreds.

Each simulated container is a `TokenService` as `wiring` builds it: its own memory tier, its own
profile cache, its own view of the table (which it skips after a failure). They share the AWS
clients and the process, which real containers would not; the table, the authorization server
and the clock are as real as in the rest of the local stack. A request runs on one thread per
container, all released together. Their metrics (EMF lines on stdout) are discarded.

One setting differs from `wiring`'s: moto, answering a few hundred threads in this process on a
small machine, can take longer than DynamoDB's milliseconds to accept and answer, so the
clients' connect and read timeouts are longer here. A container that timed out on moto would
measure the simulator, not the broker.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.config import Config

from broker.caller_identity import Caller, Door
from broker.callers import principal_of
from broker.config import Settings
from broker.decisions import CachedToken
from broker.errors import BrokerError, InternalError
from broker.profiles import Profile, cache_key
from broker.sensitive import Sensitive
from broker.service import TokenService
from broker.token_request import parse_request
from broker.token_sealer import TokenSealer
from broker.token_table import TokenTable
from broker.wiring import AwsClients, aws_clients, build_service
from devstack.measure.timing import percentile

# Connections per shared client: enough that the containers wait on the table, not on the pool.
POOL_SIZE = 50
SIMULATOR_CONFIG = Config(max_pool_connections=POOL_SIZE, connect_timeout=10.0, read_timeout=10.0)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One container's answer: the token's value and life left, or the error answer."""

    token: str | None
    expires_in: int | None
    error: dict[str, Any] | None
    seconds: float


def seed_token(
    settings: Settings, clients: AwsClients, profile: Profile, *, life_left: int, age: int, value: str
) -> None:
    """Stores a token in the table exactly as a broker stores it (sealed when `settings` name a
    key): `life_left` seconds to go, fetched `age` seconds ago."""
    sealer = TokenSealer(clients.kms, settings.kms_key_id) if settings.kms_key_id else None
    table = TokenTable(clients.dynamodb, settings.table_name, sealer, refusal_seconds=settings.negative_cache_seconds)
    now = time.time()
    token = CachedToken(Sensitive(value), "Bearer", "", int(now) + life_left, round(now - age, 3))
    table.store_token(cache_key(profile, frozenset()), token, None)


class SimulatedFleet:
    """`size` containers with the settings `environment` gives; their AWS clients are made from
    the process's environment, which must reach the local stack first (as for `load_handler_module`)."""

    def __init__(self, environment: Mapping[str, str], size: int, caller_arn: str) -> None:
        self.settings = Settings.from_env(environment)
        self.clients = aws_clients(SIMULATOR_CONFIG)
        self.containers = [build_service(self.settings, self.clients) for _ in range(size)]
        self._caller = Caller(Door.DIRECT, principal_of(caller_arn))

    def ask_at_once(self, event: dict[str, Any], deadline_seconds: float = 15.0) -> list[Outcome]:
        """Every container asks for `event` at the same moment; their outcomes, in order."""
        outcomes: list[Outcome | None] = [None] * len(self.containers)
        start = threading.Barrier(len(self.containers))

        def ask(index: int) -> None:
            start.wait()
            outcomes[index] = self.ask(index, event, deadline_seconds)

        _run_all(ask, len(self.containers))
        return [outcome for outcome in outcomes if outcome is not None]

    def ask_for(self, event: dict[str, Any], seconds: float, pause: float = 0.05) -> list[Outcome]:
        """Every container asks for `event` again and again for `seconds`, `pause` apart."""
        outcomes: list[Outcome] = []
        lock = threading.Lock()
        until = time.monotonic() + seconds

        def keep_asking(index: int) -> None:
            while time.monotonic() < until:
                outcome = self.ask(index, event)
                with lock:
                    outcomes.append(outcome)
                time.sleep(pause)

        _run_all(keep_asking, len(self.containers))
        return outcomes

    def ask(self, index: int, event: dict[str, Any], deadline_seconds: float = 15.0) -> Outcome:
        """Container `index` answers `event` as its handler would, with a verified caller."""
        service: TokenService = self.containers[index]
        started = time.perf_counter()
        try:
            served = service.get_token(parse_request(event), self._caller, time.time() + deadline_seconds)
        except BrokerError as error:
            return Outcome(None, None, error.answer(), time.perf_counter() - started)
        except Exception as error:  # counted as the handler would answer it, and named
            answer = InternalError(f"unexpected {type(error).__name__}: {error}").answer()
            return Outcome(None, None, answer, time.perf_counter() - started)
        token = served.token
        return Outcome(
            token.access_token.reveal(), int(token.expires_at - time.time()), None, time.perf_counter() - started
        )


def _run_all(work: Callable[[int], None], count: int) -> None:
    """`work(index)` for every container, each on its own thread; their stdout is discarded."""
    threads = [threading.Thread(target=work, args=(index,)) for index in range(count)]
    with contextlib.redirect_stdout(io.StringIO()):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def latency_ms(outcomes: list[Outcome]) -> dict[str, float]:
    """p50, p95 and max of the answers' times, in milliseconds."""
    times = [outcome.seconds * 1000 for outcome in outcomes] or [0.0]
    return {
        "p50": round(statistics.median(times), 1),
        "p95": round(percentile(times, 0.95), 1),
        "max": round(max(times), 1),
    }
