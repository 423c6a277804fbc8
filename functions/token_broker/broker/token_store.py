"""The fleet's token store: per cache key a token, a renewal lease and a remembered failure; the
protocol the service uses it by; the one definition of what a broker could have written there;
and an in-memory store that keeps the protocol as the DynamoDB one does (`token_table`).

The store is a cache, not an authority (contract promise 11): a time further ahead than any
broker writes it is forged or corrupt, and counts as unset. Each such limit is a `Horizon`,
from which both the reading of an item and the conditions of writing one are made.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

from broker.decisions import CLOCK_SKEW_SECONDS, LEASE_SECONDS, CachedToken
from broker.failures import OUTAGE_BACKOFF_MAX_SECONDS, Failure, Outage


class StoreUnavailable(Exception):
    """The store could not be read or written; the broker carries on without it."""


class Throttled(Exception):
    """The store is there but refused for want of capacity: wait and try again, never go around it."""


class Attribute(StrEnum):
    """The item's attributes, the one place their names are written: the horizons, the need
    for a lease and the DynamoDB store's expressions are all made from these. A token's fields
    of the same name (`expires_at`, `fetched_at`) are what the conditions on them compare."""

    KEY = "cache_key"
    ACCESS_TOKEN = "access_token"  # plaintext, without TOKEN_KMS_KEY_ID
    DPOP_KEY = "dpop_key"  # plaintext, beside a DPoP token
    SEALED_TOKEN = "sealed_token"  # the token (and a DPoP token's key), sealed
    DATA_KEY = "data_key"
    TOKEN_TYPE = "token_type"
    SCOPE = "scope"  # a reserved word in DynamoDB's expressions: always written #scope
    EXPIRES_AT = "expires_at"
    FETCHED_AT = "fetched_at"
    LEASE_OWNER = "lease_owner"
    LEASE_UNTIL = "lease_until"
    FAILED_UNTIL = "failed_until"
    FAILURE_ERROR = "failure_error"
    FAILURE_CODE = "failure_code"
    TTL = "ttl"  # DynamoDB's TTL attribute, as the template names it; reserved: written #ttl


@dataclass(frozen=True, slots=True)
class Horizon:
    """A time attribute that no broker writes further than `ahead` seconds past its reader's clock."""

    attribute: Attribute
    ahead: float

    def plausible(self, value: float, now: float) -> bool:
        return value <= now + self.ahead

    def in_force(self, value: float, now: float) -> bool:
        """Still to come, and no further ahead than a broker writes it."""
        return now < value <= now + self.ahead


LEASE = Horizon(Attribute.LEASE_UNTIL, LEASE_SECONDS + CLOCK_SKEW_SECONDS)
FETCH = Horizon(Attribute.FETCHED_AT, CLOCK_SKEW_SECONDS)
OUTAGE = Horizon(Attribute.FAILED_UNTIL, OUTAGE_BACKOFF_MAX_SECONDS + CLOCK_SKEW_SECONDS)


def refusal_horizon(negative_cache_seconds: int) -> Horizon:
    """No broker remembers a refusal longer than its `NEGATIVE_CACHE_SECONDS`."""
    return Horizon(Attribute.FAILED_UNTIL, negative_cache_seconds + CLOCK_SKEW_SECONDS)


@dataclass(frozen=True, slots=True)
class Lease:
    """The right to renew one key, held by one request (or the renewal function it handed it to)."""

    owner: str
    until: float


@dataclass(frozen=True, slots=True)
class Entry:
    """What the store holds for a key, as far as it is plausible."""

    token: CachedToken | None = None  # None: no token, or one that must not be served
    failure: Failure | None = None  # in force
    lease: Lease | None = None  # in force
    # the item holds a token that must not be served: its fetch time, if that is plausible
    unreadable_since: float | None = None
    # a remembered failure whose code no broker writes: ignored, and the lease may be taken over it
    implausible_failure_code: str | None = None

    def leased(self, now: float) -> bool:
        return self.lease is not None and self.lease.until > now

    def failure_in_force(self, now: float) -> Failure | None:
        return self.failure if self.failure is not None and self.failure.until > now else None


EMPTY = Entry()


