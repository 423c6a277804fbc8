"""Secrets Manager: each profile's secret, read and parsed, kept in memory for a bounded time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from broker import observability
from broker.bounded import BoundedMap
from broker.errors import InternalError, UnknownProfile
from broker.profiles import Profile, parse_profile

# How long a container trusts a secret it read; rotation is picked up sooner through
# `fresh=True`, which the service uses when the authorization server says invalid_client.
SECRET_CACHE_SECONDS = 300.0
NOT_FOUND = frozenset({"ResourceNotFoundException"})
# A secret scheduled for deletion answers InvalidRequestException: to the caller it is gone.
GONE = frozenset({"InvalidRequestException"})
# The profiles a container keeps: callers may name any, and each costs a parse and a read.
PROFILES_MAX = 1_000


class ProfileStore:
    def __init__(
        self,
        client: Any,
        prefix: str,
        ttl_seconds: float = SECRET_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._clock = clock
        self._profiles: BoundedMap[str, tuple[Profile, float]] = BoundedMap(PROFILES_MAX)

    def get(self, name: str, *, fresh: bool = False) -> Profile:
        """The profile named `name`; `fresh` skips the memory cache and re-reads the secret."""
        cached = self._profiles.get(name)
        now = self._clock()
        if cached is not None and not fresh and now - cached[1] < self._ttl:
            return cached[0]
        profile = parse_profile(name, self._read(name))
        self._profiles[name] = (profile, now)
        return profile

    def _read(self, name: str) -> str | None:
        try:
            answer = self._client.get_secret_value(SecretId=self._prefix + name)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in NOT_FOUND or code in GONE:
                raise UnknownProfile(f"no profile named {name}") from None
            observability.logger.error("secret unreadable", extra={"profile": name, "code": code})
            raise InternalError("the profile's secret could not be read") from None
        except BotoCoreError as error:
            observability.logger.error("secret unreadable", extra={"profile": name, "failure": type(error).__name__})
            raise InternalError("the profile's secret could not be read") from None
        observability.logger.debug("secret read", extra={"profile": name})
        secret_string: str | None = answer.get("SecretString")
        return secret_string
