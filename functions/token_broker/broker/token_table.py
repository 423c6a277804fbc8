"""DynamoDB: the fleet-wide token cache, and the lease that lets one request renew a key.

One item per cache key. Besides the token it holds the renewal lease (`lease_owner`,
`lease_until`) and the last renewal's failure, remembered for the fleet (`failed_until`,
`failure_error`, `failure_code`): a refusal to stop asking, or an outage to back off from.
Every write is conditional, so no slower writer overwrites a newer token with an older one.

The table is a cache, not an authority (contract promise 11). Every item read is validated:
missing, mistyped or impossible fields are read as no token, no lease or no failure, and a
sealed token opens only with the item's own key, times, type and scope. The writes' conditions
read the item the same way, with a type check before every comparison, so a bad item is renewed
and overwritten under the same single flight as a missing one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from broker import observability
from broker.decisions import (
    CLOCK_SKEW_SECONDS,
    LEASE_SECONDS,
    OUTAGE_BACKOFF_MAX_SECONDS,
    CachedToken,
    expiry_item_ttl,
)
from broker.errors import InvalidScope, UpstreamError, UpstreamUnavailable
from broker.rfc6749 import is_access_token, is_error_code, is_granted_scope
from broker.sensitive import Sensitive
from broker.token_sealer import CannotOpen, Sealed, SealUnavailable, TokenSealer

PARTITION_KEY = "cache_key"
BEARER = "Bearer"  # the only token type a broker stores
TTL_ATTRIBUTE = "ttl"
TOKEN_ATTRIBUTES = ("access_token", "sealed_token", "data_key", "expires_at", "fetched_at")
# The version of the sealed token's associated data: tokens sealed otherwise are renewed.
SEAL_VERSION = 2
# After a failure the table is skipped for this long, so a dead table costs each request
# nothing instead of a connect timeout.
SKIP_AFTER_FAILURE_SECONDS = 5.0
# DynamoDB's answers when a key or table is busy: back-pressure, not an outage.
THROTTLING_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})


class CacheUnavailable(Exception):
    """The table could not be read or written; the broker carries on without it."""


class Throttled(Exception):
    """DynamoDB is there but refused for want of capacity: wait and try again, never go around it."""


@dataclass(frozen=True, slots=True)
class Failure:
    """Why the last renewal of a key failed, remembered so that the fleet does not ask again at once."""

    error: str  # the contract's error code it is answered with
    upstream_error: str  # the authorization server's RFC 6749 code; empty for an outage
    until: int


# The failures a table may remember, by the contract's error code.
REMEMBERED = {error.error: error for error in (UpstreamError, InvalidScope, UpstreamUnavailable)}


@dataclass(frozen=True, slots=True)
class TableEntry:
    token: CachedToken | None  # None: no token, or one that must not be served
    failure: Failure | None
    # until when another request holds the renewal lease, if it plausibly does
    lease_until: float | None = None
    # when the item holds a token that must not be served: its fetch time, if that is plausible
    unreadable_since: float | None = None
    # a remembered failure whose code no broker writes: ignored, and the lease may be taken over it
    implausible_failure_code: str | None = None

    def leased(self, now: float) -> bool:
        """Whether a renewal is under way: trying to take the lease would only cost a write."""
        return self.lease_until is not None and self.lease_until > now


class TokenTable:
    def __init__(
        self,
        client: Any,
        table_name: str,
        sealer: TokenSealer | None = None,
        clock: Callable[[], float] = time.time,
        *,
        refusal_seconds: int,
    ) -> None:
        self._client = client
        self._table = table_name
        self._sealer = sealer
        self._clock = clock
        self._refusal_seconds = refusal_seconds  # no broker remembers a refusal for longer
        self._skip_until = 0.0

    def read(self, key: str) -> TableEntry | None:
        item = self._call("get_item", Key=_key(key), ConsistentRead=True).get("Item")
        if item is None:
            return None
        now = self._clock()
        failure = self._failure(item, now)
        implausible_code = None
        if failure is not None and not _plausible_code(failure):
            observability.unreadable_cache_item("a remembered failure's code is not one a broker writes")
            implausible_code, failure = failure.upstream_error, None
        lease_until = _number(item, "lease_until")
        if lease_until is not None and lease_until > now + LEASE_SECONDS + CLOCK_SKEW_SECONDS:
            lease_until = None  # no broker writes one that far ahead: as good as lapsed
        try:
            return TableEntry(self._token(key, item, now), failure, lease_until, None, implausible_code)
        except CannotOpen as reason:
            observability.unreadable_cache_item(str(reason))
            fetched_at = _number(item, "fetched_at")
            plausible = fetched_at is not None and fetched_at <= now + CLOCK_SKEW_SECONDS
            return TableEntry(None, failure, lease_until, fetched_at if plausible else None, implausible_code)

    def acquire_lease(
        self,
        key: str,
        owner: str,
        lease_until: float,
        *,
        expires_before: int | None = None,
        fetched_before: float | None = None,
        implausible_failure_code: str | None = None,
    ) -> bool:
        """Takes the key's renewal lease if it is free, no failure is remembered, and the cached
        token still needs renewing.

        The lease is free when absent, lapsed, or impossible (mistyped, or further ahead than any
        broker writes one); a remembered failure counts as `read` counts it. The token needs
        renewing when it is absent or impossible, expires before `expires_before`, or was
        fetched before `fetched_before`. A failure whose code `read` found implausible (which no
        condition can see: its characters) is named by `implausible_failure_code` and does not
        count. Checking all that in one conditional write closes the
        races in which a request takes the lease just after another has stored a fresh token
        or a failure.
        """
        now = self._clock()
        stale = [
            "attribute_not_exists(expires_at)",
            "attribute_not_exists(fetched_at)",
            "NOT attribute_type(expires_at, :number)",
            "NOT attribute_type(fetched_at, :number)",
            "fetched_at > :future",
        ]
        values: dict[str, Any] = {
            ":now": _n(now),
            ":until": _n(lease_until),
            ":owner": {"S": owner},
            ":number": {"S": "N"},
            ":future": _n(now + CLOCK_SKEW_SECONDS),
            ":lease_limit": _n(now + LEASE_SECONDS + CLOCK_SKEW_SECONDS),
            ":item_ttl": _n(expiry_item_ttl(int(lease_until))),
        }
        if expires_before is not None:
            stale.append("expires_at < :expires_before")
            values[":expires_before"] = _n(expires_before)
        if fetched_before is not None:
            stale.append("fetched_at < :fetched_before")
            values[":fetched_before"] = _n(fetched_before)
        # every comparison comes after the type check that makes it safe (DynamoDB evaluates
        # a String compared with a Number as false; a type check first says what is meant)
        lease_free = (
            "attribute_not_exists(lease_until) OR NOT attribute_type(lease_until, :number) "
            "OR lease_until < :now OR lease_until > :lease_limit"
        )
        # no failure in force, as `read` sees failures: nobody tries again during a back-off
        no_failure = (
            "attribute_not_exists(failed_until) OR NOT attribute_type(failed_until, :number) "
            "OR NOT attribute_type(failure_code, :string) OR NOT failure_error IN (:refused, :scope, :outage) "
            "OR failed_until <= :now "
            "OR (failure_error = :outage AND failed_until > :outage_limit) "
            "OR (NOT failure_error = :outage AND failed_until > :refusal_limit)"
        )
        if implausible_failure_code is not None:
            no_failure += " OR failure_code = :implausible_code"
            values[":implausible_code"] = {"S": implausible_failure_code}
        values.update(
            {
                ":string": {"S": "S"},
                ":refused": {"S": UpstreamError.error},
                ":scope": {"S": InvalidScope.error},
                ":outage": {"S": UpstreamUnavailable.error},
                ":outage_limit": _n(now + OUTAGE_BACKOFF_MAX_SECONDS + CLOCK_SKEW_SECONDS),
                ":refusal_limit": _n(now + self._refusal_seconds + CLOCK_SKEW_SECONDS),
            }
        )
        try:
            self._call(
                "update_item",
                Key=_key(key),
                UpdateExpression=(
                    "SET lease_owner = :owner, lease_until = :until, #ttl = if_not_exists(#ttl, :item_ttl)"
                ),
                ConditionExpression=f"({lease_free}) AND ({no_failure}) AND ({' OR '.join(stale)})",
                ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues=values,
            )
        except _ConditionFailed:
            return False
        return True

    def store_token(self, key: str, token: CachedToken, owner: str) -> None:
        """Writes a fresh token and lets go of `owner`'s lease; an older token never wins.

        With a sealer the item holds the token only sealed; without one, only in plaintext."""
        if self._sealer is None:
            token_values: dict[str, Any] = {":access_token": {"S": token.access_token.reveal()}}
            set_token, remove_token = "access_token = :access_token", "sealed_token, data_key"
        else:
            try:
                sealed = self._sealer.seal(_associated_data(key, token), token.access_token.reveal())
            except SealUnavailable as failure:
                raise self._unavailable("seal", str(failure)) from None
            token_values = {":sealed_token": {"B": sealed.sealed_token}, ":data_key": {"B": sealed.data_key}}
            set_token, remove_token = "sealed_token = :sealed_token, data_key = :data_key", "access_token"
        now = self._clock()
        # Newer than the item's token, or the item's token is impossible; or this request holds
        # the lease it took to replace the item, so nobody else has stored a token since.
        newer = (
            "attribute_not_exists(fetched_at) OR NOT attribute_type(fetched_at, :number) "
            "OR fetched_at < :fetched_at OR fetched_at > :future"
        )
        owner_values: dict[str, Any] = {":owner": {"S": owner}} if owner else {}
        try:
            self._call(
                "update_item",
                Key=_key(key),
                UpdateExpression=(
                    f"SET {set_token}, token_type = :token_type, #scope = :scope, "
                    "expires_at = :expires_at, fetched_at = :fetched_at, #ttl = :item_ttl "
                    f"REMOVE {remove_token}, failed_until, failure_error, failure_code"
                    + (", lease_owner, lease_until" if owner else "")
                ),
                ConditionExpression=("lease_owner = :owner OR " if owner else "") + newer,
                ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE, "#scope": "scope"},
                ExpressionAttributeValues={
                    **token_values,
                    **owner_values,
                    ":number": {"S": "N"},
                    ":future": _n(now + CLOCK_SKEW_SECONDS),
                    ":token_type": {"S": token.token_type},
                    ":scope": {"S": token.scope},
                    ":expires_at": _n(token.expires_at),
                    ":fetched_at": _n(token.fetched_at),
                    ":item_ttl": _n(expiry_item_ttl(token.expires_at)),
                },
            )
        except _ConditionFailed:
            observability.logger.info("a newer token is already cached; this one is not stored")
            self.release_lease(key, owner)

    def store_failure(self, key: str, failure: Failure, owner: str) -> None:
        """Remembers a failed renewal for the fleet and lets go of `owner`'s lease."""
        self._call(
            "update_item",
            Key=_key(key),
            UpdateExpression=(
                "SET failed_until = :until, failure_error = :error, failure_code = :code, "
                "#ttl = if_not_exists(#ttl, :item_ttl) REMOVE lease_owner, lease_until"
            ),
            ConditionExpression="lease_owner = :owner",
            ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues={
                ":until": _n(failure.until),
                ":error": {"S": failure.error},
                ":code": {"S": failure.upstream_error},
                ":owner": {"S": owner},
                ":item_ttl": _n(expiry_item_ttl(failure.until)),
            },
            tolerate_condition=True,
        )

    def release_lease(self, key: str, owner: str) -> None:
        """Frees the lease early so that another request can try at once; best effort."""
        if not owner:
            return
        with contextlib.suppress(CacheUnavailable, Throttled):  # the lease lapses by itself
            self._call(
                "update_item",
                Key=_key(key),
                UpdateExpression="REMOVE lease_owner, lease_until",
                ConditionExpression="lease_owner = :owner",
                ExpressionAttributeValues={":owner": {"S": owner}},
                tolerate_condition=True,
            )

    def _call(self, operation: str, *, tolerate_condition: bool = False, **parameters: Any) -> dict[str, Any]:
        if self._clock() < self._skip_until:
            raise CacheUnavailable("skipped after a recent failure")
        method = getattr(self._client, operation)
        try:
            answer: dict[str, Any] = method(TableName=self._table, **parameters)
            return answer
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                if tolerate_condition:
                    return {}
                raise _ConditionFailed from None
            if code in THROTTLING_CODES:
                observability.cache_throttled(operation)
                raise Throttled(code) from None
            failure = code or "ClientError"
        except BotoCoreError as error:
            failure = type(error).__name__
        raise self._unavailable(operation, failure)

    def _unavailable(self, operation: str, failure: str) -> CacheUnavailable:
        """Skips the table for a while after a failure, says so, and gives the error to raise."""
        self._skip_until = self._clock() + SKIP_AFTER_FAILURE_SECONDS
        observability.degraded(operation, failure)
        return CacheUnavailable(failure)

    def _token(self, key: str, item: dict[str, Any], now: float) -> CachedToken | None:
        """The item's token, validated and opened; None when the item holds none.

        Raises `CannotOpen` for a token that must not be served: a field missing, mistyped or
        impossible (fetched in the future, expiring before it was fetched), a sealed token that
        does not open with the item's own fields, or a token in the other form than this
        container writes (plaintext while sealing is on, sealed while it is off)."""
        if not any(name in item for name in TOKEN_ATTRIBUTES):
            return None
        expires_at, fetched_at = _number(item, "expires_at"), _number(item, "fetched_at")
        token_type, scope = _string(item, "token_type"), _string(item, "scope")
        if expires_at is None or fetched_at is None or token_type != BEARER or not is_granted_scope(scope):
            raise CannotOpen("the cached token's fields are missing, mistyped or not what a broker writes")
        if fetched_at > now + CLOCK_SKEW_SECONDS or expires_at <= fetched_at or not expires_at.is_integer():
            raise CannotOpen("the cached token's times are impossible")
        token = CachedToken(Sensitive(""), token_type, scope, int(expires_at), fetched_at)
        return dataclasses.replace(token, access_token=Sensitive(self._open(key, item, token)))

    def _open(self, key: str, item: dict[str, Any], token: CachedToken) -> str:
        if self._sealer is None:
            value = _string(item, "access_token")
            if not value:
                raise CannotOpen("the cached token is not in plaintext and no KMS key is configured")
            if not is_access_token(value):
                raise CannotOpen("the cached token is not RFC 6749 text")
            return value
        sealed_token, data_key = _binary(item, "sealed_token"), _binary(item, "data_key")
        if sealed_token is None or data_key is None:
            raise CannotOpen("the cached token is not sealed while sealing is on")
        try:
            return self._sealer.open(_associated_data(key, token), Sealed(sealed_token, data_key))
        except SealUnavailable as failure:
            raise self._unavailable("open", str(failure)) from None

    def _failure(self, item: dict[str, Any], now: float) -> Failure | None:
        """The remembered failure, if it is one a broker could have written."""
        until, error = _number(item, "failed_until"), _string(item, "failure_error")
        code = _string(item, "failure_code")
        if until is None or error not in REMEMBERED or code is None:
            return None
        longest = OUTAGE_BACKOFF_MAX_SECONDS if error == UpstreamUnavailable.error else self._refusal_seconds
        if until > now + longest + CLOCK_SKEW_SECONDS:
            observability.unreadable_cache_item("a failure is remembered for longer than any broker would")
            return None
        return Failure(error, code, int(until))


