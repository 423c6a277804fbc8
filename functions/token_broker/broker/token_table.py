"""DynamoDB: the fleet-wide token cache, and the lease that lets one request renew a key.

One item per cache key. Besides the token it holds the renewal lease (`lease_owner`,
`lease_until`) and a remembered refusal (`refused_until`, `refusal_error`, `refusal_code`).
Every write is conditional, so no slower writer overwrites a newer token with an older one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from broker import observability
from broker.decisions import CachedToken, expiry_item_ttl
from broker.sensitive import Sensitive
from broker.token_sealer import CannotOpen, Sealed, SealUnavailable, TokenSealer

PARTITION_KEY = "cache_key"
TTL_ATTRIBUTE = "ttl"
# After a failure the table is skipped for this long, so a dead table costs each request
# nothing instead of a connect timeout.
SKIP_AFTER_FAILURE_SECONDS = 5.0


class CacheUnavailable(Exception):
    """The table could not be read or written; the broker carries on without it."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """An authorization server's 4xx, remembered so that the fleet does not ask again at once."""

    error: str  # the contract's error code: upstream_error or invalid_scope
    upstream_error: str
    until: int


@dataclass(frozen=True, slots=True)
class TableEntry:
    token: CachedToken | None
    refusal: Refusal | None
    lease_until: float | None
    # when the item holds a token this container cannot open: when that token was fetched
    unreadable_since: float | None = None


