"""The renewal protocol as a plan: from what a request knows of its key, what it wants and the
clock, the next thing to do. No I/O and no clock of its own: `service` carries each step out and
plans again with what it learnt, and tests drive every case with a fake clock, in milliseconds.

Two windows, as botocore's `RefreshableCredentials` has them:
- advisory, the refresh-ahead window (promise 12): the token in hand serves every caller while
  one request renews. With a renewal function (promise 13) that request hands the renewal over
  and answers at once; without one it makes one try, bounded so that it ends before the token
  falls below its caller's min TTL: 0.8 s at the window's start, growing to 5 s at its end, so a
  slow authorization server still renews ahead of expiry. A failure is remembered for the fleet,
  which answers from the cache meanwhile (promise 4).
- mandatory, when no token may be given to this request: one request renews with its whole
  budget while the others wait for it, and every waiter hears of its failure at once (promise 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum, StrEnum

from broker.decisions import (
    LEASE_SECONDS,
    CachedToken,
    is_usable,
    life_left,
    needs_refresh,
    refresh_window,
    unreachable_min_ttl,
)
from broker.errors import BrokerError, InvalidRequest, UpstreamError, UpstreamUnavailable
from broker.token_store import Entry, Lease, Need

# A try ahead of expiry is abandoned after this long at the window's start, growing to the last
# figure as the token nears its min TTL: its caller waits at most that, the fleet not at all.
TRY_AHEAD_FIRST_SECONDS = 0.8
TRY_AHEAD_LAST_SECONDS = 5.0
# Less time than this before the token falls below the caller's min TTL is no time for a try.
TRY_AHEAD_LEAST_SECONDS = 0.2
# A mandatory renewal gives up in time to record its failure before its lease lapses.
RENEWAL_SECONDS = LEASE_SECONDS - 2
# The renewal function does the same with the lease another request took for it.
LEASE_MARGIN_SECONDS = 1.0
# Requests waiting for another's renewal read the table at growing intervals, up to the cap;
# while the table throttles, up to the higher cap, so that a large fleet's reads stay bounded.
POLL_FIRST_SECONDS = 0.05
POLL_MAX_SECONDS = 0.5
THROTTLED_POLL_MAX_SECONDS = 4.0


class Source(StrEnum):
    """Where a served token came from, for the audit line and the metrics."""

    MEMORY = "memory"
    TABLE = "table"
    AUTHORIZATION_SERVER = "authorization_server"


class TableState(Enum):
    """What a request knows of the table when it holds no entry from it."""

    NOT_READ = "not read"
    UNAVAILABLE = "unavailable"
    THROTTLED = "throttled"


@dataclass(frozen=True, slots=True)
class Want:
    """What a request needs, with the settings that bear on it."""

    min_ttl: int  # the applicable min TTL: MIN_TTL_SECONDS, or more if the request asks
    requested_min_ttl: int | None
    floor: int  # MIN_TTL_SECONDS
    started: float  # when the request began: a force_refresh takes no token fetched before the cooldown
    force_refresh: bool = False
    refresh_ahead: int = 300
    cooldown: int = 30
    hand_off: bool = False  # a renewal function takes renewals ahead of expiry

    def acceptable(self, token: CachedToken | None, now: float) -> bool:
        return is_usable(token, now, self.min_ttl) and (
            not self.force_refresh or token.fetched_at >= self.started - self.cooldown
        )


@dataclass(frozen=True, slots=True)
class Known:
    """What a request knows of its key: its container's memory tier, and the table."""

    memory: CachedToken | None
    table: Entry | TableState = TableState.NOT_READ
    poll: float = 0.0  # the last wait, while waiting for another's renewal or for a throttled table
    contended: bool = False  # a lease this request tried to take went to another


@dataclass(frozen=True, slots=True)
class Serve:
    token: CachedToken
    source: Source


@dataclass(frozen=True, slots=True)
class Refuse:
    error: BrokerError


@dataclass(frozen=True, slots=True)
class ReadTable:
    pass