def _plausible_code(failure: Failure) -> bool:
    """The code reaches callers' answers: an RFC 6749 error code for a refusal, none for an outage."""
    if failure.error == UpstreamUnavailable.error:
        return failure.upstream_error == ""
    return is_error_code(failure.upstream_error)


class _ConditionFailed(Exception):
    """A conditional write found the item in another state than it required."""


def _associated_data(key: str, token: CachedToken) -> bytes:
    """What a sealed token is bound to: its key, its times (the fetch time to the millisecond,
    as the item stores it), its type and scope, and the version of this layout."""
    fields = [SEAL_VERSION, key, token.expires_at, f"{token.fetched_at:.3f}", token.token_type, token.scope]
    return json.dumps(fields, separators=(",", ":")).encode()


def _key(key: str) -> dict[str, Any]:
    return {PARTITION_KEY: {"S": key}}


def _n(value: float) -> dict[str, str]:
    return {"N": repr(round(value, 3)) if isinstance(value, float) else str(value)}


def _number(item: dict[str, Any], name: str) -> float | None:
    attribute = item.get(name)
    if not isinstance(attribute, dict) or not isinstance(attribute.get("N"), str):
        return None
    try:
        value = float(Decimal(attribute["N"]))
    except (InvalidOperation, OverflowError):
        return None
    return value if math.isfinite(value) else None


def _string(item: dict[str, Any], name: str) -> str | None:
    attribute = item.get(name)
    value = attribute.get("S") if isinstance(attribute, dict) else None
    return value if isinstance(value, str) else None


def _binary(item: dict[str, Any], name: str) -> bytes | None:
    attribute = item.get(name)
    value = attribute.get("B") if isinstance(attribute, dict) else None
    return value if isinstance(value, bytes) else None
