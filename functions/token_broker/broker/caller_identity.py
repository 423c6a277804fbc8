"""Who is calling, on either door: the IAM identity STS verifies from the request's caller proof,
and nothing else. Verified identities are remembered in memory for the proof's window, each
with the whole proof it was verified from: only that very proof is answered from memory.

Whoever can invoke a function can write any event, so no field of an event establishes who
the caller is. On the HTTP door, API Gateway's IAM authorizer names the principal that signed
the HTTP request; when it does, that principal must be the proof's, or the request is refused.

With `CALLER_AUTH=audit` a caller that cannot be verified is let through, carrying the refusal
that `enforce` would have given, so that admission can log it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from broker.bounded import BoundedMap
from broker.caller_proof import Audience, parse_audience, parse_caller_proof
from broker.callers import Principal, same_principal
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
    principal: Principal | None  # verified; None only when CALLER_AUTH=audit let an unverified caller through
    refusal: BrokerError | None = None  # audit: what enforce would have answered

    @property
    def arn(self) -> str | None:
        return self.principal.arn if self.principal is not None else None


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
        # signature -> (the proof, as the caller sent it; its signer; accepted until)
        self._identities: BoundedMap[str, tuple[dict[str, object], Principal, int]] = BoundedMap(IDENTITIES_MAX)
        self._invoked: tuple[str, Audience] | None = None  # the last function ARN, and its audience

    def verify(
        self, door: Door, raw_proof: object, function_arn: str, deadline: float, gateway_caller: object = None
    ) -> Caller:
        """The caller whose `caller_proof` STS accepts for this broker's audience; `function_arn`
        is the ARN Lambda says this function was invoked as. `gateway_caller` is the principal
        API Gateway names on the HTTP door, if the event names one."""
        try:
            principal = self._verified(raw_proof, self._audience or self._invoked_audience(function_arn), deadline)
            if gateway_caller is not None and not same_principal(gateway_caller, principal):
                raise AccessDenied("the request's IAM signature and its caller_proof are not the same principal's")
            return Caller(door, principal)
        except (AccessDenied, AuthenticationUnavailable) as refusal:
            if self._enforce:
                raise
            return Caller(door, None, refusal)

    def _verified(self, raw_proof: object, audience: Audience, deadline: float) -> Principal:
        now = self._clock()
        fields = raw_proof if isinstance(raw_proof, dict) else {}
        signature = fields.get("signature")
        known = self._identities.get(signature) if isinstance(signature, str) else None
        if known is not None and known[0] == fields and now <= known[2]:
            # this very proof passed every check and STS before, and is still within its window
            return known[1]
        proof = parse_caller_proof(raw_proof, self._region, now)  # refuses anything but a dict
        principal = self._sts.caller(proof, audience, min(deadline, now + BUDGET_SECONDS))
        # Kept as sent, to be compared whole: its session token is no more exposed in this
        # process's memory than the tokens the memory tier keeps. The oldest is forgotten first:
        # its window ends first.
        self._identities.put(proof.signature.reveal(), (dict(fields), principal, proof.accepted_until))
        return principal

    def _invoked_audience(self, function_arn: str) -> Audience:
        if self._invoked is None or self._invoked[0] != function_arn:
            self._invoked = (function_arn, invoked_audience(function_arn))
        return self._invoked[1]


def invoked_audience(function_arn: str) -> Audience:
    """The audience of a function that `BROKER_AUDIENCE` does not name: its own unqualified ARN,
    from the (possibly qualified) ARN it was invoked as."""
    try:
        return parse_audience(function_arn, qualified=True)
    except ValueError:
        raise InternalError("the broker cannot tell its own function ARN") from None
