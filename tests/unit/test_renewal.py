"""The renewal protocol, case by case, in milliseconds: the plan's decisions on their own, then the
real service carrying them out for a simulated fleet (tests/simulated.py) against the in-memory
store, a scripted authorization server and a renewal function, on a simulated clock.

Every row of the trouble and renewal tables is here (contract promises 2 to 4 and 11 to 13);
tests with processes, moto and a real authorization server prove only that the real parts
coordinate the same way.
"""

from __future__ import annotations

import pytest

from broker.decisions import CachedToken
from broker.errors import BrokerError, InvalidRequest, UpstreamUnavailable
from broker.failures import Outage, Refusal, remembered
from broker.renewal import (
    TRY_AHEAD_FIRST_SECONDS,
    TRY_AHEAD_LAST_SECONDS,
    FetchAlone,
    HandOff,
    Known,
    ReadTable,
    Refuse,
    Renew,
    Serve,
    Source,
    TableState,
    TryAhead,
    Wait,
    Want,
    handed_lease,
    next_step,
    rereads_secret,
    still_serves,
    try_ahead_seconds,
)
from broker.renewal_function import Renewal, parse_renewal_event, renewal_event
from broker.sensitive import Sensitive
from broker.token_store import EMPTY, Entry, Lease, Need
from tests.simulated import KEY, PROFILE, START, Fleet, refused

NOW = START
DEADLINE = NOW + 14.5


def token(life_left: float, lifetime: float = 3600, value: str = "t") -> CachedToken:
    expires_at = int(NOW + life_left)
    return CachedToken(Sensitive(value), "Bearer", "", expires_at, expires_at - lifetime)


def want(**changes: object) -> Want:
    fields: dict[str, object] = {"min_ttl": 60, "requested_min_ttl": None, "floor": 60, "started": NOW}
    return Want(**{**fields, **changes})  # type: ignore[arg-type]


