"""Lambda entry point: validate the request, get a token, answer with it or with an error."""

from __future__ import annotations

import time
from typing import Any

from broker import observability
from broker.config import Settings
from broker.decisions import CachedToken, expires_in
from broker.errors import BrokerError, InternalError
from broker.http_route import http_answer, is_http_event, parse_http_event
from broker.observability import logger, metrics
from broker.token_request import parse_request
from broker.wiring import build_service

# Time kept back from the Lambda's remaining time to answer after giving up on a token.
ANSWER_MARGIN_SECONDS = 0.5

SERVICE = build_service(Settings.from_env())


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """Serves direct invocations and the HTTP API's `POST /token` alike."""
    http = is_http_event(event)
    try:
        caller = None
        if http:
            event, caller = parse_http_event(event)
        request = parse_request(event)
        logger.append_keys(profile=request.profile)
        deadline = time.time() + context.get_remaining_time_in_millis() / 1000 - ANSWER_MARGIN_SECONDS
        answer, status = token_answer(SERVICE.get_token(request, deadline, caller)), 200
    except BrokerError as error:
        answer, status = error_answer(error), error.status
    except Exception:
        logger.exception("unexpected failure")
        failure = InternalError("the broker failed unexpectedly")
        answer, status = error_answer(failure), failure.status
    if http:
        answer.pop("status", None)
        return http_answer(status, answer)
    return answer


def token_answer(token: CachedToken) -> dict[str, Any]:
    return {
        "access_token": token.access_token.reveal(),
        "token_type": token.token_type,
        "expires_in": expires_in(token, time.time()),
        "expires_at": token.expires_at,
        "scope": token.scope,
    }


def error_answer(error: BrokerError) -> dict[str, Any]:
    observability.error_answered(error.error)
    logger.info("error answered", extra={"error": error.error, "status": error.status})
    return error.answer()
