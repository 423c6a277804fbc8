"""Getting a token for a request: memory, then the table, then one fleet-wide renewal.

Under trouble (contract promises 2 to 4, 11 and 12):
- a renewal ahead of expiry is one request, bounded so that it never outlasts the point where
  the cached token falls below the caller's min TTL; its failure is remembered in the item, and
  until that passes the fleet answers from the cache without trying again;
- a cold key's renewer records its failure, so the requests waiting on it answer at once;
- a throttled table is waited for, never gone around: the authorization server still gets one
  request per key, and waits grow so that the reads on a key stay bounded.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from broker import observability
from broker.caller_identity import Caller
from broker.callers import CallerRule, caller_admitted
from broker.config import ENFORCE, Settings
from broker.decisions import (
    LEASE_SECONDS,
    CachedToken,
    cache_key,
    effective_min_ttl,
    is_usable,
    needs_refresh,
    outage_backoff,
    refresh_window,
    unreachable_min_ttl,
)
from broker.errors import (
    AccessDenied,
    BrokerError,
    InvalidRequest,
    InvalidScope,
    ProfileMisconfigured,
    UpstreamError,
    UpstreamUnavailable,
    is_refusal,
)
from broker.profile_store import ProfileStore
from broker.profiles import Profile
from broker.token_endpoint import MAX_ATTEMPTS, IssuedToken, TokenEndpoint
from broker.token_request import TokenRequest
from broker.token_table import REMEMBERED, CacheUnavailable, Failure, TableEntry, Throttled, TokenTable

# A renewal ahead of expiry is one request, abandoned after this long (so that its caller, who
# holds a usable token, is answered within a second whatever the server does).
REFRESH_AHEAD_TRY_SECONDS = 0.8
# Less time than this before the cached token falls below the caller's min TTL is no time for a
# try: the request renews as if the key were cold.
REFRESH_AHEAD_LEAST_SECONDS = 0.2
# A cold key's renewer gives up in time to record its failure before its lease lapses.
RENEWAL_SECONDS = LEASE_SECONDS - 2
# Requests waiting for another's renewal poll the table from this interval up to the cap; while
# the table throttles, up to the higher cap, so that a large fleet's reads on one key stay bounded.
POLL_FIRST_SECONDS = 0.05
POLL_MAX_SECONDS = 0.5
THROTTLED_POLL_MAX_SECONDS = 4.0
# A fresh token is worth waiting this long for a throttled table: unstored, it would be fetched
# again by the next request once the lease lapses.
STORE_PATIENCE_SECONDS = 3.0
MEMORY_TIER_MAX_KEYS = 1_000
# Where a served token came from, for the audit line.
MEMORY = "memory"
TABLE = "table"
AUTHORIZATION_SERVER = "authorization_server"


@dataclass(frozen=True, slots=True)
class Served:
    token: CachedToken
    source: str  # MEMORY, TABLE or AUTHORIZATION_SERVER


class TokenService:
    def __init__(
        self,
        settings: Settings,
        profiles: ProfileStore,
        table: TokenTable,
        endpoint: TokenEndpoint,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._profiles = profiles
        self._table = table
        self._endpoint = endpoint
        self._clock = clock
        self._sleep = sleep
        self._memory: dict[str, CachedToken] = {}

    def get_token(self, request: TokenRequest, caller: Caller, deadline: float) -> Served:
        """A token with at least the applicable min TTL left; `deadline` is epoch seconds.

        The caller is admitted by the profile's `allowed_callers` before anything else happens."""
        profile = self._admitted_profile(request.profile, caller)
        scopes = request.scopes or profile.scopes
        if profile.allowed_scopes is not None and not scopes <= profile.allowed_scopes:
            outside = sorted(scopes - profile.allowed_scopes)[0]
            raise InvalidScope(f"scope {outside} is not allowed for profile {profile.name}")
        key = cache_key(profile, scopes)
        min_ttl = effective_min_ttl(self._settings.min_ttl_seconds, request.min_ttl)
        now = self._clock()

        remembered = self._memory.get(key)
        if (
            not request.force_refresh
            and is_usable(remembered, now, min_ttl)
            and not needs_refresh(remembered, now, self._settings.refresh_ahead_seconds)
        ):
            return self._hit(MEMORY, key, remembered)

        try:
            entry = self._read(key)
        except Throttled:
            if not request.force_refresh and is_usable(remembered, now, min_ttl):
                return self._hit(MEMORY, key, remembered)  # renewing can wait for a table with room
            observability.cache_miss()
            return self._renew(key, profile, scopes, request, min_ttl, deadline, None, throttled=True)
        cached = entry.token if entry else None
        self._refuse_unreachable(cached or remembered, request, min_ttl, now)
        if request.force_refresh:
            if (
                is_usable(cached, now, min_ttl)
                and now - cached.fetched_at < self._settings.force_refresh_cooldown_seconds
            ):
                return self._hit(TABLE, key, cached)  # a renewal within the cooldown is shared
        elif entry is not None and is_usable(cached, now, min_ttl):
            if not needs_refresh(cached, now, self._settings.refresh_ahead_seconds):
                return self._hit(TABLE, key, cached)
            served = self._refresh_ahead(key, profile, scopes, request, entry, cached, min_ttl, deadline)
            if served is not None:
                return served
            entry = None  # the cached token no longer serves this request: renew as for a cold key
        elif entry is None and is_usable(remembered, now, min_ttl):
            # the table is unreachable (or lost the item): the memory tier's token still serves
            return self._hit(MEMORY, key, remembered)
        observability.cache_miss()
        return self._renew(key, profile, scopes, request, min_ttl, deadline, entry)

    def _admitted_profile(self, name: str, caller: Caller) -> Profile:
        """The profile, once its `allowed_callers` admit the caller. A misconfigured profile is
        told of only to a caller it admits (or one audit mode lets through)."""
        try:
            profile = self._profiles.get(name)
        except ProfileMisconfigured as misconfigured:
            if misconfigured.allowed_callers is not None:
                self._admit(name, misconfigured.allowed_callers, caller)
            raise
        self._admit(name, profile.allowed_callers, caller)
        return profile

    def _admit(self, name: str, allowed_callers: tuple[CallerRule, ...], caller: Caller) -> None:
        """Enforce: refuse a caller the profile does not admit. Audit: log the refusal, go on."""
        refusal = caller.refusal
        if refusal is None and (caller.arn is None or not caller_admitted(allowed_callers, caller.arn)):
            # the description never tells which profile fields exist or what they hold
            refusal = AccessDenied("this caller may not use this profile")
        if refusal is None:
            return
        if self._settings.caller_auth == ENFORCE:
            raise refusal
        observability.logger.warning(
            "caller would be refused (CALLER_AUTH=audit)",
            extra={"profile": name, "caller": caller.arn, "path": caller.door, "refusal": refusal.error},
        )

    def _refresh_ahead(
        self,
        key: str,
        profile: Profile,
        scopes: frozenset[str],
        request: TokenRequest,
        entry: TableEntry,
        cached: CachedToken,
        min_ttl: int,
        deadline: float,
    ) -> Served | None:
        """One request renews a token about to expire, with one bounded try; the rest, and this
        one on failure, keep the cached token. None when it no longer serves this request."""
        now = self._clock()
        if (entry.failure is not None and entry.failure.until > now) or entry.leased(now):
            return self._hit(TABLE, key, cached)  # the fleet backs off after a failed try, or one is renewing
        budget = min(deadline, now + REFRESH_AHEAD_TRY_SECONDS, cached.expires_at - min_ttl)
        if budget - now < REFRESH_AHEAD_LEAST_SECONDS:
            return None
        owner = uuid.uuid4().hex
        window = refresh_window(cached, self._settings.refresh_ahead_seconds)
        try:
            won = self._table.acquire_lease(
                key,
                owner,
                now + LEASE_SECONDS,
                expires_before=math.ceil(now + window),
                implausible_failure_code=entry.implausible_failure_code,
            )
        except (CacheUnavailable, Throttled):
            won = False
        if won:
            try:
                fresh = self._fetch_and_store(key, profile, scopes, owner, budget=budget, deadline=deadline, attempts=1)
                return self._checked(fresh, request, min_ttl)
            except BrokerError as error:
                observability.logger.warning(
                    "refresh-ahead failed; serving the cached token while it lasts",
                    extra={"profile": profile.name, "error": error.error},
                )
                if not is_usable(cached, self._clock(), min_ttl):
                    raise
        # served only with the life left that the caller asked for, checked again now
        return self._hit(TABLE, key, cached) if is_usable(cached, self._clock(), min_ttl) else None

    def _renew(
        self,
        key: str,
        profile: Profile,
        scopes: frozenset[str],
        request: TokenRequest,
        min_ttl: int,
        deadline: float,
        entry: TableEntry | None,
        *,
        throttled: bool = False,
    ) -> Served:
        """Single flight: take the lease and fetch, or wait for whoever holds it.

        A waiter answers as soon as the item holds a token for it, or the failure that the
        renewer recorded. While another holds the lease, or the table throttles, it only reads,
        ever less often: a write that must fail would only take capacity from the renewer's."""
        started = self._clock()
        wanted_since = started - self._settings.force_refresh_cooldown_seconds if request.force_refresh else None
        poll = POLL_FIRST_SECONDS
        while True:
            now = self._clock()
            if entry is not None:
                token = entry.token
                self._refuse_unreachable(token, request, min_ttl, now)
                if is_usable(token, now, min_ttl) and (wanted_since is None or token.fetched_at >= wanted_since):
                    return self._hit(TABLE, key, token)
                _raise_remembered(entry.failure, now)
            if not throttled and not (entry is not None and entry.leased(now)):
                owner = uuid.uuid4().hex
                fetched_before = wanted_since
                if entry is not None and entry.unreadable_since is not None:
                    # a token that must not be served is as good as none: renewing it must be allowed
                    fetched_before = max(fetched_before or 0.0, entry.unreadable_since + 0.001)
                try:
                    won = self._table.acquire_lease(
                        key,
                        owner,
                        now + LEASE_SECONDS,
                        expires_before=None if wanted_since else math.ceil(now + min_ttl),
                        fetched_before=fetched_before,
                        implausible_failure_code=entry.implausible_failure_code if entry is not None else None,
                    )
                except CacheUnavailable:
                    # No table, no coordination: this container asks for itself.
                    fetched = self._fetch_and_store(key, profile, scopes, "", budget=deadline, deadline=deadline)
                    return self._checked(fetched, request, min_ttl)
                except Throttled:
                    won, throttled = False, True
                if won:
                    budget = min(deadline, now + RENEWAL_SECONDS)
                    fetched = self._fetch_and_store(key, profile, scopes, owner, budget=budget, deadline=deadline)
                    return self._checked(fetched, request, min_ttl)
            poll = _next_poll(poll, throttled)
            # jitter, not cryptography: the standard generator is the right tool
            wait = random.uniform(poll / 2, poll)  # noqa: S311  # nosec B311
            if self._clock() + wait >= deadline:
                raise UpstreamUnavailable("timed out waiting for another request's token renewal", retry_after=1)
            self._sleep(wait)
            try:
                entry, throttled = self._read(key), False
            except Throttled:
                throttled = True

    def _fetch_and_store(
        self,
        key: str,
        profile: Profile,
        scopes: frozenset[str],
        owner: str,
        *,
        budget: float,
        deadline: float,
        attempts: int = MAX_ATTEMPTS,
    ) -> Served:
        """Fetches within `budget` (epoch seconds) and stores the token for the fleet; on failure,
        tells the fleet (see `_remember_failure`). Any other failure frees the lease at once."""
        try:
            return self._fetch_and_store_leased(key, profile, scopes, owner, budget, deadline, attempts)
        except BrokerError as error:
            answer = self._remember_failure(key, owner, error, deadline)
            if answer is error:
                raise
            raise answer from error
        except Exception:
            self._table.release_lease(key, owner)
            raise

    def _fetch_and_store_leased(
        self,
        key: str,
        profile: Profile,
        scopes: frozenset[str],
        owner: str,
        budget: float,
        deadline: float,
        attempts: int,
    ) -> Served:
        issued = self._fetch_with_rotation(profile, scopes, budget, attempts)
        now = self._clock()
        token = CachedToken(
            access_token=issued.access_token,
            token_type=issued.token_type,
            scope=issued.scope if issued.scope is not None else " ".join(sorted(scopes)),
            expires_at=int(now) + issued.expires_in,
            fetched_at=round(now, 3),  # to the millisecond, as the table stores it
        )
        observability.logger.info(
            "token fetched", extra={"profile": profile.name, "expires_in": issued.expires_in, "renewal": bool(owner)}
        )
        # Without the table the token is still served, from memory, until the table is back.
        self._patiently(lambda: self._table.store_token(key, token, owner), deadline)
        return Served(self._remember(key, token), AUTHORIZATION_SERVER)

    def _fetch_with_rotation(
        self, profile: Profile, scopes: frozenset[str], deadline: float, attempts: int
    ) -> IssuedToken:
        try:
            return self._endpoint.fetch(profile, scopes, deadline, attempts)
        except UpstreamError as error:
            if error.upstream_error != "invalid_client":
                raise
            rotated = self._profiles.get(profile.name, fresh=True)
            if rotated == profile:
                raise
            observability.logger.info("secret re-read after invalid_client; retrying", extra={"profile": profile.name})
            return self._endpoint.fetch(rotated, scopes, deadline, attempts)

    def _remember_failure(self, key: str, owner: str, error: BrokerError, deadline: float) -> BrokerError:
        """A refusal is remembered fleet-wide for `NEGATIVE_CACHE_SECONDS`, an outage for a back-off,
        so that waiters answer at once and nobody asks again meanwhile; any other failure frees
        the lease for the next try. Gives the error to answer: an outage's says the back-off."""
        now = self._clock()
        if isinstance(error, UpstreamUnavailable):
            backoff = outage_backoff(error.retry_after)
            failure = Failure(error.error, "", math.ceil(now + backoff))  # never shorter than the back-off
            # the caller hears the longer of the fleet's back-off and the server's own wish
            error = UpstreamUnavailable(error.description, retry_after=max(backoff, error.retry_after or 0))
        elif is_refusal(error) and self._settings.negative_cache_seconds > 0:
            until = int(now) + self._settings.negative_cache_seconds  # never longer than the setting
            failure = Failure(error.error, error.upstream_error or "", until)
        else:
            self._table.release_lease(key, owner)
            return error
        if owner:
            self._patiently(lambda: self._table.store_failure(key, failure, owner), deadline)
        return error

    def _patiently(self, write: Callable[[], None], deadline: float) -> None:
        """A write the fleet needs, retried with jitter while the table throttles, for a few
        seconds within `deadline`; without the table it is skipped."""
        until = min(deadline, self._clock() + STORE_PATIENCE_SECONDS)
        wait = POLL_FIRST_SECONDS
        while True:
            try:
                write()
                return
            except CacheUnavailable:
                return
            except Throttled:
                wait = _next_poll(wait, throttled=True)
                pause = random.uniform(wait / 2, wait)  # noqa: S311  # nosec B311
                if self._clock() + pause >= until:
                    observability.logger.warning("cache table throttled; a write for the fleet is given up")
                    return
                self._sleep(pause)

    def _refuse_unreachable(self, token: CachedToken | None, request: TokenRequest, min_ttl: int, now: float) -> None:
        """A min TTL that no fresh token can meet is refused before any token request."""
        if unreachable_min_ttl(token, now, min_ttl):
            raise self._min_ttl_refusal(token, request)

    def _checked(self, served: Served, request: TokenRequest, min_ttl: int) -> Served:
        """A fresh token that lives shorter than the min TTL cannot satisfy this request."""
        if is_usable(served.token, self._clock(), min_ttl):
            return served
        raise self._min_ttl_refusal(served.token, request)

    def _min_ttl_refusal(self, token: CachedToken, request: TokenRequest) -> BrokerError:
        if request.min_ttl is not None and request.min_ttl >= self._settings.min_ttl_seconds:
            return InvalidRequest(
                f"min_ttl {request.min_ttl} is longer than a fresh token lives ({int(token.lifetime)} seconds)"
            )
        return UpstreamError(
            f"the authorization server's tokens live {int(token.lifetime)} seconds, less than MIN_TTL_SECONDS"
        )

    def _read(self, key: str) -> TableEntry | None:
        try:
            return self._table.read(key)
        except CacheUnavailable:
            return None

    def _hit(self, tier: str, key: str, token: CachedToken) -> Served:
        observability.cache_hit(tier)
        return Served(self._remember(key, token), tier)

    def _remember(self, key: str, token: CachedToken) -> CachedToken:
        if key not in self._memory and len(self._memory) >= MEMORY_TIER_MAX_KEYS:
            del self._memory[next(iter(self._memory))]
        self._memory[key] = token
        return token


def _next_poll(poll: float, throttled: bool) -> float:
    """The next wait: doubling up to a cap, a higher cap while the table throttles; never shorter."""
    ceiling = THROTTLED_POLL_MAX_SECONDS if throttled else POLL_MAX_SECONDS
    return max(poll, min(ceiling, poll * 2))


def _raise_remembered(failure: Failure | None, now: float) -> None:
    """Answers a failure the fleet remembers, without asking the authorization server again."""
    if failure is None or failure.until <= now:
        return
    retry_after = max(1, math.ceil(failure.until - now))
    if failure.error == UpstreamUnavailable.error:
        raise UpstreamUnavailable(
            "the authorization server was unavailable moments ago; the fleet waits before asking again",
            retry_after=retry_after,
        )
    raise REMEMBERED[failure.error](
        f"the authorization server refused this token request recently: {failure.upstream_error}",
        upstream_error=failure.upstream_error,
        retry_after=retry_after,
    )
