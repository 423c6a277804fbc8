"""DynamoDB: the fleet's token store (`token_store.TokenStore`), one item per cache key.

Besides the token an item holds the renewal lease (`lease_owner`, `lease_until`) and the last
renewal's failure (`failed_until`, `failure_error`, `failure_code`). Every item read is
validated: missing, mistyped or impossible fields are read as no token, no lease or no failure,
and a sealed token opens only with the item's own key, times, type and scope. The writes'
conditions are made from the same horizons (`token_store`), with a type check before every
comparison (DynamoDB evaluates a String compared with a Number as false; a type check first says
what is meant), so a bad item is renewed and overwritten under the same single flight as a
missing one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from broker import observability
from broker.decisions import CachedToken, expiry_item_ttl
from broker.dpop import parse_private_jwk
from broker.failures import REMEMBERED, Failure, Outage, stored_failure
from broker.rfc6749 import is_access_token, is_granted_scope
from broker.sensitive import Sensitive
from broker.table_expressions import Conditions, binary, number, number_value, string
from broker.token_binding import BINDINGS, Dpop
from broker.token_sealer import CannotOpen, Sealed, SealUnavailable, TokenSealer
from broker.token_store import (
    EMPTY,
    FETCH,
    LEASE,
    OUTAGE,
    Attribute,
    Entry,
    Lease,
    Need,
    StoreUnavailable,
    Throttled,
    refusal_horizon,
)

PARTITION_KEY = Attribute.KEY
TOKEN_TYPES = frozenset(binding.token_type for binding in BINDINGS.values())  # what a broker stores
TOKEN_ATTRIBUTES = (
    Attribute.ACCESS_TOKEN,
    Attribute.DPOP_KEY,
    Attribute.SEALED_TOKEN,
    Attribute.DATA_KEY,
    Attribute.EXPIRES_AT,
    Attribute.FETCHED_AT,
)
# DynamoDB's reserved words among the attributes, as every expression names them.
NAMES = {"#ttl": Attribute.TTL.value, "#scope": Attribute.SCOPE.value}
# The version of the sealed token's associated data: tokens sealed otherwise are renewed.
SEAL_VERSION = 2
# After a failure the table is skipped for this long, so a dead table costs each request
# nothing instead of a connect timeout.
SKIP_AFTER_FAILURE_SECONDS = 5.0
# DynamoDB's answers when a key or table is busy: back-pressure, not an outage.
THROTTLING_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})


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
        self._refusals = refusal_horizon(refusal_seconds)  # no broker remembers a refusal for longer
        self._skip_until = 0.0

    def read(self, key: str) -> Entry:
        item = self._call("get_item", Key=_key(key), ConsistentRead=True).get("Item")
        if item is None:
            return EMPTY
        now = self._clock()
        failure, implausible_code = self._failure(item, now), None
        if failure is not None and not failure.well_formed():
            observability.unreadable_cache_item("a remembered failure's code is not one a broker writes")
            implausible_code, failure = failure.code, None
        owner, lease_until = string(item, Attribute.LEASE_OWNER), number(item, LEASE.attribute)
        lease = None
        if owner and lease_until is not None and LEASE.in_force(lease_until, now):
            lease = Lease(owner, lease_until)
        try:
            return Entry(self._token(key, item, now), failure, lease, None, implausible_code)
        except CannotOpen as reason:
            observability.unreadable_cache_item(str(reason))
            fetched_at = number(item, FETCH.attribute)
            plausible = fetched_at is not None and FETCH.plausible(fetched_at, now)
            return Entry(None, failure, lease, fetched_at if plausible else None, implausible_code)

    def acquire_lease(self, key: str, lease: Lease, need: Need) -> bool:
        """One conditional write takes the lease if it is free, no failure is in force, and the
        token is still in `need`: no request takes the lease just after another has stored a
        fresh token or a failure."""
        condition = Conditions(self._clock())
        stale = [f"NOT {condition.plausible_token()}"]
        stale += [condition.number_below(attribute, bound) for attribute, bound in need.stale_below()]
        no_failure = f"NOT {condition.failure_in_force(self._refusals)}"
        if need.ignore_failure_code is not None:
            ignored = condition.value({"S": need.ignore_failure_code})
            no_failure = f"({no_failure} OR {Attribute.FAILURE_CODE} = {ignored})"
        try:
            self._call(
                "update_item",
                Key=_key(key),
                UpdateExpression=(
                    f"SET {Attribute.LEASE_OWNER} = :owner, {Attribute.LEASE_UNTIL} = :until, "
                    "#ttl = if_not_exists(#ttl, :item_ttl)"
                ),
                ConditionExpression=f"NOT {condition.in_force(LEASE)} AND {no_failure} AND ({' OR '.join(stale)})",
                ExpressionAttributeNames={"#ttl": Attribute.TTL.value},
                ExpressionAttributeValues={
                    **condition.values,
                    ":owner": {"S": lease.owner},
                    ":until": number_value(lease.until),
                    ":item_ttl": number_value(expiry_item_ttl(int(lease.until))),
                },
            )
        except _ConditionFailed:
            return False
        return True

    def store_token(self, key: str, token: CachedToken, lease: Lease | None) -> None:
        """Writes a fresh token and lets go of `lease`; an older token never wins.

        With a sealer the item holds the token (and a DPoP token's key, with it) only sealed;
        without one, only in plaintext."""
        if self._sealer is None:
            token_values: dict[str, Any] = {":access_token": {"S": token.access_token.reveal()}}
            set_token, remove_token = (
                f"{Attribute.ACCESS_TOKEN} = :access_token",
                f"{Attribute.SEALED_TOKEN}, {Attribute.DATA_KEY}",
            )
            if token.dpop_key is not None:
                token_values[":dpop_key"] = {"S": token.dpop_key.reveal()}
                set_token += f", {Attribute.DPOP_KEY} = :dpop_key"
            else:
                remove_token += f", {Attribute.DPOP_KEY}"
        else:
            try:
                sealed = self._sealer.seal(_associated_data(key, token), _sealed_payload(token))
            except SealUnavailable as failure:
                raise self._unavailable("seal", str(failure)) from None
            token_values = {":sealed_token": {"B": sealed.sealed_token}, ":data_key": {"B": sealed.data_key}}
            set_token = f"{Attribute.SEALED_TOKEN} = :sealed_token, {Attribute.DATA_KEY} = :data_key"
            remove_token = f"{Attribute.ACCESS_TOKEN}, {Attribute.DPOP_KEY}"
        condition = Conditions(self._clock())
        # newer than the item's token, or the item's token is impossible; or this request holds
        # the lease it took to replace the item, so nobody else has stored a token since
        newer = f"(NOT {condition.plausible(FETCH)} OR {condition.number_below(FETCH.attribute, token.fetched_at)})"
        if lease is not None:
            newer = f"{Attribute.LEASE_OWNER} = {condition.value({'S': lease.owner})} OR {newer}"
        try:
            self._call(
                "update_item",
                Key=_key(key),
                UpdateExpression=(
                    f"SET {set_token}, {Attribute.TOKEN_TYPE} = :token_type, #scope = :scope, "
                    f"{Attribute.EXPIRES_AT} = :expires_at, {Attribute.FETCHED_AT} = :fetched_at, #ttl = :item_ttl "
                    f"REMOVE {remove_token}, {Attribute.FAILED_UNTIL}, "
                    f"{Attribute.FAILURE_ERROR}, {Attribute.FAILURE_CODE}"
                    + (f", {Attribute.LEASE_OWNER}, {Attribute.LEASE_UNTIL}" if lease is not None else "")
                ),
                ConditionExpression=newer,
                ExpressionAttributeNames=NAMES,
                ExpressionAttributeValues={
                    **token_values,
                    **condition.values,
                    ":token_type": {"S": token.token_type},
                    ":scope": {"S": token.scope},
                    ":expires_at": number_value(token.expires_at),
                    ":fetched_at": number_value(token.fetched_at),
                    ":item_ttl": number_value(expiry_item_ttl(token.expires_at)),
                },
            )
        except _ConditionFailed:
            observability.logger.info("a newer token is already cached; this one is not stored")

    def store_failure(self, key: str, failure: Failure, lease: Lease) -> None:
        """Remembers a failed renewal for the fleet and lets go of `lease`."""
        self._call(
            "update_item",
            Key=_key(key),
            UpdateExpression=(
                f"SET {Attribute.FAILED_UNTIL} = :until, {Attribute.FAILURE_ERROR} = :error, "
                f"{Attribute.FAILURE_CODE} = :code, "
                f"#ttl = if_not_exists(#ttl, :item_ttl) REMOVE {Attribute.LEASE_OWNER}, {Attribute.LEASE_UNTIL}"
            ),
            ConditionExpression=f"{Attribute.LEASE_OWNER} = :owner",
            ExpressionAttributeNames={"#ttl": Attribute.TTL.value},
            ExpressionAttributeValues={
                ":until": number_value(failure.until),
                ":error": {"S": failure.error},
                ":code": {"S": failure.code},
                ":owner": {"S": lease.owner},
                ":item_ttl": number_value(expiry_item_ttl(failure.until)),
            },
            tolerate_condition=True,
        )

    def release_lease(self, key: str, lease: Lease) -> None:
        """Frees the lease early so that another request can try at once; best effort."""
        with contextlib.suppress(StoreUnavailable, Throttled):  # the lease lapses by itself
            self._call(
                "update_item",
                Key=_key(key),
                UpdateExpression=f"REMOVE {Attribute.LEASE_OWNER}, {Attribute.LEASE_UNTIL}",
                ConditionExpression=f"{Attribute.LEASE_OWNER} = :owner",
                ExpressionAttributeValues={":owner": {"S": lease.owner}},
                tolerate_condition=True,
            )

    def _call(self, operation: str, *, tolerate_condition: bool = False, **parameters: Any) -> dict[str, Any]:
        if self._clock() < self._skip_until:
            raise StoreUnavailable("skipped after a recent failure")
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

    def _unavailable(self, operation: str, failure: str) -> StoreUnavailable:
        """Skips the table for a while after a failure, says so, and gives the error to raise."""
        self._skip_until = self._clock() + SKIP_AFTER_FAILURE_SECONDS
        observability.degraded(operation, failure)
        return StoreUnavailable(failure)

    def _token(self, key: str, item: dict[str, Any], now: float) -> CachedToken | None:
        """The item's token, validated and opened; None when the item holds none.

        Raises `CannotOpen` for a token that must not be served: a field missing, mistyped or
        impossible (fetched in the future, expiring before it was fetched), a sealed token that
        does not open with the item's own fields, or a token in the other form than this
        container writes (plaintext while sealing is on, sealed while it is off)."""
        if not any(name in item for name in TOKEN_ATTRIBUTES):
            return None
        expires_at, fetched_at = number(item, Attribute.EXPIRES_AT), number(item, FETCH.attribute)
        token_type, scope = string(item, Attribute.TOKEN_TYPE), string(item, Attribute.SCOPE)
        if expires_at is None or fetched_at is None or token_type not in TOKEN_TYPES or not is_granted_scope(scope):
            raise CannotOpen("the cached token's fields are missing, mistyped or not what a broker writes")
        if not FETCH.plausible(fetched_at, now) or expires_at <= fetched_at or not expires_at.is_integer():
            raise CannotOpen("the cached token's times are impossible")
        token = CachedToken(Sensitive(""), token_type, scope, int(expires_at), fetched_at)
        access_token, dpop_key = self._open(key, item, token)
        if not is_access_token(access_token):
            raise CannotOpen("the cached token is not RFC 6749 text")
        if (dpop_key is not None) != (token_type == Dpop.token_type):
            raise CannotOpen("a DPoP token without its key, or a Bearer token with one")
        key_value = None
        if dpop_key is not None and (key_value := parse_private_jwk(dpop_key)) is None:
            raise CannotOpen("the cached DPoP key is not one a broker makes")
        return dataclasses.replace(token, access_token=Sensitive(access_token), dpop_key=key_value)

    def _open(self, key: str, item: dict[str, Any], token: CachedToken) -> tuple[str, str | None]:
        """The token and its DPoP key (None for a Bearer token), as the item holds them."""
        if self._sealer is None:
            value = string(item, Attribute.ACCESS_TOKEN)
            if not value:
                raise CannotOpen("the cached token is not in plaintext and no KMS key is configured")
            return value, string(item, Attribute.DPOP_KEY)
        sealed_token, data_key = binary(item, Attribute.SEALED_TOKEN), binary(item, Attribute.DATA_KEY)
        if sealed_token is None or data_key is None or Attribute.ACCESS_TOKEN in item or Attribute.DPOP_KEY in item:
            raise CannotOpen("the cached token is not sealed (alone) while sealing is on")
        try:
            payload = self._sealer.open(_associated_data(key, token), Sealed(sealed_token, data_key))
        except SealUnavailable as failure:
            raise self._unavailable("open", str(failure)) from None
        return _opened_payload(payload, token.token_type)

    def _failure(self, item: dict[str, Any], now: float) -> Failure | None:
        """The remembered failure, if it is in force as a broker could have written it."""
        until, error = number(item, OUTAGE.attribute), string(item, Attribute.FAILURE_ERROR)
        code = string(item, Attribute.FAILURE_CODE)
        if until is None or error not in REMEMBERED or code is None:
            return None
        horizon = OUTAGE if error == Outage.error else self._refusals
        if until > now + horizon.ahead:
            observability.unreadable_cache_item("a failure is remembered for longer than any broker would")
            return None
        return stored_failure(error, code, int(until)) if horizon.in_force(until, now) else None


class _ConditionFailed(Exception):
    """A conditional write found the item in another state than it required."""


def _associated_data(key: str, token: CachedToken) -> bytes:
    """What a sealed token is bound to: its key, its times (the fetch time to the millisecond,
    as the item stores it), its type and scope, and the version of this layout."""
    fields = [SEAL_VERSION, key, token.expires_at, f"{token.fetched_at:.3f}", token.token_type, token.scope]
    return json.dumps(fields, separators=(",", ":")).encode()


def _sealed_payload(token: CachedToken) -> str:
    """What is sealed: a Bearer token alone (as items sealed before DPoP hold it), or a DPoP token
    with its key, in one envelope, so that no table writer can pair a token with another key."""
    if token.dpop_key is None:
        return token.access_token.reveal()
    return json.dumps({"access_token": token.access_token.reveal(), "dpop_key": token.dpop_key.reveal()})


def _opened_payload(payload: str, token_type: str) -> tuple[str, str | None]:
    """The token and key a sealed payload holds, read as the (authenticated) token type says."""
    if token_type != Dpop.token_type:
        return payload, None
    try:
        document = json.loads(payload)
    except ValueError:
        raise CannotOpen("the sealed DPoP token is not what a broker seals") from None
    token, key = (document.get("access_token"), document.get("dpop_key")) if isinstance(document, dict) else (0, 0)
    if not isinstance(token, str) or not isinstance(key, str):
        raise CannotOpen("the sealed DPoP token is not what a broker seals")
    return token, key


def _key(key: str) -> dict[str, Any]:
    return {PARTITION_KEY: {"S": key}}
