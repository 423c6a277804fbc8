"""An example consumer: gets a token through the token_client layer and calls an API with it.

Copy this shape: one TokenClient per container (created at import, so tokens are reused across
invocations), auth_header() per request, and invalidate() then one retry when the API says 401.
"""

from __future__ import annotations

import os
from typing import Any

import urllib3

from token_client import TokenBrokerError, TokenClient

PROFILE = os.environ["TOKEN_PROFILE"]
SCOPES = os.environ.get("TOKEN_SCOPES", "").split() or None
TARGET_URL = os.environ["TARGET_URL"]

tokens = TokenClient()  # the broker is named by env TOKEN_BROKER_FUNCTION
http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=3, read=10), retries=False)


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    try:
        response = call_api()
        if response.status == 401:
            # the API refused the token (revoked, rotated keys): ask the broker for a fresh one, once
            tokens.invalidate(PROFILE, SCOPES)
            response = call_api()
    except TokenBrokerError as error:
        return {"ok": False, "error": error.error, "status": error.status, "retry_after": error.retry_after}
    return {"ok": 200 <= response.status < 300, "status": response.status}


def call_api() -> urllib3.BaseHTTPResponse:
    return http.request("GET", TARGET_URL, headers=tokens.auth_header(PROFILE, SCOPES))
