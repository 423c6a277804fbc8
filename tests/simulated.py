"""A fleet of `TokenService`s on a simulated clock: the real service and renewal plan over the
in-memory store, with an authorization server and a renewal function that take simulated time.
Every case of the renewal protocol runs in milliseconds, without sockets or sleeping.

The clock runs scheduled events when it passes them, so other containers' requests (or a lease
holder's write) can happen while one request waits or while the server takes its time.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from broker.caller_identity import Caller, Door
from broker.callers import parse_caller_rule, principal_of
from broker.client_auth import SecretBasic
from broker.config import Settings
from broker.errors import BrokerError, UpstreamError, UpstreamUnavailable
from broker.profiles import Profile, cache_key
from broker.renewal_function import Renewal
from broker.sensitive import Sensitive
from broker.service import Served, TokenService
from broker.token_endpoint import IssuedToken
from broker.token_request import TokenRequest
from broker.token_store import MemoryTokenStore

START = 1_800_000_000.0
CALLER = Caller(Door.DIRECT, principal_of("arn:aws:sts::123456789012:assumed-role/orders-consumer/orders-fn"))
PROFILE = Profile(
    name="orders",
    token_url="https://idp.example.com/oauth2/v1/token",
    client_id="orders-client",
    client_auth=SecretBasic(Sensitive("s3cret-for-the-simulation")),
    allowed_callers=(parse_caller_rule("arn:aws:iam::123456789012:role/orders-*"),),
)
KEY = cache_key(PROFILE, frozenset())


class Clock:
    """Simulated epoch seconds; `sleep` and `advance` run the events they pass, in order."""

    def __init__(self, start: float = START) -> None:
        self.now = start
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (when, next(self._order), action))

    def after(self, seconds: float, action: Callable[[], None]) -> None:
        self.at(self.now + seconds, action)

    def advance(self, seconds: float) -> None:
        target = self.now + seconds
        while self._events and self._events[0][0] <= target:
            when, _, action = heapq.heappop(self._events)
            self.now = max(self.now, when)
            action()
        self.now = max(self.now, target)

    sleep = advance


@dataclass
class Server:
    """The authorization server as the service sees it: each request takes `delay` simulated
    seconds and issues a token of `lifetime`, unless `failures` says otherwise (popped in order);
    a request that would end past its `until` is abandoned there, as the real exchange is."""

    clock: Clock
    delay: float = 0.05
    lifetime: int = 3600
    failures: list[BrokerError] = field(default_factory=list)
    outage: BrokerError | None = None  # every request fails so, while set
    requests: list[float] = field(default_factory=list)  # when each began
    issued: list[str] = field(default_factory=list)
    in_flight: int = 0
    peak_in_flight: int = 0

    def fetch(self, profile: Profile, scopes: frozenset[str], until: float, attempts: int) -> IssuedToken:
        self.requests.append(self.clock.now)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if self.clock.now + self.delay > until:
                self.clock.advance(max(0.0, until - self.clock.now))
                raise UpstreamUnavailable("the authorization server did not issue a token in time", retry_after=1)
            self.clock.advance(self.delay)
            failure = self.failures.pop(0) if self.failures else self.outage
            if failure is not None:
                raise failure
            value = f"token-{len(self.issued) + 1}"
            self.issued.append(value)
            return IssuedToken(Sensitive(value), "Bearer", self.lifetime, None)
        finally:
            self.in_flight -= 1


class Profiles:
    def __init__(self, profile: Profile = PROFILE) -> None:
        self.profile = profile
        self.reads = 0

    def get(self, name: str, *, fresh: bool = False) -> Profile:
        self.reads += 1
        return self.profile


@dataclass
class RenewalFunction:
    """Lambda's queue for `InvocationType: Event`: each renewal handed over runs `latency`
    simulated seconds later, on its own container (a `TokenService` of the same fleet)."""

    clock: Clock
    container: Callable[[], TokenService]
    latency: float = 0.05
    accepting: bool = True
    handed: list[Renewal] = field(default_factory=list)
    timeout: float = 15.0

    def hand_off(self, renewal: Renewal) -> bool:
        if not self.accepting:
            return False
        self.handed.append(renewal)
        self.clock.after(self.latency, lambda: self.run(renewal))
        return True

    def run(self, renewal: Renewal) -> None:
        # the renewal handler logs a failure; the fleet learns of it from the store
        with contextlib.suppress(BrokerError):
            self.container().renew(renewal, self.clock.now + self.timeout)


class Fleet:
    """Containers sharing one store, server and clock; `settings` as the environment gives them."""

    def __init__(self, hand_off: bool = False, **settings: int) -> None:
        self.clock = Clock()
        self.settings = Settings(table_name="tokens", region="us-east-1", **settings)  # type: ignore[arg-type]
        self.store = MemoryTokenStore(self.settings.negative_cache_seconds, self.clock)
        self.server = Server(self.clock)
        self.profiles = Profiles()
        self.renewal_function = RenewalFunction(self.clock, self.container) if hand_off else None

    def container(self) -> TokenService:
        """A new container: its own memory tier, the fleet's store and server."""
        return TokenService(
            self.settings,
            self.profiles,  # type: ignore[arg-type]
            self.store,
            self.server,  # type: ignore[arg-type]
            self.renewal_function,  # type: ignore[arg-type]
            clock=self.clock,
            sleep=self.clock.sleep,
        )

    def ask(
        self, container: TokenService | None = None, *, min_ttl: int | None = None, force_refresh: bool = False
    ) -> Asked:
        """One request, in `container` (default: a new one), with 15 s to answer."""
        request = TokenRequest(PROFILE.name, None, min_ttl, force_refresh)
        started = self.clock.now
        try:
            served = (container or self.container()).get_token(request, CALLER, started + 15.0)
        except BrokerError as error:
            return Asked(None, error, self.clock.now - started)
        return Asked(served, None, self.clock.now - started)

    def seed(self, *, life_left: float, lifetime: float = 3600, value: str = "cached") -> None:
        """A token in the store, fetched `lifetime - life_left` seconds ago."""
        from broker.decisions import CachedToken

        now = self.clock.now
        expires_at = int(now + life_left)
        token = CachedToken(Sensitive(value), "Bearer", "", expires_at, round(expires_at - lifetime, 3))
        self.store.store_token(KEY, token, None)

    def stored(self) -> str | None:
        token = self.store.read(KEY).token
        return token.access_token.reveal() if token is not None else None


@dataclass(frozen=True)
class Asked:
    served: Served | None
    error: BrokerError | None
    waited: float  # simulated seconds the caller waited

    @property
    def token(self) -> str | None:
        return self.served.token.access_token.reveal() if self.served is not None else None


def refused(code: str = "invalid_client") -> UpstreamError:
    return UpstreamError(f"the authorization server refused the token request: {code}", upstream_error=code)