class TestThePlan:
    """`next_step` on its own: what a request does, given what it knows."""

    def test_a_memory_token_outside_its_window_is_served_before_the_table_is_read(self) -> None:
        memory = token(3000)
        assert next_step(Known(memory), want(), NOW, DEADLINE) == Serve(memory, Source.MEMORY)

    @pytest.mark.parametrize("memory", [None, token(200), token(30)], ids=["none", "in-its-window", "too-short"])
    def test_otherwise_the_table_is_read(self, memory: CachedToken | None) -> None:
        assert next_step(Known(memory), want(), NOW, DEADLINE) == ReadTable()

    def test_force_refresh_never_serves_the_memory_tier(self) -> None:
        assert next_step(Known(token(3000)), want(force_refresh=True), NOW, DEADLINE) == ReadTable()

    def test_a_table_token_outside_its_window_is_served(self) -> None:
        cached = token(3000)
        assert next_step(Known(None, Entry(cached)), want(), NOW, DEADLINE) == Serve(cached, Source.TABLE)

    def test_inside_the_window_one_request_tries_ahead_within_the_time_the_token_allows(self) -> None:
        cached = token(250)
        step = next_step(Known(None, Entry(cached)), want(), NOW, DEADLINE)
        assert isinstance(step, TryAhead)
        assert step.serving == Serve(cached, Source.TABLE)
        assert step.need == Need(expires_before=int(NOW + 300))
        assert step.until <= cached.expires_at - 60

    def test_with_a_renewal_function_it_hands_the_renewal_over(self) -> None:
        cached = token(250)
        step = next_step(Known(None, Entry(cached)), want(hand_off=True), NOW, DEADLINE)
        # should Lambda not take the event, the one bounded try that a request without a renewal
        # function would make
        fallback = NOW + try_ahead_seconds(cached, want(hand_off=True), NOW)
        assert step == HandOff(Need(expires_before=int(NOW + 300)), Serve(cached, Source.TABLE), fallback)

    def test_a_hand_off_with_no_time_left_for_a_try_has_no_fallback(self) -> None:
        cached = token(60.1)  # a tenth of a second above the min TTL
        step = next_step(Known(None, Entry(cached)), want(hand_off=True), NOW, DEADLINE)
        assert isinstance(step, HandOff)
        assert step.fallback_until is None

    @pytest.mark.parametrize(
        "entry",
        [
            Entry(token(250), lease=Lease("another", NOW + 5)),
            Entry(token(250), failure=Outage(int(NOW + 10))),
            Entry(token(250), failure=Refusal("upstream_error", "invalid_client", int(NOW + 10))),
        ],
        ids=["another-renews", "outage-remembered", "refusal-remembered"],
    )
    def test_inside_the_window_the_fleet_is_served_while_another_renews_or_after_a_failure(self, entry: Entry) -> None:
        for hand_off in (False, True):
            step = next_step(Known(None, entry), want(hand_off=hand_off), NOW, DEADLINE)
            assert step == Serve(entry.token, Source.TABLE)  # type: ignore[arg-type]

    def test_the_try_grows_from_the_windows_start_to_its_end(self) -> None:
        budgets = [try_ahead_seconds(token(life_left), want(), NOW) for life_left in (300, 180, 60)]
        assert budgets == [TRY_AHEAD_FIRST_SECONDS, pytest.approx(2.9), TRY_AHEAD_LAST_SECONDS]

    def test_a_token_about_to_fall_below_the_min_ttl_is_served_not_tried(self) -> None:
        cached = token(60.1)
        assert next_step(Known(None, Entry(cached)), want(), NOW, DEADLINE) == Serve(cached, Source.TABLE)

    def test_a_token_below_the_min_ttl_is_renewed_with_the_whole_budget(self) -> None:
        step = next_step(Known(None, Entry(token(59))), want(), NOW, DEADLINE)
        assert step == Renew(Need(expires_before=int(NOW + 60)), NOW + 8)

    def test_a_token_the_table_lost_is_served_from_memory_and_renewed_ahead(self) -> None:
        memory = token(250)
        step = next_step(Known(memory, EMPTY), want(), NOW, DEADLINE)
        assert isinstance(step, TryAhead)
        assert step.serving == Serve(memory, Source.MEMORY)

    def test_a_cold_key_is_renewed_unless_another_holds_the_lease(self) -> None:
        assert isinstance(next_step(Known(None, EMPTY), want(), NOW, DEADLINE), Renew)
        leased = Entry(lease=Lease("another", NOW + 5))
        assert next_step(Known(None, leased), want(), NOW, DEADLINE) == Wait(0.05)
        assert next_step(Known(None, EMPTY, contended=True), want(), NOW, DEADLINE) == Wait(0.05)

    def test_waits_double_up_to_a_cap_and_a_higher_one_while_the_table_throttles(self) -> None:
        leased = Entry(lease=Lease("another", NOW + 5))
        assert next_step(Known(None, leased, poll=0.4), want(), NOW, DEADLINE) == Wait(0.5)
        assert next_step(Known(None, TableState.THROTTLED, poll=2.0), want(), NOW, DEADLINE) == Wait(4.0)

    def test_a_waiter_gives_up_at_its_deadline_with_retry_after(self) -> None:
        leased = Entry(lease=Lease("another", NOW + 5))
        step = next_step(Known(None, leased, poll=0.5), want(), NOW, NOW + 0.2)
        assert isinstance(step, Refuse)
        assert (step.error.error, step.error.retry_after) == ("upstream_unavailable", 1)

    def test_a_remembered_failure_is_answered_at_once_on_a_cold_key(self) -> None:
        entry = Entry(failure=Outage(int(NOW + 20)))
        step = next_step(Known(None, entry), want(), NOW, DEADLINE)
        assert isinstance(step, Refuse)
        assert (step.error.error, step.error.retry_after) == ("upstream_unavailable", 20)

    def test_without_the_table_memory_serves_else_the_container_fetches_alone(self) -> None:
        memory = token(200)
        assert next_step(Known(memory, TableState.UNAVAILABLE), want(), NOW, DEADLINE) == Serve(memory, Source.MEMORY)
        assert next_step(Known(None, TableState.UNAVAILABLE), want(), NOW, DEADLINE) == FetchAlone(DEADLINE)

    def test_a_throttled_table_is_waited_for_never_gone_around(self) -> None:
        assert next_step(Known(None, TableState.THROTTLED), want(), NOW, DEADLINE) == Wait(0.05)

    def test_force_refresh_shares_a_fetch_within_the_cooldown_and_renews_after_it(self) -> None:
        recent = CachedToken(Sensitive("t"), "Bearer", "", int(NOW + 3590), NOW - 10)
        assert next_step(Known(None, Entry(recent)), want(force_refresh=True), NOW, DEADLINE) == Serve(
            recent, Source.TABLE
        )
        old = CachedToken(Sensitive("t"), "Bearer", "", int(NOW + 3000), NOW - 600)
        step = next_step(Known(None, Entry(old)), want(force_refresh=True), NOW, DEADLINE)
        assert step == Renew(Need(fetched_before=NOW - 30), NOW + 8)

    def test_an_unreadable_token_may_be_renewed_over(self) -> None:
        step = next_step(Known(None, Entry(unreadable_since=NOW - 100)), want(), NOW, DEADLINE)
        assert isinstance(step, Renew)
        assert step.need.fetched_before == pytest.approx(NOW - 100 + 0.001)

    def test_a_min_ttl_no_fresh_token_can_meet_is_refused_before_any_request(self) -> None:
        step = next_step(
            Known(None, Entry(token(250, lifetime=300))), want(min_ttl=300, requested_min_ttl=300), NOW, DEADLINE
        )
        assert isinstance(step, Refuse)
        assert step.error.error == "invalid_request"