class TokenTable:
    def __init__(
        self,
        client: Any,
        table_name: str,
        sealer: TokenSealer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._table = table_name
        self._sealer = sealer
        self._clock = clock
        self._skip_until = 0.0

    def read(self, key: str) -> TableEntry | None:
        item = self._call("get_item", Key=_key(key), ConsistentRead=True).get("Item")
        if item is None:
            return None
        refusal, lease_until = _refusal(item), _number(item, "lease_until")
        try:
            return TableEntry(self._token(key, item), refusal, lease_until)
        except CannotOpen:
            observability.unreadable_cache_item()
            return TableEntry(None, refusal, lease_until, unreadable_since=_number(item, "fetched_at"))

    def acquire_lease(
        self,
        key: str,
        owner: str,
        lease_until: float,
        *,
        expires_before: int | None = None,
        fetched_before: float | None = None,
    ) -> bool:
        """Takes the key's renewal lease if it is free and the cached token still needs renewing.

        The token is stale when it expires before `expires_before` or was fetched before
        `fetched_before`; checking that in the same conditional write closes the race in
        which a request takes the lease just after another has stored a fresh token.
        """
        now = self._clock()
        stale = ["attribute_not_exists(expires_at)"]
        values: dict[str, Any] = {":now": _n(now), ":until": _n(lease_until), ":owner": {"S": owner}}
        if expires_before is not None:
            stale.append("expires_at < :expires_before")
            values[":expires_before"] = _n(expires_before)
        if fetched_before is not None:
            stale.append("fetched_at < :fetched_before")
            values[":fetched_before"] = _n(fetched_before)
        try:
            self._call(
                "update_item",
                Key=_key(key),
                UpdateExpression=(
                    "SET lease_owner = :owner, lease_until = :until, #ttl = if_not_exists(#ttl, :item_ttl)"
                ),
                ConditionExpression=(
                    f"(attribute_not_exists(lease_until) OR lease_until < :now) AND ({' OR '.join(stale)})"
                ),
                ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={**values, ":item_ttl": _n(expiry_item_ttl(int(lease_until)))},
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
                sealed = self._sealer.seal(key, token.access_token.reveal())
            except SealUnavailable as failure:
                raise self._unavailable("seal", str(failure)) from None
            token_values = {":sealed_token": {"B": sealed.sealed_token}, ":data_key": {"B": sealed.data_key}}
            set_token, remove_token = "sealed_token = :sealed_token, data_key = :data_key", "access_token"
        try:
            self._call(
                "update_item",
                Key=_key(key),
                UpdateExpression=(
                    f"SET {set_token}, token_type = :token_type, #scope = :scope, "
                    "expires_at = :expires_at, fetched_at = :fetched_at, #ttl = :item_ttl "
                    f"REMOVE {remove_token}, refused_until, refusal_error, refusal_code"
                    + (", lease_owner, lease_until" if owner else "")
                ),
                ConditionExpression="attribute_not_exists(fetched_at) OR fetched_at < :fetched_at",
                ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE, "#scope": "scope"},
                ExpressionAttributeValues={
                    **token_values,
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

    def store_refusal(self, key: str, refusal: Refusal, owner: str) -> None:
        """Remembers a refusal for the fleet and lets go of `owner`'s lease."""
        self._call(
            "update_item",
            Key=_key(key),
            UpdateExpression=(
                "SET refused_until = :until, refusal_error = :error, refusal_code = :code, "
                "#ttl = if_not_exists(#ttl, :item_ttl) REMOVE lease_owner, lease_until"
            ),
            ConditionExpression="lease_owner = :owner",
            ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues={
                ":until": _n(refusal.until),
                ":error": {"S": refusal.error},
                ":code": {"S": refusal.upstream_error},
                ":owner": {"S": owner},
                ":item_ttl": _n(expiry_item_ttl(refusal.until)),
            },
            tolerate_condition=True,
        )

    def release_lease(self, key: str, owner: str) -> None:
        """Frees the lease early so that another request can try at once; best effort."""
        if not owner:
            return
        with contextlib.suppress(CacheUnavailable):  # the lease lapses by itself
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
            failure = code or "ClientError"
        except BotoCoreError as error:
            failure = type(error).__name__
        raise self._unavailable(operation, failure)

    def _unavailable(self, operation: str, failure: str) -> CacheUnavailable:
        """Skips the table for a while after a failure, says so, and gives the error to raise."""
        self._skip_until = self._clock() + SKIP_AFTER_FAILURE_SECONDS
        observability.degraded(operation, failure)
        return CacheUnavailable(failure)

    def _token(self, key: str, item: dict[str, Any]) -> CachedToken | None:
        """The item's token, opened when sealed.

        Raises `CannotOpen` for a token in the other form than this container writes (plaintext
        while sealing is on, after the key was set; sealed while it is off), so that it is
        renewed like a token that does not decrypt."""
        expires_at, fetched_at = _number(item, "expires_at"), _number(item, "fetched_at")
        if expires_at is None or fetched_at is None:
            return None
        if self._sealer is None:
            if "access_token" not in item:
                raise CannotOpen("the cached token is sealed and no KMS key is configured")
            value = item["access_token"]["S"]
        elif "sealed_token" in item and "data_key" in item:
            try:
                value = self._sealer.open(key, Sealed(item["sealed_token"]["B"], item["data_key"]["B"]))
            except SealUnavailable as failure:
                raise self._unavailable("open", str(failure)) from None
        else:
            raise CannotOpen("the cached token is in plaintext while sealing is on")
        return CachedToken(
            access_token=Sensitive(value),
            token_type=item.get("token_type", {}).get("S", "Bearer"),
            scope=item.get("scope", {}).get("S", ""),
            expires_at=int(expires_at),
            fetched_at=fetched_at,
        )


class _ConditionFailed(Exception):
    """A conditional write found the item in another state than it required."""


def _key(key: str) -> dict[str, Any]:
    return {PARTITION_KEY: {"S": key}}


def _n(value: float) -> dict[str, str]:
    return {"N": repr(round(value, 3)) if isinstance(value, float) else str(value)}


def _number(item: dict[str, Any], name: str) -> float | None:
    attribute = item.get(name)
    return float(Decimal(attribute["N"])) if attribute and "N" in attribute else None


def _refusal(item: dict[str, Any]) -> Refusal | None:
    until = _number(item, "refused_until")
    if until is None:
        return None
    return Refusal(
        error=item.get("refusal_error", {}).get("S", "upstream_error"),
        upstream_error=item.get("refusal_code", {}).get("S", ""),
        until=int(until),
    )
