"""`requests`: `session.auth = TokenAuth(client, "okta-default")`.

Adds the broker's token to every request, with a fresh proof for a DPoP token. On a 401 from
the origin the token was sent to, it sends the request once more, to that origin: with a proof
carrying the server's nonce when the 401 asks for one (`use_dpop_nonce`), else with a different
token if the broker has one (the refused one, and only it, is invalidated). A failure to get a
token is a `TokenBrokerError` that is also a `requests.RequestException`. Needs `pip install
token-client[requests]`.
"""

from __future__ import annotations

from typing import Any

import requests

from token_client.adapter import ForProfile
from token_client.client import same_origin
from token_client.errors import raised_as
from token_client.tokens import Token

_RETRIED = "_token_client_retried"


class TokenAuth(ForProfile, requests.auth.AuthBase):
    """`TokenAuth(client, profile, scopes=None, min_ttl=None)`."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        sent_to = str(request.url)
        with raised_as(requests.RequestException, request=request):
            token, headers = self.sent(str(request.method), sent_to)
        request.headers.update(headers)
        request.register_hook(
            "response", lambda response, **kwargs: self._on_response(response, token, sent_to, **kwargs)
        )
        return request

    def _on_response(self, response: requests.Response, token: Token, sent_to: str, **kwargs: Any) -> requests.Response:
        # requests copies this hook onto the requests of redirects, without the token when the
        # origin changes: a 401 from another origin is not a refusal of this token
        request = response.request
        if getattr(request, _RETRIED, False) or not same_origin(str(request.url), sent_to):
            return response
        with raised_as(requests.RequestException, request=request, response=response):
            headers = self.retry(token, str(request.method), sent_to, response.status_code, response.headers)
        if headers is None:
            return response
        retry = request.copy()
        retry.headers.update(headers)
        setattr(retry, _RETRIED, True)
        response.content  # noqa: B018  # read the refused answer so its connection can be reused
        response.close()
        again: requests.Response = response.connection.send(retry, **kwargs)
        again.history.append(response)
        again.request = retry
        return again
