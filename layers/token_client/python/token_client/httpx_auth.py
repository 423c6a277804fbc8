"""`httpx`: `httpx.Client(auth=TokenAuth(client, "okta-default"))`, or `httpx.AsyncClient(...)`.

Adds the broker's token to every request; on a 401 it invalidates that token (only that one)
and sends the request once more with a new token. In an async client the broker is asked on a
worker thread, never on the event loop. Needs `pip install token-client[httpx]`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator

import anyio.to_thread
import httpx

from token_client.client import ForProfile


class TokenAuth(ForProfile, httpx.Auth):
    """`TokenAuth(client, profile, scopes=None, min_ttl=None)`."""

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        token = self._token()
        request.headers["Authorization"] = token.authorization
        response = yield request
        if response.status_code == 401:
            self._refused(token)
            request.headers["Authorization"] = self._token().authorization
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await anyio.to_thread.run_sync(self._token)
        request.headers["Authorization"] = token.authorization
        response = yield request
        if response.status_code == 401:
            self._refused(token)
            request.headers["Authorization"] = (await anyio.to_thread.run_sync(self._token)).authorization
            yield request