@dataclass(frozen=True, slots=True)
class Wait:
    seconds: float  # the most to wait; less, with jitter, so that waiters do not move together


@dataclass(frozen=True, slots=True)
class HandOff:
    """Take the lease and hand the renewal to the renewal function; serve `serving` either way.
    Should Lambda not take the event (throttled, refused, no such function), make one try
    abandoned at `fallback_until` instead, with the lease held (None: no time for one)."""

    need: Need
    serving: Serve
    fallback_until: float | None


@dataclass(frozen=True, slots=True)
class TryAhead:
    """Take the lease and make one try, abandoned at `until`; serve `serving` if it fails."""

    need: Need
    until: float
    serving: Serve


@dataclass(frozen=True, slots=True)
class Renew:
    """Take the lease and renew with retries until `until`; on failure, tell the fleet."""

    need: Need
    until: float


@dataclass(frozen=True, slots=True)
class FetchAlone:
    """No table to coordinate with: this container renews for itself, until `until`."""

    until: float


Step = Serve | Refuse | ReadTable | Wait | HandOff | TryAhead | Renew | FetchAlone


def next_step(known: Known, want: Want, now: float, deadline: float) -> Step:
    """What the request does next; `now` and `deadline` are epoch seconds."""
    memory = known.memory if is_usable(known.memory, now, want.min_ttl) else None
    table = known.table
    if isinstance(table, TableState):
        # with the table unread, only a token outside its window: renewing starts at the table
        outside_window = memory is not None and not needs_refresh(memory, now, want.refresh_ahead)
        if memory is not None and not want.force_refresh and (table is not TableState.NOT_READ or outside_window):
            return Serve(memory, Source.MEMORY)
        if table is TableState.NOT_READ:
            return ReadTable()
        if table is TableState.THROTTLED:
            return _wait(known.poll, THROTTLED_POLL_MAX_SECONDS, now, deadline)
        return _refused_min_ttl(known.memory, want, now) or FetchAlone(deadline)

    refused = _refused_min_ttl(table.token or known.memory, want, now)
    if refused is not None:
        return refused
    if not want.force_refresh:
        in_hand = _in_hand(table, memory, want, now)
        if in_hand is not None:
            if not needs_refresh(in_hand.token, now, want.refresh_ahead):
                return in_hand
            return _advisory(table, in_hand, want, now, deadline)
    return _mandatory(known, table, want, now, deadline)


def still_serves(serving: Serve, want: Want, now: float) -> Serve | None:
    """The token in hand, checked again after a hand-off or a failed try ahead took time: never
    served below the caller's min TTL. None: it no longer serves this request, which plans again
    (after a hand-off), or answers with the try's failure."""
    return serving if is_usable(serving.token, now, want.min_ttl) else None


def rereads_secret(error: BrokerError) -> bool:
    """`invalid_client` may mean the secret was rotated after this container read it: the
    profile is read again, and the request made again once, only if the profile changed."""
    return isinstance(error, UpstreamError) and error.upstream_error == "invalid_client"


def handed_lease(entry: Entry, lease_owner: str, now: float, deadline: float) -> tuple[Lease, float] | None:
    """The lease a renewal event names, and until when the renewal function may renew with it:
    while it holds, less a margin to record a failure, within the invocation's deadline. None:
    the table holds no such lease (it lapsed, or another request renewed since): no renewal."""
    lease = entry.lease
    if lease is None or lease.owner != lease_owner or not entry.leased(now):
        return None
    return lease, min(deadline, lease.until - LEASE_MARGIN_SECONDS)


def fresh(token: CachedToken, want: Want, now: float) -> Serve | Refuse:
    """A token just fetched: served, unless it lives shorter than this request's min TTL."""
    if is_usable(token, now, want.min_ttl):
        return Serve(token, Source.AUTHORIZATION_SERVER)
    return Refuse(_min_ttl_refusal(token, want))


def _in_hand(entry: Entry, memory: CachedToken | None, want: Want, now: float) -> Serve | None:
    """The best token this request may serve: the table's, else the memory tier's (the table
    lost the item, or holds one that must not be served)."""
    if is_usable(entry.token, now, want.min_ttl):
        return Serve(entry.token, Source.TABLE)
    return Serve(memory, Source.MEMORY) if memory is not None else None


