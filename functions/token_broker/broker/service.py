"""Getting a token for a request: admission, then the renewal plan (`renewal`) carried out step
by step against the memory tier, the token store, the authorization server and the renewal
function. What to do is the plan's; how, and what it cost, is this module's."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

from broker import observability
from broker.admission import admitted_profile
from broker.bounded import BoundedMap
from broker.caller_identity import Caller
from broker.config import ENFORCE, Settings
from broker.decisions import LEASE_SECONDS, CachedToken, effective_min_ttl
from broker.errors import BrokerError, InvalidScope, UpstreamError
from broker.failures import remembered
from broker.profile_store import ProfileStore
from broker.profiles import Profile, cache_key
from broker.renewal import (
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
    fresh,
    handed_lease,
    next_step,
    rereads_secret,
    still_serves,
)
from broker.renewal_function import Renewal, RenewalFunction
from broker.token_binding import TokenBinding
from broker.token_endpoint import MAX_ATTEMPTS, IssuedToken, TokenEndpoint
from broker.token_request import TokenRequest
from broker.token_store import Entry, Lease, StoreUnavailable, Throttled, TokenStore

# A fresh token is worth waiting this long for a throttled table: unstored, it would be fetched
# again by the next request once the lease lapses.
STORE_PATIENCE_SECONDS = 3.0
STORE_RETRY_FIRST_SECONDS = 0.05
STORE_RETRY_MAX_SECONDS = 4.0
MEMORY_TIER_MAX_KEYS = 1_000


@dataclass(frozen=True, slots=True)
class Served:
    token: CachedToken
    source: Source


@dataclass(frozen=True, slots=True)
class Renewing:
    """What every step of renewing one key needs: the key, the profile and scope set it was made
    from, and the deadline of the request (or renewal event) that renews it."""

    key: str
    profile: Profile
    scopes: frozenset[str]
    deadline: float


class Acquired(Enum):
    """What trying to take a key's lease came to."""

    TAKEN = "taken"
    HELD = "held by another"
    UNAVAILABLE = "the table could not be asked"
    THROTTLED = "the table throttled"


