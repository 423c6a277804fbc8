"""The function's settings: its environment, read and validated once per container."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from broker.errors import ConfigurationError

TOKEN_TABLE_NAME = "TOKEN_TABLE_NAME"
SECRET_PREFIX = "SECRET_PREFIX"
TOKEN_KMS_KEY_ID = "TOKEN_KMS_KEY_ID"
MIN_TTL_SECONDS = "MIN_TTL_SECONDS"
REFRESH_AHEAD_SECONDS = "REFRESH_AHEAD_SECONDS"
FORCE_REFRESH_COOLDOWN_SECONDS = "FORCE_REFRESH_COOLDOWN_SECONDS"
NEGATIVE_CACHE_SECONDS = "NEGATIVE_CACHE_SECONDS"

ONE_DAY = 86_400
DEFAULT_SECRET_PREFIX = "token-broker/"
DEFAULT_MIN_TTL = 60
DEFAULT_REFRESH_AHEAD = 300
DEFAULT_FORCE_REFRESH_COOLDOWN = 30
DEFAULT_NEGATIVE_CACHE = 30


@dataclass(frozen=True, slots=True)
class Settings:
    table_name: str
    secret_prefix: str = DEFAULT_SECRET_PREFIX
    kms_key_id: str | None = None
    min_ttl_seconds: int = DEFAULT_MIN_TTL
    refresh_ahead_seconds: int = DEFAULT_REFRESH_AHEAD
    force_refresh_cooldown_seconds: int = DEFAULT_FORCE_REFRESH_COOLDOWN
    negative_cache_seconds: int = DEFAULT_NEGATIVE_CACHE

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Reads the contract's variables; a missing or bad value raises, naming the variable."""
        table_name = environ.get(TOKEN_TABLE_NAME, "").strip()
        if not table_name:
            raise ConfigurationError(f"{TOKEN_TABLE_NAME} is required")
        return cls(
            table_name=table_name,
            secret_prefix=environ.get(SECRET_PREFIX, DEFAULT_SECRET_PREFIX),
            kms_key_id=environ.get(TOKEN_KMS_KEY_ID) or None,
            min_ttl_seconds=_seconds(environ, MIN_TTL_SECONDS, DEFAULT_MIN_TTL),
            refresh_ahead_seconds=_seconds(environ, REFRESH_AHEAD_SECONDS, DEFAULT_REFRESH_AHEAD),
            force_refresh_cooldown_seconds=_seconds(
                environ, FORCE_REFRESH_COOLDOWN_SECONDS, DEFAULT_FORCE_REFRESH_COOLDOWN
            ),
            negative_cache_seconds=_seconds(environ, NEGATIVE_CACHE_SECONDS, DEFAULT_NEGATIVE_CACHE),
        )


def _seconds(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number of seconds, got {raw!r}") from None
    if not 0 <= value <= ONE_DAY:
        raise ConfigurationError(f"{name} must be between 0 and {ONE_DAY} seconds, got {value}")
    return value
