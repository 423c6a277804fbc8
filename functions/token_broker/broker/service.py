"""Getting a token for a request: memory, then the table, then one fleet-wide renewal."""

from __future__ import annotations

import contextlib
import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from broker import observability
from broker.caller_identity import Caller
from broker.callers import caller_admitted
from broker.config import ENFORCE, Settings
from broker.decisions import (
    CachedToken,
    cache_key,
    effective_min_ttl,
    is_usable,
    needs_refresh,
    refresh_window,
)
from broker.errors import (
    AccessDenied,
    BrokerError,
    InvalidRequest,
    InvalidScope,
    UpstreamError,
    UpstreamUnavailable,
    is_refusal,
)
from broker.profile_store import ProfileStore
from broker.profiles import Profile
from broker.token_endpoint import IssuedToken, TokenEndpoint
from broker.token_request import TokenRequest
from broker.token_table import CacheUnavailable, Refusal, TableEntry, TokenTable

# A renewal lease lapses after this long, so a dead holder delays the fleet by seconds only.
LEASE_SECONDS = 10.0
# Requests waiting for another's renewal poll the table from this interval up to the cap.
POLL_FIRST_SECONDS = 0.05
POLL_MAX_SECONDS = 0.5
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
        profile = self._profiles.get(request.profile)
        self._admit(profile, caller)
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

        entry = self._read(key)
        cached = entry.token if entry else None
        if request.force_refresh:
            if (
                is_usable(cached, now, min_ttl)
                and now - cached.fetched_at < self._settings.force_refresh_cooldown_seconds
            ):
                return self._hit(TABLE, key, cached)  # a renewal within the cooldown is shared
        elif is_usable(cached, now, min_ttl):
            served = self._hit(TABLE, key, cached)
            if needs_refresh(cached, now, self._settings.refresh_ahead_seconds):
                return self._refresh_ahead(key, profile, scopes, served, deadline)
            return served
        elif entry is None and is_usable(remembered, now, min_ttl):
            # the table is unreachable (or lost the item): the memory tier's token still serves
            return self._hit(MEMORY, key, remembered)
        observability.cache_miss()
        return self._renew(key, profile, scopes, request, min_ttl, deadline, entry)

    def _admit(self, profile: Profile, caller: Caller) -> None:
        """Enforce: refuse a caller the profile does not admit. Audit: log the refusal, go on."""
        refusal = caller.refusal
        if refusal is None and (caller.arn is None or not caller_admitted(profile.allowed_callers, caller.arn)):
            # the description never tells which profile fields exist or what they hold
            refusal = AccessDenied("this caller may not use this profile")
        if refusal is None:
            return
        if self._settings.caller_auth == ENFORCE:
            raise refusal
        observability.logger.warning(
            "caller would be refused (CALLER_AUTH=audit)",
            extra={"profile": profile.name, "caller": caller.arn, "path": caller.path, "refusal": refusal.error},
        )

    def _refresh_ahead(
        self, key: str, profile: Profile, scopes: frozenset[str], served: Served, deadline: float
    ) -> Served:
        """One request renews a token about to expire; the rest, and this one on failure, keep it."""
        cached = served.token
        owner = uuid.uuid4().hex
        now = self._clock()
        window = refresh_window(cached, self._settings.refresh_ahead_seconds)
        try:
            won = self._table.acquire_lease(key, owner, now + LEASE_SECONDS, expires_before=math.ceil(now + window))
        except CacheUnavailable:
            return served
        if not won:
            return served
        try:
            return self._fetch_and_store(key, profile, scopes, owner, min(deadline, now + LEASE_SECONDS))
        except BrokerError as error:
            observability.logger.warning(
                "refresh-ahead failed; serving the cached token", extra={"profile": profile.name, "error": error.error}
            )
            return served

    def _renew(
        self,
        key: str,
        profile: Profile,
        scopes: frozenset[str],
        request: TokenRequest,
        min_ttl: int,
        deadline: float,
        entry: TableEntry | None,
    ) -> Served:
        """Single flight: take the lease and fetch, or wait for whoever holds it."""
        started = self._clock()
        wanted_since = started - self._settings.force_refresh_cooldown_seconds if request.force_refresh else None
        poll = POLL_FIRST_SECONDS
        while True:
            now = self._clock()
            if entry is not None:
                token = entry.token
                if is_usable(token, now, min_ttl) and (wanted_since is None or token.fetched_at >= wanted_since):
                    return self._hit(TABLE, key, token)
                if token is not None and token.fetched_at >= started:
                    # renewed for this request's wait, yet too short-lived for it
                    return self._checked(Served(token, TABLE), request, min_ttl)
                _raise_remembered(entry.refusal, now)
            owner = uuid.uuid4().hex
            fetched_before = wanted_since
            if entry is not None and entry.unreadable_since is not None:
                # a token nobody here can open is as good as none: renewing it must be allowed
                fetched_before = max(fetched_before or 0.0, entry.unreadable_since + 0.001)
            try:
                won = self._table.acquire_lease(
                    key,
                    owner,
                    now + LEASE_SECONDS,
                    expires_before=None if wanted_since else math.ceil(now + min_ttl),
                    fetched_before=fetched_before,
                )
            except CacheUnavailable:
                # No table, no coordination: this container asks for itself.
                return self._checked(self._fetch_and_store(key, profile, scopes, "", deadline), request, min_ttl)
            if won:
                fetched = self._fetch_and_store(key, profile, scopes, owner, min(deadline, now + LEASE_SECONDS))
                return self._checked(fetched, request, min_ttl)
            # jitter, not cryptography: the standard generator is the right tool
            wait = random.uniform(poll / 2, poll)  # noqa: S311  # nosec B311
            if self._clock() + wait >= deadline:
                raise UpstreamUnavailable("timed out waiting for another request's token renewal", retry_after=1)
            self._sleep(wait)
            poll = min(POLL_MAX_SECONDS, poll * 2)
            entry = self._read(key)

    def _fetch_and_store(
        self, key: str, profile: Profile, scopes: frozenset[str], owner: str, deadline: float
    ) -> Served:
        try:
            issued = self._fetch_with_rotation(profile, scopes, deadline)
        except BrokerError as error:
            self._after_failure(key, owner, error)
            raise
        except Exception:
            self._table.release_lease(key, owner)
            raise
        now = self._clock()
        token = CachedToken(
            access_token=issued.access_token,
            token_type=issued.token_type,
            scope=issued.scope if issued.scope is not None else " ".join(sorted(scopes)),
            expires_at=int(now) + issued.expires_in,
            fetched_at=now,
        )
        observability.logger.info(
            "token fetched", extra={"profile": profile.name, "expires_in": issued.expires_in, "renewal": bool(owner)}
        )
        # Without the table the token is still served, from memory, until the table is back.
        with contextlib.suppress(CacheUnavailable):
            self._table.store_token(key, token, owner)
        return Served(self._remember(key, token), AUTHORIZATION_SERVER)

    def _fetch_with_rotation(self, profile: Profile, scopes: frozenset[str], deadline: float) -> IssuedToken:
        try:
            return self._endpoint.fetch(profile, scopes, deadline)
        except UpstreamError as error:
            if error.upstream_error != "invalid_client":
                raise
            rotated = self._profiles.get(profile.name, fresh=True)
            if rotated == profile:
                raise
            observability.logger.info("secret re-read after invalid_client; retrying", extra={"profile": profile.name})
            return self._endpoint.fetch(rotated, scopes, deadline)

    def _after_failure(self, key: str, owner: str, error: BrokerError) -> None:
        """A refusal is remembered fleet-wide; any other failure frees the lease for the next try."""
        if not owner:
            return
        with contextlib.suppress(CacheUnavailable):
            if is_refusal(error) and self._settings.negative_cache_seconds > 0:
                refusal = Refusal(
                    error=error.error,
                    upstream_error=error.upstream_error or "",
                    until=int(self._clock()) + self._settings.negative_cache_seconds,
                )
                self._table.store_refusal(key, refusal, owner)
            else:
                self._table.release_lease(key, owner)

    def _checked(self, served: Served, request: TokenRequest, min_ttl: int) -> Served:
        """A fresh token that lives shorter than the min TTL cannot satisfy this request."""
        token = served.token
        if is_usable(token, self._clock(), min_ttl):
            return served
        if request.min_ttl is not None and request.min_ttl >= self._settings.min_ttl_seconds:
            raise InvalidRequest(
                f"min_ttl {request.min_ttl} is longer than a fresh token lives ({int(token.lifetime)} seconds)"
            )
        raise UpstreamError(
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


def _raise_remembered(refusal: Refusal | None, now: float) -> None:
    """Answers a refusal the fleet remembers, without asking the authorization server again."""
    if refusal is None or refusal.until <= now:
        return
    error = InvalidScope if refusal.error == InvalidScope.error else UpstreamError
    raise error(
        f"the authorization server refused this token request recently: {refusal.upstream_error}",
        upstream_error=refusal.upstream_error,
        retry_after=max(1, int(refusal.until - now)),
    )