class TestAdvisoryWindow:
    """A usable token in its refresh-ahead window: callers never wait for the fleet's renewal."""

    def test_one_request_renews_and_the_next_gets_the_renewed_token(self) -> None:
        fleet = Fleet()
        fleet.seed(life_left=200)

        renewer = fleet.ask()
        later = fleet.ask()

        assert (renewer.token, later.token) == ("token-1", "token-1")
        assert len(fleet.server.requests) == 1

    @pytest.mark.parametrize("outage", [UpstreamUnavailable("503", retry_after=None), None], ids=["503", "hang"])
    def test_an_outage_costs_one_try_then_the_fleet_answers_from_the_cache(
        self, outage: UpstreamUnavailable | None
    ) -> None:
        # Given a cached token in its window, and a server that fails (or hangs)
        fleet = Fleet()
        fleet.seed(life_left=200)
        fleet.server.outage = outage
        fleet.server.delay = 0.05 if outage else 30.0

        # When containers ask, one every second
        asked = []
        for _ in range(5):
            asked.append(fleet.ask())
            fleet.clock.advance(1)

        # Then every one is served the cached token; one tried, within its bounded budget
        assert [a.token for a in asked] == ["cached"] * 5
        assert len(fleet.server.requests) == 1
        assert asked[0].waited <= try_ahead_seconds(token(200), want(), NOW) + 0.01
        assert max(a.waited for a in asked[1:]) == 0
        # and the back-off lets one more try through once it has passed
        fleet.clock.advance(5)
        fleet.ask()
        assert len(fleet.server.requests) == 2

    @pytest.mark.parametrize("life_left", [61, 62, 65, 70])
    def test_a_token_is_never_served_below_the_min_ttl_however_the_try_went(self, life_left: int) -> None:
        fleet = Fleet()
        fleet.seed(life_left=life_left)
        fleet.server.delay = 30.0  # hangs

        asked = fleet.ask(min_ttl=61)

        if asked.served is not None:
            assert asked.served.token.expires_at - fleet.clock.now >= 61
        else:
            assert asked.error is not None
            assert (asked.error.error, asked.error.retry_after) == ("upstream_unavailable", 5)

    def test_a_slow_server_is_renewed_ahead_of_expiry_without_a_renewal_function(self) -> None:
        # Given a server that takes 2 s, and a token entering its 300 s window
        fleet = Fleet()
        fleet.seed(life_left=299)
        fleet.server.delay = 2.0

        # When a caller asks every 10 seconds through the window
        asked = []
        while fleet.stored() == "cached" and fleet.clock.now < START + 240:
            asked.append(fleet.ask())
            fleet.clock.advance(10)

        # Then the key was renewed long before the token fell below its min TTL, nobody was
        # ever answered without a token, and only the requests that tried waited
        assert fleet.stored() == "token-1"
        assert fleet.clock.now < START + 299 - 60 - 60
        assert all(a.served is not None for a in asked)
        tried = len(fleet.server.requests)
        assert sum(a.waited > 0 for a in asked) == tried
        assert max(a.waited for a in asked) <= 2.0 + 0.01

    @pytest.mark.parametrize("delay", [0.1, 1.0, 3.0, 8.0])
    def test_with_a_renewal_function_no_caller_waits_however_slow_the_server(self, delay: float) -> None:
        # Given a renewal function, a token in its window and a server taking `delay` seconds
        fleet = Fleet(hand_off=True)
        fleet.seed(life_left=200)
        fleet.server.delay = delay
        handed_at = fleet.clock.now

        # When eight containers ask, then keep asking every 0.1 s until the renewal is stored
        containers = [fleet.container() for _ in range(8)]
        asked = [fleet.ask(container) for container in containers]
        while fleet.stored() == "cached":
            fleet.clock.advance(0.1)
            asked += [fleet.ask(container) for container in containers]

        # Then nobody waited, one request was handed over and made one token request, and the
        # renewed token was stored within the server's delay and a second
        assert max(a.waited for a in asked) == 0
        assert len(fleet.renewal_function.handed) == 1  # type: ignore[union-attr]
        assert len(fleet.server.requests) == 1
        assert fleet.clock.now - handed_at <= delay + 1.0
        assert fleet.ask().token == "token-1"

    def test_a_handed_over_renewal_that_fails_is_remembered_and_handed_over_after_the_back_off(self) -> None:
        fleet = Fleet(hand_off=True)
        fleet.seed(life_left=200)
        fleet.server.failures = [UpstreamUnavailable("503", retry_after=7)]

        fleet.ask()
        fleet.clock.advance(1)  # the renewal ran, and failed
        during = [fleet.ask() for _ in range(3)]
        fleet.clock.advance(7)
        fleet.ask()
        fleet.clock.advance(1)

        assert [a.token for a in during] == ["cached"] * 3
        assert len(fleet.renewal_function.handed) == 2  # type: ignore[union-attr]
        assert fleet.stored() == "token-1"

    def test_a_hand_off_lambda_refuses_is_made_up_for_by_one_bounded_try_with_the_lease_held(self) -> None:
        # Given a key in its window and a renewal function Lambda does not take events for
        fleet = Fleet(hand_off=True)
        fleet.seed(life_left=200)
        fleet.renewal_function.accepting = False  # type: ignore[union-attr]

        # When callers ask
        first, second = fleet.ask(), fleet.ask()

        # Then the first renewed with one try of its own, and nobody else asked the server
        assert (first.token, second.token) == ("token-1", "token-1")
        assert len(fleet.server.requests) == 1
        assert fleet.renewal_function.handed == []  # type: ignore[union-attr]
        assert fleet.stored() == "token-1"

    def test_a_refused_hand_off_whose_try_fails_is_remembered_and_the_fleet_is_served_from_the_cache(self) -> None:
        fleet = Fleet(hand_off=True)
        fleet.seed(life_left=200)
        fleet.renewal_function.accepting = False  # type: ignore[union-attr]
        fleet.server.outage = UpstreamUnavailable("the server answers 503", retry_after=1)

        answers = [fleet.ask() for _ in range(5)]

        assert [answer.token for answer in answers] == ["cached"] * 5
        assert len(fleet.server.requests) == 1  # one try; the outage is remembered for the fleet

    @pytest.mark.parametrize(
        "lease", [None, Lease("0" * 32, START + 10), Lease("f" * 32, START - 1)], ids=["none", "another's", "lapsed"]
    )
    def test_a_renewal_event_that_names_no_held_lease_renews_nothing(self, lease: Lease | None) -> None:
        fleet = Fleet(hand_off=True)
        fleet.seed(life_left=200)
        if lease is not None:
            fleet.store.acquire_lease(KEY, lease, Need(expires_before=int(START + 300)))

        fleet.container().renew(Renewal(PROFILE.name, frozenset(), "f" * 32), START + 15)

        assert fleet.server.requests == []
        assert fleet.stored() == "cached"

    def test_the_renewal_function_has_its_whole_lease(self) -> None:
        fleet = Fleet(hand_off=True)
        fleet.seed(life_left=200)
        fleet.server.delay = 8.5  # within the 10 s lease, less the margin to store it

        fleet.ask()
        fleet.clock.advance(10)

        assert fleet.stored() == "token-1"


