"""`httpx`: `httpx.Client(auth=TokenAuth(client, "okta-default"))`, or `httpx.AsyncClient(...)`.

Adds the broker's token to every request. On a 401 from the origin the token was sent to, it
invalidates that token (only that one) and sends the request once more if the broker has a
different token. In an async client the broker is asked on a worker thread, never on the event
loop. A failure to get a token is a `TokenBrokerError` that is also an `httpx.RequestError`.
Needs `pip install token-client[httpx]`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator

import anyio.to_thread
import httpx

from token_client.client import ForProfile, Token, same_origin
from token_client.errors import raised_as


class TokenAuth(ForProfile, httpx.Auth):
    """`TokenAuth(client, profile, scopes=None, min_ttl=None)`."""

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        with raised_as(httpx.RequestError, request=request):
            token = self.token()
        request.headers["Authorization"] = token.authorization
        response = yield request
        if _refused_by(response, request):
            with raised_as(httpx.RequestError, request=request):
                fresh = self.renewed(token)
            if fresh is not None:
                request.headers["Authorization"] = fresh.authorization
                yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        with raised_as(httpx.RequestError, request=request):
            token: Token = await anyio.to_thread.run_sync(self.token)
        request.headers["Authorization"] = token.authorization
        response = yield request
        if _refused_by(response, request):
            with raised_as(httpx.RequestError, request=request):
                fresh = await anyio.to_thread.run_sync(self.renewed, token)
            if fresh is not None:
                request.headers["Authorization"] = fresh.authorization
                yield request


def _refused_by(response: httpx.Response, request: httpx.Request) -> bool:
    """A 401 from the origin the token went to (after redirects, httpx hands the auth flow the
    last response, and strips the token on the way to another origin)."""
    return response.status_code == 401 and same_origin(str(response.url), str(request.url))
