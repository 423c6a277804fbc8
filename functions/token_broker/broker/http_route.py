"""The HTTP door: API Gateway HTTP API (payload 2.0) events in, HTTP answers out."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, TypeGuard

from broker.errors import InvalidRequest, MethodNotAllowed, RouteNotFound

ROUTE_PATH = "/token"
ROUTE_METHOD = "POST"
MAX_BODY_BYTES = 16 * 1024
# RFC 6749 §5.1: token answers must not be cached by anyone on the way.
NO_STORE = {"Content-Type": "application/json", "Cache-Control": "no-store", "Pragma": "no-cache"}


def is_http_event(event: object) -> TypeGuard[dict[str, Any]]:
    """An HTTP API 2.0 event: a version, a raw path and a request context with `http`."""
    if not isinstance(event, dict) or event.get("version") != "2.0":
        return False
    context = event.get("requestContext")
    return isinstance(context, dict) and isinstance(context.get("http"), dict) and "rawPath" in event


def parse_http_event(event: object) -> tuple[object, object]:
    """The request body as JSON, and the principal the event says API Gateway's IAM authorizer
    verified (None when it names none; anything else, unchecked: it proves nothing by itself, and
    `caller_identity` holds it to the caller proof). Raises for an event that is not an HTTP API
    2.0 request to the route."""
    if not is_http_event(event):
        raise InvalidRequest("this function serves only API Gateway HTTP API (payload 2.0) events")
    context = event["requestContext"]
    method = str(context["http"].get("method", "")).upper()
    if event.get("rawPath") != ROUTE_PATH and context["http"].get("path") != ROUTE_PATH:
        raise RouteNotFound("no such route; POST /token")
    if method != ROUTE_METHOD:
        raise MethodNotAllowed("POST /token is the only route")
    return _json_body(event), _gateway_caller(context)


def _gateway_caller(context: dict[str, Any]) -> object:
    authorizer = context.get("authorizer")
    iam = authorizer.get("iam") if isinstance(authorizer, dict) else None
    return iam.get("userArn") if isinstance(iam, dict) else None


def http_answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    headers = dict(NO_STORE)
    if body.get("retry_after") is not None:
        headers["Retry-After"] = str(body["retry_after"])
    return {"statusCode": status, "headers": headers, "body": json.dumps(body)}


def _json_body(event: dict[str, Any]) -> object:
    body = event.get("body")
    if body is None or body == "":
        raise InvalidRequest("the body must be a JSON object")
    if not isinstance(body, str) or len(body) > MAX_BODY_BYTES * 2:
        raise InvalidRequest(f"the body must be a JSON object of at most {MAX_BODY_BYTES} bytes")
    raw: bytes = body.encode()
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("the body is not valid base64") from None
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidRequest(f"the body must be a JSON object of at most {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidRequest("the body is not valid JSON") from None