class TestMandatory:
    """No token this request may be given: one renews, the others wait for it."""

    def test_a_cold_key_costs_one_request_and_waiters_get_its_token(self) -> None:
        fleet = Fleet()
        holder = Lease("a" * 32, START + 10)
        fleet.store.acquire_lease(KEY, holder, Need(expires_before=int(START + 60)))
        fleet.clock.after(0.3, lambda: fleet.seed(life_left=3600, value="the-holders"))

        waiters = [fleet.ask() for _ in range(8)]

        assert {w.token for w in waiters} == {"the-holders"}
        assert fleet.server.requests == []

    def test_waiters_answer_at_once_when_the_renewer_fails(self) -> None:
        # Given a renewer holding the lease, which records an outage after 1 s
        fleet = Fleet()
        holder = Lease("a" * 32, START + 10)
        fleet.store.acquire_lease(KEY, holder, Need(expires_before=int(START + 60)))
        outage = Outage(int(START + 1 + 12))
        fleet.clock.after(1.0, lambda: fleet.store.store_failure(KEY, outage, holder))

        # When a waiter is waiting, and another asks after the failure
        waiter = fleet.ask()
        later = fleet.ask()

        # Then both answer 503 with the fleet's retry_after, the waiter as soon as it was recorded
        for asked in (waiter, later):
            assert asked.error is not None
            assert asked.error.error == "upstream_unavailable"
            assert 1 <= asked.error.retry_after <= 12  # type: ignore[operator]
        assert 1.0 <= waiter.waited <= 1.5
        assert later.waited == 0
        assert fleet.server.requests == []

    def test_the_renewer_records_its_failure_for_the_fleet(self) -> None:
        fleet = Fleet()
        fleet.server.outage = UpstreamUnavailable("503", retry_after=12)

        failed = fleet.ask()

        assert failed.error is not None
        assert (failed.error.error, failed.error.retry_after) == ("upstream_unavailable", 12)
        assert fleet.store.read(KEY).failure_in_force(fleet.clock.now) is not None
        assert fleet.store.read(KEY).lease is None

    def test_a_dead_renewers_lease_is_taken_over_once_it_lapses(self) -> None:
        fleet = Fleet()
        fleet.store.acquire_lease(KEY, Lease("d" * 32, START + 10), Need(expires_before=int(START + 60)))

        taken_over = fleet.ask()

        assert taken_over.token == "token-1"
        assert 10 <= taken_over.waited <= 11

    def test_a_refusal_is_remembered_for_the_negative_cache_and_a_rotation_is_tried_once(self) -> None:
        fleet = Fleet(negative_cache_seconds=30)
        fleet.server.outage = refused("invalid_client")

        first, second = fleet.ask(), fleet.ask()
        fleet.clock.advance(31)
        third = fleet.ask()

        assert [a.error.upstream_error for a in (first, second, third) if a.error] == ["invalid_client"] * 3
        assert len(fleet.server.requests) == 2  # the second was answered from what the fleet remembers
        assert fleet.profiles.reads >= 2  # invalid_client re-read the secret

    def test_force_refresh_within_the_cooldown_shares_the_last_fetch(self) -> None:
        fleet = Fleet()
        first = fleet.ask()
        fleet.clock.advance(5)
        shared = fleet.ask(force_refresh=True)
        fleet.clock.advance(30)
        renewed = fleet.ask(force_refresh=True)

        assert (first.token, shared.token, renewed.token) == ("token-1", "token-1", "token-2")

    def test_a_min_ttl_longer_than_tokens_live_is_refused_with_no_token_request(self) -> None:
        fleet = Fleet()
        fleet.server.lifetime = 300
        fleet.ask()

        refusals = [fleet.ask(min_ttl=600) for _ in range(10)]

        assert {r.error.error for r in refusals if r.error} == {"invalid_request"}
        assert len(fleet.server.requests) == 1
        assert fleet.stored() == "token-1"

    def test_without_the_table_memory_serves_and_a_cold_container_asks_for_itself(self) -> None:
        fleet = Fleet()
        warm = fleet.container()
        fleet.ask(warm)
        fleet.store.down = True

        assert fleet.ask(warm).served.source is Source.MEMORY  # type: ignore[union-attr]
        assert fleet.ask().token == "token-2"

    def test_a_throttled_table_is_waited_for_and_never_gone_around(self) -> None:
        fleet = Fleet()
        fleet.store.throttled = True
        fleet.clock.after(3.0, lambda: setattr(fleet.store, "throttled", False))

        asked = fleet.ask()

        assert asked.token == "token-1"
        assert asked.waited >= 3.0
        assert len(fleet.server.requests) == 1  # after the table had room, never before
        assert fleet.server.requests[0] >= START + 3.0


