"""The broker role's web identity tokens (STS `GetWebIdentityToken`), as client assertions for
`aws_web_identity_token` profiles: one per audience and algorithm, reused while it has more
than a minute left, so a key's renewals cost STS one call in five minutes at most."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from broker.decisions import jwt_expiry
from broker.sensitive import Sensitive
from broker.sts import Sts

# A JWT with less life than this left is not sent: the authorization server may check it late.
REUSE_MARGIN_SECONDS = 60


class WebIdentityTokens:
    def __init__(self, sts: Sts, clock: Callable[[], float] = time.time) -> None:
        self._sts = sts
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], tuple[Sensitive, int]] = {}  # (audience, algorithm) -> (JWT, exp)

    def assertion(self, audience: str, algorithm: str, profile: str, deadline: float) -> Sensitive:
        key = (audience, algorithm)
        with self._lock:
            kept = self._tokens.get(key)
        if kept is not None and kept[1] - self._clock() > REUSE_MARGIN_SECONDS:
            return kept[0]
        token = self._sts.web_identity_token(audience, algorithm, profile, deadline)
        expires_at = jwt_expiry(token.reveal()) or 0  # signed by STS; read only to know when to ask again
        with self._lock:
            self._tokens[key] = (token, expires_at)
        return token
