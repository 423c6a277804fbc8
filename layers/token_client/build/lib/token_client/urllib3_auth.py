"""`urllib3`: `request(client, "okta-default", "GET", url)` instead of `urllib3.request(...)`.

Sends the request with the broker's token; on a 401 it invalidates that token (only that one)
and sends it once more with a new token. urllib3 comes with botocore: nothing to install.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import urllib3

from token_client.client import TokenClient

POOL = urllib3.PoolManager()


def request(
    client: TokenClient,
    profile: str,
    method: str,
    url: str,
    *,
    scopes: Iterable[str] | None = None,
    min_ttl: int | None = None,
    pool: urllib3.PoolManager | None = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> urllib3.BaseHTTPResponse:
    """`pool.request(method, url, ...)` (default: this module's pool) with the token."""
    sender = pool or POOL
    scope_list = list(scopes) if scopes is not None else None
    token = client.token(profile, scope_list, min_ttl)
    response = sender.request(method, url, headers={**(headers or {}), "Authorization": token.authorization}, **kwargs)
    if response.status != 401:
        return response
    client.invalidate(profile, scope_list, token=token)
    token = client.token(profile, scope_list, min_ttl)
    return sender.request(method, url, headers={**(headers or {}), "Authorization": token.authorization}, **kwargs)