def _advisory(entry: Entry, in_hand: Serve, want: Want, now: float, deadline: float) -> Step:
    """Inside the refresh-ahead window: one request renews, nobody waits for it."""
    if entry.failure_in_force(now) is not None or entry.leased(now):
        return in_hand  # the fleet backs off after a failure, or another request is renewing
    window = refresh_window(in_hand.token, want.refresh_ahead)
    need = Need(expires_before=math.ceil(now + window), ignore_failure_code=entry.implausible_failure_code)
    until = min(deadline, in_hand.token.expires_at - want.min_ttl, now + try_ahead_seconds(in_hand.token, want, now))
    time_for_a_try = until - now >= TRY_AHEAD_LEAST_SECONDS
    if want.hand_off:
        return HandOff(need, in_hand, until if time_for_a_try else None)
    if not time_for_a_try:
        return in_hand  # it still serves this caller; the first that it cannot will renew
    return TryAhead(need, until, in_hand)


def try_ahead_seconds(token: CachedToken, want: Want, now: float) -> float:
    """The budget of a try ahead of expiry, by how far the token is through its window."""
    window = refresh_window(token, want.refresh_ahead)
    span = window - want.min_ttl
    progress = 1.0 if span <= 0 else min(1.0, max(0.0, (window - life_left(token, now)) / span))
    return TRY_AHEAD_FIRST_SECONDS + progress * (TRY_AHEAD_LAST_SECONDS - TRY_AHEAD_FIRST_SECONDS)


def _mandatory(known: Known, entry: Entry, want: Want, now: float, deadline: float) -> Step:
    """No token this request may be given: take the lease and renew, or wait for who holds it."""
    if want.acceptable(entry.token, now) and entry.token is not None:
        return Serve(entry.token, Source.TABLE)  # the renewal this request waited for
    failure = entry.failure_in_force(now)
    if failure is not None:
        return Refuse(failure.answer(now))  # remembered by the fleet: nobody asks again meanwhile
    if entry.leased(now) or known.contended:
        return _wait(known.poll, POLL_MAX_SECONDS, now, deadline)
    fetched_before = want.started - want.cooldown if want.force_refresh else None
    if entry.unreadable_since is not None:
        # a token that must not be served is as good as none: renewing it must be allowed
        fetched_before = max(fetched_before or 0.0, entry.unreadable_since + 0.001)
    need = Need(
        expires_before=None if want.force_refresh else math.ceil(now + want.min_ttl),
        fetched_before=fetched_before,
        ignore_failure_code=entry.implausible_failure_code,
    )
    return Renew(need, min(deadline, now + RENEWAL_SECONDS))


def _wait(poll: float, ceiling: float, now: float, deadline: float) -> Wait | Refuse:
    """The next wait, doubling up to `ceiling`; none past the deadline."""
    seconds = POLL_FIRST_SECONDS if poll <= 0 else max(poll, min(ceiling, poll * 2))
    if now + seconds / 2 >= deadline:
        return Refuse(UpstreamUnavailable("timed out waiting for another request's token renewal", retry_after=1))
    return Wait(seconds)


def _refused_min_ttl(token: CachedToken | None, want: Want, now: float) -> Refuse | None:
    """A min TTL that no fresh token can meet is refused before any token request."""
    return Refuse(_min_ttl_refusal(token, want)) if unreachable_min_ttl(token, now, want.min_ttl) else None


def _min_ttl_refusal(token: CachedToken, want: Want) -> BrokerError:
    if want.requested_min_ttl is not None and want.requested_min_ttl >= want.floor:
        return InvalidRequest(
            f"min_ttl {want.requested_min_ttl} is longer than a fresh token lives ({int(token.lifetime)} seconds)"
        )
    return UpstreamError(
        f"the authorization server's tokens live {int(token.lifetime)} seconds, less than MIN_TTL_SECONDS"
    )
