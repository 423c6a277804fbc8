"""Web identity tokens (STS `GetWebIdentityToken`) as client assertions for
`aws_web_identity_token` profiles, each asked as the profile's own role.

A JWT is kept per role, profile, audience, algorithm and token URL, and reused while it has more
than a minute left, so a key's renewals cost STS one call in five minutes at most; it is sent
only to the token URL it was kept for. Who the JWT names is a `Signer`'s choice: the broker
assumes the profile's role (`RoleSessions`); the operator's CLI signs as the operator.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from broker.bounded import BoundedMap
from broker.decisions import jwt_expiry
from broker.sensitive import Sensitive
from broker.sts import RoleSession, Sts

if TYPE_CHECKING:
    from broker.client_auth import WebIdentity

# A JWT or a role session with less life than this left is not used: it may be checked late.
REUSE_MARGIN_SECONDS = 60
# A container serves few secretless profiles; these bound what it keeps of them.
KEPT_MAX = 256


class Signer(Protocol):
    def credentials(self, role: str, profile: str, deadline: float) -> Any:
        """botocore's frozen credentials to ask STS for `profile`'s JWT with; None: the broker's own."""


class RoleSessions:
    """The broker's signer: the profile's role, assumed with the profile's tag, kept per role and
    profile until a minute before it expires."""

    def __init__(self, sts: Sts, clock: Callable[[], float] = time.time) -> None:
        self._sts = sts
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: BoundedMap[tuple[str, str], RoleSession] = BoundedMap(KEPT_MAX)

    def credentials(self, role: str, profile: str, deadline: float) -> Any:
        key = (role, profile)
        with self._lock:
            session = self._sessions.get(key)
        if session is None or session.expires_at - self._clock() <= REUSE_MARGIN_SECONDS:
            session = self._sts.assume_role(role, profile, deadline)
            with self._lock:
                self._sessions.put(key, session)
        return session.credentials


class OwnCredentials:
    """The operator's signer: the JWT names whoever runs the command, never the profile's role."""

    def credentials(self, role: str, profile: str, deadline: float) -> Any:
        return None


class WebIdentityTokens:
    def __init__(self, sts: Sts, signer: Signer, clock: Callable[[], float] = time.time) -> None:
        self._sts = sts
        self._signer = signer
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: BoundedMap[tuple[str, ...], tuple[Sensitive, int]] = BoundedMap(KEPT_MAX)

    def assertion(self, auth: WebIdentity, profile: str, token_url: str, deadline: float) -> Sensitive:
        key = (auth.role, profile, auth.audience, auth.algorithm, token_url)
        with self._lock:
            kept = self._tokens.get(key)
        if kept is not None and kept[1] - self._clock() > REUSE_MARGIN_SECONDS:
            return kept[0]
        credentials = self._signer.credentials(auth.role, profile, deadline)
        token = self._sts.web_identity_token(credentials, auth.audience, auth.algorithm, profile, deadline)
        expires_at = jwt_expiry(token.reveal()) or 0  # signed by STS; read only to know when to ask again
        with self._lock:
            self._tokens.put(key, (token, expires_at))
        return token
