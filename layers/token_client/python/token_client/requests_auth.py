"""`requests`: `session.auth = TokenAuth(client, "okta-default")`.

Adds the broker's token to every request; on a 401 it invalidates that token (only that one)
and sends the request once more with a new token. Needs `pip install token-client[requests]`.
"""

from __future__ import annotations

from typing import Any

import requests

from token_client.client import ForProfile, Token

_RETRIED = "_token_client_retried"


class TokenAuth(ForProfile, requests.auth.AuthBase):
    """`TokenAuth(client, profile, scopes=None, min_ttl=None)`."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self._token()
        request.headers["Authorization"] = token.authorization
        request.register_hook("response", lambda response, **kwargs: self._on_response(response, token, **kwargs))
        return request

    def _on_response(self, response: requests.Response, token: Token, **kwargs: Any) -> requests.Response:
        if response.status_code != 401 or getattr(response.request, _RETRIED, False):
            return response
        self._refused(token)
        retry = response.request.copy()
        retry.headers["Authorization"] = self._token().authorization
        setattr(retry, _RETRIED, True)
        response.content  # noqa: B018  # read the refused answer so its connection can be reused
        response.close()
        again: requests.Response = response.connection.send(retry, **kwargs)
        again.history.append(response)
        again.request = retry
        return again
