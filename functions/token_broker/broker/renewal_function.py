"""Lambda: a renewal ahead of expiry handed to the renewal function, asynchronously, and the event
that carries it: the one home of that wire format, for the function that sends it and the one
that receives it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from broker import observability
from broker.errors import InvalidRequest
from broker.token_request import PROFILE_PATTERN, parse_scopes

EVENT_VERSION = 1
_LEASE_OWNER = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class Renewal:
    """One key to renew: a profile, the scope set its key was made with, and the lease held for it."""

    profile: str
    scopes: frozenset[str]
    lease_owner: str


def renewal_event(renewal: Renewal) -> dict[str, Any]:
    return {
        "renewal": {
            "v": EVENT_VERSION,
            "profile": renewal.profile,
            "scopes": sorted(renewal.scopes),
            "lease": renewal.lease_owner,
        }
    }


def parse_renewal_event(event: object) -> Renewal:
    """Raises `InvalidRequest` for anything but a renewal event as `renewal_event` makes them."""
    body = event.get("renewal") if isinstance(event, dict) and set(event) == {"renewal"} else None
    if not isinstance(body, dict) or set(body) != {"v", "profile", "scopes", "lease"}:
        raise InvalidRequest("not a renewal event")
    if type(body["v"]) is not int or body["v"] != EVENT_VERSION:
        raise InvalidRequest(f"the renewal event's v must be {EVENT_VERSION}")
    profile, lease = body["profile"], body["lease"]
    if not isinstance(profile, str) or not PROFILE_PATTERN.fullmatch(profile):
        raise InvalidRequest("the renewal event's profile is not a profile name")
    if not isinstance(lease, str) or not _LEASE_OWNER.fullmatch(lease):
        raise InvalidRequest("the renewal event's lease is not a lease")
    return Renewal(profile, parse_scopes(body["scopes"], "scopes"), lease)


class RenewalFunction:
    """Invokes the renewal function (`RENEWAL_FUNCTION`) with `InvocationType: Event`: Lambda
    queues the event and answers at once, so the request that hands a renewal over never waits."""

    def __init__(self, client: Any, function_arn: str) -> None:
        self._client = client
        self._function = function_arn

    def hand_off(self, renewal: Renewal) -> bool:
        """Whether Lambda took the event; a refusal is logged, never raised: the caller is served
        from the cache whatever happens here."""
        try:
            self._client.invoke(
                FunctionName=self._function,
                InvocationType="Event",
                Payload=json.dumps(renewal_event(renewal)).encode(),
            )
        except (ClientError, BotoCoreError) as error:
            code = error.response.get("Error", {}).get("Code", "ClientError") if isinstance(error, ClientError) else ""
            observability.logger.warning(
                "the renewal could not be handed to the renewal function",
                extra={"profile": renewal.profile, "failure": code or type(error).__name__},
            )
            return False
        return True