class TokenService:
    def __init__(  # its collaborators, one per AWS service, and a clock and sleep tests can fake
        self,
        settings: Settings,
        profiles: ProfileStore,
        store: TokenStore,
        endpoint: TokenEndpoint,
        renewal_function: RenewalFunction | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._profiles = profiles
        self._store = store
        self._endpoint = endpoint
        self._renewal_function = renewal_function
        self._clock = clock
        self._sleep = sleep
        self._memory: BoundedMap[str, CachedToken] = BoundedMap(MEMORY_TIER_MAX_KEYS)
        # (profile name, scopes) -> (the profile, its cache key): a key is a hash, made once per profile read
        self._keys: BoundedMap[tuple[str, frozenset[str]], tuple[Profile, str]] = BoundedMap(MEMORY_TIER_MAX_KEYS)

    def get_token(self, request: TokenRequest, caller: Caller, deadline: float) -> Served:
        """A token with at least the applicable min TTL left; `deadline` is epoch seconds.

        The caller is admitted by the profile's `allowed_callers` before anything else happens."""
        profile = admitted_profile(
            self._profiles, request.profile, caller, enforce=self._settings.caller_auth == ENFORCE
        )
        scopes = request.scopes or profile.scopes
        if profile.allowed_scopes is not None and not scopes <= profile.allowed_scopes:
            outside = sorted(scopes - profile.allowed_scopes)[0]
            raise InvalidScope(f"scope {outside} is not allowed for profile {profile.name}")
        key = self._cache_key(profile, scopes)
        renewing = Renewing(key, profile, scopes, deadline)
        want = self._want(request)
        known = Known(self._memory.get(key))
        while True:
            step = next_step(known, want, self._clock(), deadline)
            match step:
                case Serve():
                    return self._served(key, step)
                case Refuse():
                    raise step.error
                case ReadTable():
                    known = replace(known, table=self._read(key, profile.binding))
                case Wait():
                    # jitter, not cryptography: the standard generator is the right tool
                    self._sleep(random.uniform(step.seconds / 2, step.seconds))  # noqa: S311  # nosec B311
                    known = replace(known, table=self._read(key, profile.binding), poll=step.seconds, contended=False)
                case HandOff() | TryAhead():
                    served = (
                        self._hand_off(renewing, want, step)
                        if isinstance(step, HandOff)
                        else self._try_ahead(renewing, want, step)
                    )
                    if served is not None:
                        return served
                    known = replace(known, table=TableState.NOT_READ)  # the token in hand no longer serves
                case Renew():
                    lease = self._lease()
                    match self._acquire(key, lease, step):
                        case Acquired.TAKEN:
                            fetched = self._fetch(renewing, lease, step.until, MAX_ATTEMPTS)
                            return self._served(key, fresh(fetched, want, self._clock()))
                        case Acquired.HELD:
                            known = replace(known, contended=True)
                        case Acquired.UNAVAILABLE:
                            known = replace(known, table=TableState.UNAVAILABLE)
                        case Acquired.THROTTLED:
                            known = replace(known, table=TableState.THROTTLED)
                case FetchAlone():
                    fetched = self._fetch(renewing, None, step.until, MAX_ATTEMPTS)
                    return self._served(key, fresh(fetched, want, self._clock()))

    def _want(self, request: TokenRequest) -> Want:
        settings = self._settings
        return Want(
            min_ttl=effective_min_ttl(settings.min_ttl_seconds, request.min_ttl),
            requested_min_ttl=request.min_ttl,
            floor=settings.min_ttl_seconds,
            started=self._clock(),
            force_refresh=request.force_refresh,
            refresh_ahead=settings.refresh_ahead_seconds,
            cooldown=settings.force_refresh_cooldown_seconds,
            hand_off=self._renewal_function is not None,
        )

    def renew(self, renewal: Renewal, deadline: float) -> None:
        """The renewal function's work: renew the key whose lease `renewal` names, with the whole
        lease to finish. An event naming no lease the table holds renews nothing."""
        profile = self._profiles.get(renewal.profile)
        key = self._cache_key(profile, renewal.scopes)
        try:
            entry = self._store.read(key)
        except (StoreUnavailable, Throttled):
            observability.logger.warning("the renewal's lease could not be read; nothing renewed")
            return
        handed = handed_lease(entry, renewal.lease_owner, self._clock(), deadline)
        if handed is None:
            observability.logger.warning(
                "the renewal event names no lease the table holds; nothing renewed", extra={"profile": profile.name}
            )
            return
        lease, until = handed
        self._fetch(Renewing(key, profile, renewal.scopes, deadline), lease, until, MAX_ATTEMPTS)

    def _hand_off(self, renewing: Renewing, want: Want, step: HandOff) -> Served | None:
        """One request takes the lease and hands the renewal over; every request is served from
        the token in hand (None: it no longer serves this one). If Lambda does not take the event,
        that request makes the bounded try itself, with the lease it holds: the fleet still
        renews once, ahead of expiry."""
        lease, handing_off = self._lease(), self._renewal_function
        if handing_off is not None and self._acquire(renewing.key, lease, step) is Acquired.TAKEN:
            if handing_off.hand_off(Renewal(renewing.profile.name, renewing.scopes, lease.owner)):
                return self._in_hand(renewing.key, step.serving, want)
            if step.fallback_until is not None:
                return self._try_with(renewing, want, step.serving, lease, step.fallback_until)
            self._store.release_lease(renewing.key, lease)
        return self._in_hand(renewing.key, step.serving, want)

    def _try_ahead(self, renewing: Renewing, want: Want, step: TryAhead) -> Served | None:
        """One request renews with one bounded try; it, and every other, keeps the token in hand
        if that fails, for as long as the token serves them (None: it no longer serves this one)."""
        lease = self._lease()
        if self._acquire(renewing.key, lease, step) is Acquired.TAKEN:
            return self._try_with(renewing, want, step.serving, lease, step.until)
        return self._in_hand(renewing.key, step.serving, want)

    def _try_with(self, renewing: Renewing, want: Want, serving: Serve, lease: Lease, until: float) -> Served | None:
        """The one bounded try of the request that holds `lease`; the token in hand if it fails."""
        try:
            fetched = self._fetch(renewing, lease, until, 1)
        except BrokerError as error:
            observability.logger.warning(
                "refresh-ahead failed; serving the cached token while it lasts",
                extra={"profile": renewing.profile.name, "error": error.error},
            )
            in_hand = still_serves(serving, want, self._clock())
            if in_hand is None:
                raise
            return self._served(renewing.key, in_hand)
        return self._served(renewing.key, fresh(fetched, want, self._clock()))

    def _in_hand(self, key: str, serving: Serve, want: Want) -> Served | None:
        in_hand = still_serves(serving, want, self._clock())
        return None if in_hand is None else self._served(key, in_hand)

    def _acquire(self, key: str, lease: Lease, step: HandOff | TryAhead | Renew) -> Acquired:
        try:
            return Acquired.TAKEN if self._store.acquire_lease(key, lease, step.need) else Acquired.HELD
        except StoreUnavailable:
            return Acquired.UNAVAILABLE
        except Throttled:
            return Acquired.THROTTLED

    def _fetch(self, renewing: Renewing, lease: Lease | None, until: float, attempts: int) -> CachedToken:
        """A token from the authorization server within `until`, stored for the fleet. On a
        refusal or an outage, the failure is remembered and the lease let go of in one write;
        on any other failure, the lease is let go of at once."""
        key, profile, deadline = renewing.key, renewing.profile, renewing.deadline
        try:
            issued = self._fetch_with_rotation(profile, renewing.scopes, until, attempts)
            now = self._clock()
            token = CachedToken(
                access_token=issued.access_token,
                token_type=issued.token_type,
                scope=issued.scope if issued.scope is not None else " ".join(sorted(renewing.scopes)),
                expires_at=int(now) + issued.expires_in,
                fetched_at=round(now, 3),  # to the millisecond, as the table stores it
                dpop_key=issued.dpop_key,
            )
            observability.logger.info(
                "token fetched",
                extra={"profile": profile.name, "expires_in": issued.expires_in, "renewal": lease is not None},
            )
            # Without the table the token is still served, from memory, until the table is back.
            self._patiently(lambda: self._store.store_token(key, token, lease), deadline)
            return token
        except BrokerError as error:
            failure, answer = remembered(error, self._clock(), self._settings.negative_cache_seconds)
            if lease is not None:
                if failure is None:
                    self._store.release_lease(key, lease)
                else:
                    self._patiently(lambda: self._store.store_failure(key, failure, lease), deadline)
            if answer is error:
                raise
            raise answer from error
        except Exception:
            if lease is not None:
                self._store.release_lease(key, lease)
            raise

    def _fetch_with_rotation(
        self, profile: Profile, scopes: frozenset[str], until: float, attempts: int
    ) -> IssuedToken:
        try:
            return self._endpoint.fetch(profile, scopes, until, attempts)
        except UpstreamError as error:
            if not rereads_secret(error):
                raise
            rotated = self._profiles.get(profile.name, fresh=True)
            if rotated == profile:
                raise
            observability.logger.info("secret re-read after invalid_client; retrying", extra={"profile": profile.name})
            return self._endpoint.fetch(rotated, scopes, until, attempts)

    def _patiently(self, write: Callable[[], None], deadline: float) -> None:
        """A write the fleet needs, retried with jitter while the table throttles, for a few
        seconds within `deadline`; without the table it is skipped."""
        until = min(deadline, self._clock() + STORE_PATIENCE_SECONDS)
        wait = STORE_RETRY_FIRST_SECONDS
        while True:
            try:
                write()
                return
            except StoreUnavailable:
                return
            except Throttled:
                pause = random.uniform(wait / 2, wait)  # noqa: S311  # nosec B311
                if self._clock() + pause >= until:
                    observability.logger.warning("cache table throttled; a write for the fleet is given up")
                    return
                self._sleep(pause)
                wait = min(STORE_RETRY_MAX_SECONDS, wait * 2)

    def _cache_key(self, profile: Profile, scopes: frozenset[str]) -> str:
        known = self._keys.get((profile.name, scopes))
        if known is not None and known[0] is profile:
            return known[1]
        key = cache_key(profile, scopes)
        self._keys.put((profile.name, scopes), (profile, key))
        return key

    def _read(self, key: str, binding: TokenBinding) -> Entry | TableState:
        """The key's entry; a token of another type than the profile's binding (which only a
        forged item holds: the key says the binding) is renewed like an unreadable one."""
        try:
            entry = self._store.read(key)
        except StoreUnavailable:
            return TableState.UNAVAILABLE
        except Throttled:
            return TableState.THROTTLED
        token = entry.token
        if token is not None and token.token_type != binding.token_type:
            observability.unreadable_cache_item("the cached token's type is not the profile's binding")
            return replace(entry, token=None, unreadable_since=token.fetched_at)
        return entry

    def _lease(self) -> Lease:
        return Lease(uuid.uuid4().hex, self._clock() + LEASE_SECONDS)

    def _served(self, key: str, step: Serve | Refuse) -> Served:
        if isinstance(step, Refuse):
            raise step.error
        if step.source is Source.AUTHORIZATION_SERVER:
            observability.cache_miss()
        else:
            observability.cache_hit(step.source)
        self._memory.put(key, step.token)
        return Served(step.token, step.source)
