"""Who is calling, on either door: the IAM identity STS verifies from the request's caller proof,
and nothing else. Verified identities are cached in memory, by a hash of the whole proof.

Whoever can invoke a function can write any event, so no field of an event establishes who
the caller is. On the HTTP door, API Gateway's IAM authorizer names the principal that signed
the HTTP request; when it does, that principal must be the proof's, or the request is refused.

With `CALLER_AUTH=audit` a caller that cannot be verified is let through, carrying the refusal
that `enforce` would have given, so that admission can log it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from broker.caller_proof import Audience, parse_audience, parse_caller_proof
from broker.callers import same_principal
from broker.errors import AccessDenied, AuthenticationUnavailable, BrokerError, InternalError
from broker.sts import BUDGET_SECONDS, Sts

IDENTITIES_MAX = 4_096


class Door(StrEnum):
    """How a request reached the broker."""

    DIRECT = "direct"
    HTTP = "http"


@dataclass(frozen=True, slots=True)
class Caller:
    door: Door
    arn: str | None  # verified; None only when CALLER_AUTH=audit let an unverified caller through
    refusal: BrokerError | None = None  # audit: what enforce would have answered


class CallerIdentity:
    def __init__(
        self,
        sts: Sts,
        region: str,
        enforce: bool,
        audience: Audience | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`audience` is `BROKER_AUDIENCE`; None: the function's own, as it is invoked."""
        self._sts = sts
        self._region = region
        self._enforce = enforce
        self._audience = audience
        self._clock = clock
        self._identities: dict[str, tuple[str, int]] = {}  # proof digest -> (ARN, accepted until)

    def verify(
        self, door: Door, raw_proof: object, function_arn: str, deadline: float, gateway_caller: object = None
    ) -> Caller:
        """The caller whose `caller_proof` STS accepts for this broker's audience; `function_arn`
        is the ARN Lambda says this function was invoked as. `gateway_caller` is the principal
        API Gateway names on the HTTP door, if the event names one."""
        try:
            arn = self._verified(raw_proof, self._audience or invoked_audience(function_arn), deadline)
            if gateway_caller is not None and not same_principal(gateway_caller, arn):
                raise AccessDenied("the request's IAM signature and its caller_proof are not the same principal's")
            return Caller(door, arn)
        except (AccessDenied, AuthenticationUnavailable) as refusal:
            if self._enforce:
                raise
            return Caller(door, None, refusal)

    def _verified(self, raw_proof: object, audience: Audience, deadline: float) -> str:
        now = self._clock()
        digest = _digest(raw_proof)
        known = self._identities.get(digest) if digest else None
        if known is not None and now <= known[1]:
            # this very proof passed every check and STS before, and is still within its window
            return known[0]
        proof = parse_caller_proof(raw_proof, self._region, now)
        arn = self._sts.caller_arn(proof, audience, min(deadline, now + BUDGET_SECONDS))
        if len(self._identities) >= IDENTITIES_MAX:
            self._forget_expired(now)
        if digest:
            self._identities[digest] = (arn, proof.accepted_until)
        return arn

    def _forget_expired(self, now: float) -> None:
        self._identities = {digest: known for digest, known in self._identities.items() if known[1] >= now}
        while len(self._identities) >= IDENTITIES_MAX:
            del self._identities[next(iter(self._identities))]


def _digest(raw_proof: object) -> str | None:
    """A hash of the whole proof as the caller sent it (a parsed JSON value); None for anything
    that cannot be a proof, which parsing then refuses."""
    if not isinstance(raw_proof, dict):
        return None
    try:
        canonical = json.dumps(raw_proof, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return None
    return hashlib.sha256(canonical.encode()).hexdigest()


def invoked_audience(function_arn: str) -> Audience:
    """The audience of a function that `BROKER_AUDIENCE` does not name: its own unqualified ARN,
    from the (possibly qualified) ARN it was invoked as."""
    try:
        return parse_audience(function_arn, qualified=True)
    except ValueError:
        raise InternalError("the broker cannot tell its own function ARN") from None
