"""Who is calling: a direct caller proven by STS (identities cached in memory, by a hash of the
whole proof), or an HTTP caller as API Gateway's IAM authorizer verified it.

With `CALLER_AUTH=audit` a caller that cannot be verified is let through, carrying the refusal
that `enforce` would have given, so that admission can log it.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from broker.caller_proof import parse_caller_proof
from broker.callers import PARTITION
from broker.errors import AccessDenied, AuthenticationUnavailable, BrokerError, InternalError
from broker.sts import BUDGET_SECONDS, Sts

DIRECT = "direct"
HTTP = "http"
IDENTITIES_MAX = 4_096
_FUNCTION_ARN = re.compile(
    rf"(?P<unqualified>arn:(?P<partition>{PARTITION}):lambda:[a-z0-9-]+:\d{{12}}:function:[\w-]{{1,64}})"
    r"(?::[\w$-]{1,128})?"
)


@dataclass(frozen=True, slots=True)
class Caller:
    path: str  # DIRECT or HTTP
    arn: str | None  # verified; None only when CALLER_AUTH=audit let an unverified caller through
    refusal: BrokerError | None = None  # audit: what enforce would have answered


class CallerIdentity:
    def __init__(self, sts: Sts, region: str, enforce: bool, clock: Callable[[], float] = time.time) -> None:
        self._sts = sts
        self._region = region
        self._enforce = enforce
        self._clock = clock
        self._identities: dict[str, tuple[str, int]] = {}  # proof digest -> (ARN, accepted until)

    def direct(self, raw_proof: object, function_arn: str, deadline: float) -> Caller:
        """A direct caller, from its `caller_proof`; `function_arn` is the ARN it invoked."""
        try:
            return Caller(DIRECT, self._verified(raw_proof, function_arn, deadline))
        except (AccessDenied, AuthenticationUnavailable) as refusal:
            if self._enforce:
                raise
            return Caller(DIRECT, None, refusal)

    def _verified(self, raw_proof: object, function_arn: str, deadline: float) -> str:
        now = self._clock()
        digest = _digest(raw_proof)
        known = self._identities.get(digest) if digest else None
        if known is not None and now <= known[1]:
            # this very proof passed every check and STS before, and is still within its window
            return known[0]
        proof = parse_caller_proof(raw_proof, self._region, now)
        audience, partition = audience_of(function_arn)
        arn = self._sts.caller_arn(proof, audience, partition, min(deadline, now + BUDGET_SECONDS))
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


def http_caller(user_arn: str | None) -> Caller:
    """An HTTP caller: API Gateway's IAM authorizer verified its signature. An event without
    an identity means the route lost its authorizer: refused, in audit mode too."""
    if user_arn is None:
        raise AccessDenied("the request carries no IAM caller identity")
    return Caller(HTTP, user_arn)


def audience_of(function_arn: str) -> tuple[str, str]:
    """The broker's unqualified function ARN (the audience its proofs name) and its partition."""
    match = _FUNCTION_ARN.fullmatch(function_arn)
    if match is None:
        raise InternalError("the broker cannot tell its own function ARN")
    return match["unqualified"], match["partition"]
