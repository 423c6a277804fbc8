"""`httpx`: `httpx.Client(auth=TokenAuth(client, "okta-default"))`, or `httpx.AsyncClient(...)`.

Adds the broker's token to every request, with a fresh proof for a DPoP token. On a 401 from
the origin the token was sent to, it sends the request once more: with a proof carrying the
server's nonce when the 401 asks for one (`use_dpop_nonce`), else with a different token if the
broker has one (the refused one, and only it, is invalidated). In an async client the broker is
asked on a worker thread, never on the event loop. A failure to get a token is a
`TokenBrokerError` that is also an `httpx.RequestError`. Needs `pip install token-
client[httpx]`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator

import anyio.to_thread
import httpx

from token_client.adapter import ForProfile
from token_client.client import same_origin
from token_client.errors import raised_as


class TokenAuth(ForProfile, httpx.Auth):
    """`TokenAuth(client, profile, scopes=None, min_ttl=None)`."""

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        url = str(request.url)
        with raised_as(httpx.RequestError, request=request):
            token, headers = self.sent(request.method, url)
        request.headers.update(headers)
        response = yield request
        if _from_origin(response, request):
            with raised_as(httpx.RequestError, request=request):
                again = self.retry(token, request.method, url, response.status_code, response.headers)
            if again is not None:
                request.headers.update(again)
                yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        url = str(request.url)
        with raised_as(httpx.RequestError, request=request):
            token, headers = await anyio.to_thread.run_sync(self.sent, request.method, url)
        request.headers.update(headers)
        response = yield request
        if _from_origin(response, request):
            with raised_as(httpx.RequestError, request=request):
                status, answered = response.status_code, response.headers
                again = await anyio.to_thread.run_sync(self.retry, token, request.method, url, status, answered)
            if again is not None:
                request.headers.update(again)
                yield request


def _from_origin(response: httpx.Response, request: httpx.Request) -> bool:
    """An answer from the origin the token went to (after redirects, httpx hands the auth flow
    the last response, and strips the token on the way to another origin)."""
    return same_origin(str(response.url), str(request.url))
