"""Lambda entry points: validate the request, verify the caller, get a token, answer.

`lambda_handler` serves direct invocations: every event is a token request with a caller proof.
`http_handler` serves the HTTP API's `POST /token` (its own function, invoked only by API
Gateway): every event is an HTTP API 2.0 event whose body is a token request with a caller
proof. On both doors the caller is who STS says the proof's signer is, and nobody else.
`renewal_handler` (its own function, invoked asynchronously by the other two) renews the key
whose lease its event names, and answers nothing to anyone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from broker import observability
from broker.caller_identity import Caller, Door
from broker.config import Settings
from broker.decisions import CachedToken, expires_in
from broker.errors import BrokerError, InternalError, ProfileMisconfigured
from broker.http_route import http_answer, parse_http_event
from broker.observability import invocation, logger
from broker.renewal_function import parse_renewal_event
from broker.token_request import TokenRequest, parse_request
from broker.wiring import build_caller_identity, build_service

# Time kept back from the Lambda's remaining time to answer after giving up on a token.
ANSWER_MARGIN_SECONDS = 0.5

SETTINGS = Settings.from_env()
SERVICE = build_service(SETTINGS)
IDENTITY = build_caller_identity(SETTINGS)

# A door parses its event into the request and the principal the event claims API Gateway
# verified (None on the direct door); it raises the contract's errors.
Parse = Callable[[], tuple[TokenRequest, object]]


@invocation
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    observability.correlate_direct_call(getattr(context, "client_context", None))
    answer, _ = serve(Door.DIRECT, context, lambda: (parse_request(event), None))
    return answer


@invocation
def http_handler(event: Any, context: Any) -> dict[str, Any]:
    observability.correlate_gateway_request(event)

    def parse() -> tuple[TokenRequest, object]:
        body, gateway_caller = parse_http_event(event)
        return parse_request(body), gateway_caller

    answer, status = serve(Door.HTTP, context, parse)
    answer.pop("status", None)
    return http_answer(status, answer)


@invocation
def renewal_handler(event: Any, context: Any) -> None:
    deadline = time.time() + context.get_remaining_time_in_millis() / 1000 - ANSWER_MARGIN_SECONDS
    try:
        SERVICE.renew(parse_renewal_event(event), deadline)
    except BrokerError as error:  # the fleet has been told what it needs (the failure, the lease)
        detail = {"problem": error.detail} if isinstance(error, ProfileMisconfigured) else {}
        logger.warning("renewal ended without a token", extra={"error": error.error, **detail})
    except Exception:
        logger.exception("unexpected failure")


def serve(door: Door, context: Any, parse: Parse) -> tuple[dict[str, Any], int]:
    """The one flow of both doors (request, then caller, then token), ending in one audit line."""
    deadline = time.time() + context.get_remaining_time_in_millis() / 1000 - ANSWER_MARGIN_SECONDS
    request: TokenRequest | None = None
    caller: Caller | None = None
    source: str | None = None
    try:
        request, gateway_caller = parse()
        observability.about_profile(request.profile)
        caller = IDENTITY.verify(door, request.caller_proof, context.invoked_function_arn, deadline, gateway_caller)
        served = SERVICE.get_token(request, caller, deadline)
        source = served.source
        answer, status = token_answer(served.token), 200
    except BrokerError as error:
        answer, status = error.answer(), error.status
        observability.error_answered(error)
    except Exception:
        logger.exception("unexpected failure")
        failure = InternalError("the broker failed unexpectedly")
        answer, status = failure.answer(), failure.status
        observability.error_answered(failure)
    observability.audit(
        path=door,
        caller=caller.arn if caller else None,
        source=source,
        outcome=answer.get("error", "token"),
        status=status,
    )
    return answer, status


def token_answer(token: CachedToken) -> dict[str, Any]:
    answer = {
        "access_token": token.access_token.reveal(),
        "token_type": token.token_type,
        "expires_in": expires_in(token, time.time()),
        "expires_at": token.expires_at,
        "scope": token.scope,
    }
    if token.dpop_key is not None:  # a DPoP token goes nowhere without the key it is bound to
        answer["dpop_key"] = json.loads(token.dpop_key.reveal())
    return answer