class TestAfterAStep:
    """What the plan decides once a step is carried out: the service only does what it says."""

    def test_the_token_in_hand_serves_after_a_failed_try_only_above_the_callers_min_ttl(self) -> None:
        serving = Serve(token(100), Source.TABLE)

        assert still_serves(serving, want(min_ttl=60), NOW) == serving
        assert still_serves(serving, want(min_ttl=60), NOW + 45) is None  # 55 s left: the failure is the answer

    @pytest.mark.parametrize(
        ("error", "rereads"),
        [
            (refused("invalid_client"), True),  # the secret may have been rotated since it was read
            (refused("invalid_scope"), False),
            (refused("unauthorized_client"), False),
            (UpstreamUnavailable("down", retry_after=5), False),
        ],
        ids=["invalid_client", "invalid_scope", "unauthorized_client", "outage"],
    )
    def test_only_invalid_client_rereads_the_secret(self, error: BrokerError, rereads: bool) -> None:
        assert rereads_secret(error) is rereads

    def test_an_outage_is_remembered_for_a_back_off_and_answered_with_the_longer_retry_after(self) -> None:
        failure, answer = remembered(UpstreamUnavailable("down", retry_after=120), NOW, 300)

        assert failure == Outage(int(NOW) + 60)  # the back-off is capped; the server's wish is still told
        assert isinstance(answer, UpstreamUnavailable)
        assert answer.retry_after == 120

    def test_a_refusal_is_remembered_for_negative_cache_seconds_unless_they_are_zero(self) -> None:
        refusal = refused("invalid_client")

        assert remembered(refusal, NOW, 300) == (Refusal("upstream_error", "invalid_client", int(NOW) + 300), refusal)
        assert remembered(refusal, NOW, 0) == (None, refusal)  # nothing remembered: the lease is let go

    def test_any_other_failure_is_not_remembered(self) -> None:
        error = InvalidRequest("not the server's doing")

        assert remembered(error, NOW, 300) == (None, error)

    def test_the_renewal_function_renews_until_its_lease_lapses_less_a_margin(self) -> None:
        lease = Lease("handed-over", NOW + 10)

        assert handed_lease(Entry(lease=lease), "handed-over", NOW, DEADLINE) == (lease, NOW + 9)
        assert handed_lease(Entry(lease=lease), "handed-over", NOW, NOW + 4) == (lease, NOW + 4)  # its own deadline

    @pytest.mark.parametrize(
        "entry",
        [EMPTY, Entry(lease=Lease("another", NOW + 10)), Entry(lease=Lease("handed-over", NOW - 1))],
        ids=["none", "another-request's", "lapsed"],
    )
    def test_the_renewal_function_renews_nothing_without_the_lease_its_event_names(self, entry: Entry) -> None:
        assert handed_lease(entry, "handed-over", NOW, DEADLINE) is None


