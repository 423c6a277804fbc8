"""`urllib3`: `request(client, "okta-default", "GET", url)` instead of `urllib3.request(...)`.

Sends the request with the broker's token, and a fresh proof for a DPoP token. On a 401 from
the origin the token was sent to, it sends the request once more: with a proof carrying the
server's nonce when the 401 asks for one (`use_dpop_nonce`), else with a different token if the
broker has one (the refused one, and only it, is invalidated). A failure to get a token is a
`TokenBrokerError` that is also a `urllib3.exceptions.HTTPError`. urllib3 comes with botocore:
nothing to install.
"""

from __future__ import annotations

from typing import Any

import urllib3

from token_client.adapter import ForProfile
from token_client.client import Scopes, TokenClient, same_origin
from token_client.errors import raised_as

POOL = urllib3.PoolManager()


def request(  # urllib3's request(method, url, headers, **kwargs), and which client's token for what
    client: TokenClient,
    profile: str,
    method: str,
    url: str,
    *,
    scopes: Scopes | None = None,
    min_ttl: int | None = None,
    pool: urllib3.PoolManager | None = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> urllib3.BaseHTTPResponse:
    """`pool.request(method, url, ...)` (default: this module's pool) with the token. urllib3
    drops the token on a redirect to another host."""
    sender = pool or POOL
    tokens = ForProfile(client, profile, scopes, min_ttl)
    with raised_as(urllib3.exceptions.HTTPError):
        token, sent = tokens.sent(method, url)
    response = sender.request(method, url, headers={**(headers or {}), **sent}, **kwargs)
    if not same_origin(_last_url(response, url), url):
        return response
    with raised_as(urllib3.exceptions.HTTPError):
        again = tokens.retry(token, method, url, response.status, response.headers)
    if again is None:
        return response
    return sender.request(method, url, headers={**(headers or {}), **again}, **kwargs)


def _last_url(response: urllib3.BaseHTTPResponse, url: str) -> str:
    """The URL that answered: the last redirect's target, if urllib3 followed any."""
    history = response.retries.history if response.retries is not None else ()
    return history[-1].redirect_location or url if history else url
