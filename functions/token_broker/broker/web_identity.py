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
from broker.sts import Sts

if TYPE_CHECKING:
    from broker.client_auth import WebIdentity

# A JWT or a role session with less life than this left is not used: it may be checked late.
REUSE_MARGIN_SECONDS = 60
# A container serves few secretless profiles; these bound what it keeps of them.
KEPT_MAX = 256


class Signer(Protocol):
    def credentials(self, role: str, profile: str, deadline: float) -> Any:
        """botocore's frozen credentials to ask STS for `profile`'s JWT with; None: the broker's own."""


class _Kept[V]:
    """Values kept per key while they have more than REUSE_MARGIN_SECONDS left; a value that
    does not is made again. Shared by a container's threads; the oldest written is forgotten."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._values: BoundedMap[tuple[str, ...], tuple[V, float]] = BoundedMap(KEPT_MAX)

    def get(self, key: tuple[str, ...], make: Callable[[], tuple[V, float]]) -> V:
        """The kept value, or the one `make` returns with its expiry (epoch seconds)."""
        with self._lock:
            kept = self._values.get(key)
        if kept is not None and kept[1] - self._clock() > REUSE_MARGIN_SECONDS:
            return kept[0]
        made = make()
        with self._lock:
            self._values.put(key, made)
        return made[0]


class RoleSessions:
    """The broker's signer: the profile's role, assumed with the profile's tag, kept per role and
    profile until a minute before it expires."""

    def __init__(self, sts: Sts, clock: Callable[[], float] = time.time) -> None:
        self._sts = sts
        self._sessions: _Kept[Any] = _Kept(clock)

    def credentials(self, role: str, profile: str, deadline: float) -> Any:
        def assumed() -> tuple[Any, float]:
            session = self._sts.assume_role(role, profile, deadline)
            return session.credentials, session.expires_at

        return self._sessions.get((role, profile), assumed)


class OwnCredentials:
    """The operator's signer: the JWT names whoever runs the command, never the profile's role."""

    def credentials(self, role: str, profile: str, deadline: float) -> Any:
        return None


class WebIdentityTokens:
    def __init__(self, sts: Sts, signer: Signer, clock: Callable[[], float] = time.time) -> None:
        self._sts = sts
        self._signer = signer
        self._tokens: _Kept[Sensitive] = _Kept(clock)

    def assertion(self, auth: WebIdentity, profile: str, token_url: str, deadline: float) -> Sensitive:
        def issued() -> tuple[Sensitive, float]:
            credentials = self._signer.credentials(auth.role, profile, deadline)
            token = self._sts.web_identity_token(credentials, auth.audience, auth.algorithm, profile, deadline)
            return token, jwt_expiry(token.reveal()) or 0  # signed by STS; read only to know when to ask again

        return self._tokens.get((auth.role, profile, auth.audience, auth.algorithm, token_url), issued)
