"""The token store's protocol, held to one set of cases for both stores: DynamoDB (on moto's
server) and the in-memory store that the renewal protocol's tests run on. What one allows, the
other allows; what one refuses, the other refuses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from broker.decisions import CachedToken
from broker.failures import Failure, Outage, Refusal
from broker.sensitive import Sensitive
from broker.token_store import Lease, MemoryTokenStore, Need, TokenStore
from broker.token_table import TokenTable
from devstack.local.aws import LocalAws
from tests.simulated import START, Clock

KEY = "k" * 64
NEGATIVE_CACHE = 30
COLD = Need(expires_before=int(START + 60))


@pytest.fixture(params=["memory", "dynamodb"])
def clock_and_store(request: pytest.FixtureRequest, local_aws: LocalAws) -> Iterator[tuple[Clock, TokenStore]]:
    clock = Clock()
    if request.param == "memory":
        yield clock, MemoryTokenStore(NEGATIVE_CACHE, clock)
    else:
        table = local_aws.create_token_table()
        yield clock, TokenTable(local_aws.client("dynamodb"), table, None, clock, refusal_seconds=NEGATIVE_CACHE)


def token(clock: Clock, life_left: float, age: float = 0, value: str = "t") -> CachedToken:
    return CachedToken(Sensitive(value), "Bearer", "", int(clock.now + life_left), round(clock.now - age, 3))


def lease(clock: Clock, owner: str = "a", seconds: float = 10) -> Lease:
    return Lease(owner * 32, clock.now + seconds)


def test_one_lease_at_a_time_until_it_lapses(clock_and_store: tuple[Clock, TokenStore]) -> None:
    clock, store = clock_and_store
    assert store.acquire_lease(KEY, lease(clock, "a"), COLD)
    assert not store.acquire_lease(KEY, lease(clock, "b"), COLD)
    assert store.read(KEY).lease == lease(clock, "a")
    clock.advance(10.5)
    assert store.read(KEY).lease is None
    assert store.acquire_lease(KEY, lease(clock, "b"), Need(expires_before=int(clock.now + 60)))


def test_the_holders_token_frees_the_lease_and_ends_the_need(clock_and_store: tuple[Clock, TokenStore]) -> None:
    clock, store = clock_and_store
    held = lease(clock)
    store.acquire_lease(KEY, held, COLD)

    store.store_token(KEY, token(clock, 3600), held)

    entry = store.read(KEY)
    assert (entry.token, entry.lease) == (token(clock, 3600), None)
    assert not store.acquire_lease(KEY, lease(clock, "b"), COLD)  # a fresh token: no need
    assert store.acquire_lease(KEY, lease(clock, "b"), Need(expires_before=int(clock.now + 3601)))
    assert not store.acquire_lease(KEY, lease(clock, "c"), Need(fetched_before=clock.now - 1))


def test_an_older_token_never_replaces_a_newer_one(clock_and_store: tuple[Clock, TokenStore]) -> None:
    clock, store = clock_and_store
    store.store_token(KEY, token(clock, 3600, value="newer"), None)
    store.store_token(KEY, token(clock, 3000, age=600, value="older"), None)
    stored = store.read(KEY).token
    assert stored is not None
    assert stored.access_token.reveal() == "newer"


def test_a_failure_is_recorded_by_the_holder_only_and_holds_the_lease_back_while_in_force(
    clock_and_store: tuple[Clock, TokenStore],
) -> None:
    clock, store = clock_and_store
    held = lease(clock)
    store.acquire_lease(KEY, held, COLD)
    outage = Outage(int(clock.now + 20))

    store.store_failure(KEY, outage, lease(clock, "b"))  # not the holder: nothing
    assert store.read(KEY).failure is None
    store.store_failure(KEY, outage, held)

    entry = store.read(KEY)
    assert (entry.failure, entry.lease) == (outage, None)
    assert not store.acquire_lease(KEY, lease(clock, "c"), COLD)
    clock.advance(21)
    assert store.read(KEY).failure is None
    assert store.acquire_lease(KEY, lease(clock, "c"), Need(expires_before=int(clock.now + 60)))


@pytest.mark.parametrize(
    "failure",
    [
        Outage(int(START + 3600)),
        Refusal("upstream_error", "invalid_client", int(START + 300)),
    ],
    ids=["an-outage-for-an-hour", "a-refusal-past-the-negative-cache"],
)
def test_a_failure_further_ahead_than_a_broker_writes_is_no_failure(
    clock_and_store: tuple[Clock, TokenStore], failure: Failure
) -> None:
    clock, store = clock_and_store
    held = lease(clock)
    store.acquire_lease(KEY, held, COLD)
    store.store_failure(KEY, failure, held)

    assert store.read(KEY).failure is None
    assert store.acquire_lease(KEY, lease(clock, "b"), COLD)


def test_a_failure_with_a_code_no_broker_writes_is_ignored_and_the_lease_may_be_taken_over_it(
    clock_and_store: tuple[Clock, TokenStore],
) -> None:
    clock, store = clock_and_store
    held = lease(clock)
    store.acquire_lease(KEY, held, COLD)
    store.store_failure(KEY, Refusal("upstream_error", "URGENT: call us\n", int(clock.now + 20)), held)

    entry = store.read(KEY)
    assert (entry.failure, entry.implausible_failure_code) == (None, "URGENT: call us\n")
    assert not store.acquire_lease(KEY, lease(clock, "b"), COLD)  # a condition cannot read characters
    assert store.acquire_lease(KEY, lease(clock, "b"), Need(int(clock.now + 60), None, entry.implausible_failure_code))


def test_only_the_holder_releases_a_lease(clock_and_store: tuple[Clock, TokenStore]) -> None:
    clock, store = clock_and_store
    held = lease(clock)
    store.acquire_lease(KEY, held, COLD)
    store.release_lease(KEY, lease(clock, "b"))
    assert store.read(KEY).lease == held
    store.release_lease(KEY, held)
    assert store.read(KEY).lease is None


def test_a_token_fetched_in_the_future_is_never_served_and_is_renewed(
    clock_and_store: tuple[Clock, TokenStore],
) -> None:
    # Given a token a writer with a fast clock stored, fetched a minute ahead of this clock
    clock, store = clock_and_store
    store.store_token(KEY, token(clock, 3600, age=-60), None)

    # Then neither store serves it, and a request may take the lease to replace it
    assert store.read(KEY).token is None
    assert store.acquire_lease(KEY, lease(clock), COLD)