@dataclass(frozen=True, slots=True)
class Need:
    """When a lease may be taken: the key's token is missing or impossible, expires before
    `expires_before`, or was fetched before `fetched_before`. A failure whose code `read` found
    implausible (`ignore_failure_code`, which no condition can see) does not hold the lease back."""

    expires_before: int | None = None
    fetched_before: float | None = None
    ignore_failure_code: str | None = None

    def stale_below(self) -> tuple[tuple[Attribute, float], ...]:
        """The rule itself, as data: a token is stale when any of these attributes is below its
        bound. The in-memory store reads it here; the DynamoDB store makes its condition of it."""
        bounds = ((Attribute.EXPIRES_AT, self.expires_before), (Attribute.FETCHED_AT, self.fetched_before))
        return tuple((attribute, bound) for attribute, bound in bounds if bound is not None)

    def met_by(self, token: CachedToken | None) -> bool:
        return token is None or any(getattr(token, attribute) < bound for attribute, bound in self.stale_below())


class TokenStore(Protocol):
    """Every write is conditional: a lease is taken only when free, with no failure in force and
    the token still in `Need`; a token is stored only by its lease's holder or when newer; a
    failure only by the lease's holder, which it lets go of. Reads and writes raise
    `StoreUnavailable` or `Throttled`, except `release_lease`, which is best effort."""

    def read(self, key: str) -> Entry: ...

    def acquire_lease(self, key: str, lease: Lease, need: Need) -> bool: ...

    def store_token(self, key: str, token: CachedToken, lease: Lease | None) -> None: ...

    def store_failure(self, key: str, failure: Failure, lease: Lease) -> None: ...

    def release_lease(self, key: str, lease: Lease) -> None: ...


@dataclass
class _Item:
    token: CachedToken | None = None
    failure: Failure | None = None
    lease: Lease | None = None


class MemoryTokenStore:
    """The protocol in memory, with the DynamoDB store's conditions: for the plan's tests, and
    for simulations that need no table. `down` and `throttled` make it fail as a table would."""

    def __init__(self, negative_cache_seconds: int, clock: Callable[[], float] = time.time) -> None:
        self._refusals = refusal_horizon(negative_cache_seconds)
        self._clock = clock
        self._items: dict[str, _Item] = {}
        self._lock = threading.Lock()
        self.down = False
        self.throttled = False
        self.writes = 0

    def read(self, key: str) -> Entry:
        self._check()
        with self._lock:
            item = self._items.get(key)
        if item is None:
            return EMPTY
        now = self._clock()
        failure, implausible_code = item.failure, None
        if failure is not None and not self._failure_in_force(failure, now):
            failure = None
        if failure is not None and not failure.well_formed():
            implausible_code, failure = failure.code, None
        lease = item.lease if item.lease is not None and LEASE.in_force(item.lease.until, now) else None
        return Entry(_plausible(item.token, now), failure, lease, None, implausible_code)

    def acquire_lease(self, key: str, lease: Lease, need: Need) -> bool:
        self._check()
        now = self._clock()
        with self._lock:
            self.writes += 1
            item = self._items.setdefault(key, _Item())
            if item.lease is not None and LEASE.in_force(item.lease.until, now):
                return False
            failure = item.failure
            if (
                failure is not None
                and self._failure_in_force(failure, now)
                and failure.code != need.ignore_failure_code
            ):
                return False
            if not need.met_by(_plausible(item.token, now)):
                return False
            item.lease = lease
            return True

    def store_token(self, key: str, token: CachedToken, lease: Lease | None) -> None:
        self._check()
        with self._lock:
            self.writes += 1
            item = self._items.setdefault(key, _Item())
            holder = lease is not None and item.lease is not None and item.lease.owner == lease.owner
            newer = item.token is None or item.token.fetched_at < token.fetched_at
            if holder or newer:  # an older token never replaces a newer one
                self._items[key] = _Item(token, None, None if lease is not None else item.lease)

    def store_failure(self, key: str, failure: Failure, lease: Lease) -> None:
        self._check()
        with self._lock:
            self.writes += 1
            item = self._items.get(key)
            if item is not None and item.lease is not None and item.lease.owner == lease.owner:
                self._items[key] = replace(item, failure=failure, lease=None)

    def release_lease(self, key: str, lease: Lease) -> None:
        if self.down or self.throttled:
            return
        with self._lock:
            item = self._items.get(key)
            if item is not None and item.lease is not None and item.lease.owner == lease.owner:
                item.lease = None

    def _failure_in_force(self, failure: Failure, now: float) -> bool:
        return (OUTAGE if isinstance(failure, Outage) else self._refusals).in_force(failure.until, now)

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("the store is down")
        if self.throttled:
            raise Throttled("the store is throttled")


def _plausible(token: CachedToken | None, now: float) -> CachedToken | None:
    """A token fetched in the future is none: never served, renewed like a missing one (as the
    DynamoDB store reads it)."""
    return token if token is None or FETCH.plausible(token.fetched_at, now) else None
