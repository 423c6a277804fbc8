"""`requests`: `session.auth = TokenAuth(client, "okta-default")`.

Adds the broker's token to every request; on a 401 it invalidates that token (only that one)
and sends the request once more with a new token. Needs `pip install token-client[requests]`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import requests

from token_client.client import Token, TokenClient

_RETRIED = "_token_client_retried"


class TokenAuth(requests.auth.AuthBase):
    def __init__(
        self, client: TokenClient, profile: str, scopes: Iterable[str] | None = None, min_ttl: int | None = None
    ) -> None:
        self._client = client
        self._profile = profile
        self._scopes = list(scopes) if scopes is not None else None
        self._min_ttl = min_ttl

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self._token()
        request.headers["Authorization"] = token.authorization
        request.register_hook("response", lambda response, **kwargs: self._on_response(response, token, **kwargs))
        return request

    def _token(self) -> Token:
        return self._client.token(self._profile, self._scopes, self._min_ttl)

    def _on_response(self, response: requests.Response, token: Token, **kwargs: Any) -> requests.Response:
        if response.status_code != 401 or getattr(response.request, _RETRIED, False):
            return response
        self._client.invalidate(self._profile, self._scopes, token=token)
        retry = response.request.copy()
        retry.headers["Authorization"] = self._token().authorization
        setattr(retry, _RETRIED, True)
        response.content  # noqa: B018  # read the refused answer so its connection can be reused
        response.close()
        again: requests.Response = response.connection.send(retry, **kwargs)
        again.history.append(response)
        again.request = retry
        return again
