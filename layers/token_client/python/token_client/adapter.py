"""What every HTTP adapter shares: one profile's tokens from a client, the headers a request
carries, and what an answer means for it (a DPoP nonce to retry with, a refused token to
renew). A token is only ever sent again to the origin it was first sent to."""

from __future__ import annotations

import re
from collections.abc import Mapping

from token_client.client import Scopes, TokenClient, scope_set
from token_client.dpop import NONCE_HEADER, USE_NONCE
from token_client.tokens import Token

_NONCE_CHALLENGE = re.compile(rf'\bDPoP\b(?:[^"]|"[^"]*")*?\berror="{USE_NONCE}"', re.IGNORECASE)


class ForProfile:
    """What an HTTP client's adapter holds: one profile's (and scope set's) tokens from a client,
    and how to report one refused."""

    def __init__(
        self, client: TokenClient, profile: str, scopes: Scopes | None = None, min_ttl: int | None = None
    ) -> None:
        self._client = client
        self._profile = profile
        self._scopes = scope_set(scopes)
        self._min_ttl = min_ttl

    def token(self) -> Token:
        return self._client.token(self._profile, self._scopes, self._min_ttl)

    def renewed(self, refused: Token) -> Token | None:
        """The API answered 401 to `refused`: evict it (only it), and the token to retry with;
        None when the broker has no other yet (within its FORCE_REFRESH_COOLDOWN_SECONDS of the
        last fetch, 30 s by default, it shares that fetch), since a retry would be refused too."""
        self._client.invalidate(self._profile, self._scopes, token=refused)
        fresh = self.token()
        return fresh if fresh.value != refused.value else None

    def sent(self, method: str, url: str) -> tuple[Token, dict[str, str]]:
        """The token for a request, and the headers that carry it (with a fresh DPoP proof)."""
        token = self.token()
        return token, self._client.request_headers(token, method, url)

    def retry(
        self, token: Token, method: str, url: str, status: int, headers: Mapping[str, str]
    ) -> dict[str, str] | None:
        """What an answer from the origin `token` was sent to means for the request: the headers
        to send it once more with, or None. Any `DPoP-Nonce` it carries is kept for the origin.
        A 401 asking for a DPoP nonce (`use_dpop_nonce`) is answered with the same token and a
        proof with that nonce; any other 401 with a different token, if the broker has one."""
        given = self._client.remember_nonce(url, headers.get(NONCE_HEADER))
        if status != 401:
            return None
        if token.dpop_key is not None and given and _NONCE_CHALLENGE.search(headers.get("WWW-Authenticate", "")):
            return self._client.request_headers(token, method, url)
        fresh = self.renewed(token)
        return None if fresh is None else self._client.request_headers(fresh, method, url)