class TestRenewalEvent:
    """The event one function sends and the renewal function parses: one wire format."""

    def test_what_the_broker_sends_is_what_the_renewal_function_reads(self) -> None:
        renewal = Renewal("orders", frozenset({"b", "a"}), "0123456789abcdef" * 2)
        assert parse_renewal_event(renewal_event(renewal)) == renewal

    @pytest.mark.parametrize(
        "event",
        [
            {"profile": "orders"},  # a direct request
            {"renewal": {"v": 1, "profile": "orders", "scopes": [], "lease": "short"}},
            {"renewal": {"v": True, "profile": "orders", "scopes": [], "lease": "0" * 32}},
            {"renewal": {"v": 1, "profile": "../x", "scopes": [], "lease": "0" * 32}},
            {"renewal": {"v": 1, "profile": "orders", "scopes": "a", "lease": "0" * 32}},
            {"renewal": {"v": 1, "profile": "orders", "scopes": [], "lease": "0" * 32, "token": "x"}},
            {"version": "2.0", "requestContext": {}},
            [],
        ],
        ids=["direct", "lease", "v", "profile", "scopes", "extra", "http", "list"],
    )
    def test_anything_else_is_refused(self, event: object) -> None:
        with pytest.raises(InvalidRequest):
            parse_renewal_event(event)
