"""The function's settings: its environment, read and validated once per container."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from broker import observability
from broker.caller_proof import Audience, parse_audience
from broker.endpoints import BadEndpoint, parse_endpoint
from broker.errors import ConfigurationError

TOKEN_TABLE_NAME = "TOKEN_TABLE_NAME"
SECRET_PREFIX = "SECRET_PREFIX"
TOKEN_KMS_KEY_ID = "TOKEN_KMS_KEY_ID"
MIN_TTL_SECONDS = "MIN_TTL_SECONDS"
REFRESH_AHEAD_SECONDS = "REFRESH_AHEAD_SECONDS"
FORCE_REFRESH_COOLDOWN_SECONDS = "FORCE_REFRESH_COOLDOWN_SECONDS"
NEGATIVE_CACHE_SECONDS = "NEGATIVE_CACHE_SECONDS"
CALLER_AUTH = "CALLER_AUTH"
AWS_REGION = "AWS_REGION"
AWS_ENDPOINT_URL_STS = "AWS_ENDPOINT_URL_STS"
BROKER_AUDIENCE = "BROKER_AUDIENCE"
RENEWAL_FUNCTION = "RENEWAL_FUNCTION"

ONE_DAY = 86_400
DEFAULT_SECRET_PREFIX = "token-broker/"
DEFAULT_MIN_TTL = 60
DEFAULT_REFRESH_AHEAD = 300
DEFAULT_FORCE_REFRESH_COOLDOWN = 30
DEFAULT_NEGATIVE_CACHE = 30
ENFORCE = "enforce"
AUDIT = "audit"


@dataclass(frozen=True, slots=True)
class Settings:
    table_name: str
    region: str
    secret_prefix: str = DEFAULT_SECRET_PREFIX
    kms_key_id: str | None = None
    min_ttl_seconds: int = DEFAULT_MIN_TTL
    refresh_ahead_seconds: int = DEFAULT_REFRESH_AHEAD
    force_refresh_cooldown_seconds: int = DEFAULT_FORCE_REFRESH_COOLDOWN
    negative_cache_seconds: int = DEFAULT_NEGATIVE_CACHE
    caller_auth: str = ENFORCE
    # where caller proofs are checked when it is not STS itself: only ever a loopback host
    sts_endpoint_override: str | None = None
    # None: the function's own unqualified ARN, as Lambda tells it at each invocation
    broker_audience: Audience | None = None
    # where renewals ahead of expiry are handed; None: the request tries once itself
    renewal_function: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Reads the contract's variables; a missing or bad value raises, naming the variable."""
        table_name = environ.get(TOKEN_TABLE_NAME, "").strip()
        if not table_name:
            raise ConfigurationError(f"{TOKEN_TABLE_NAME} is required")
        region = environ.get(AWS_REGION, "").strip()
        if not region:
            raise ConfigurationError(f"{AWS_REGION} is required (Lambda sets it)")
        caller_auth = environ.get(CALLER_AUTH, ENFORCE).strip() or ENFORCE
        if caller_auth not in (ENFORCE, AUDIT):
            raise ConfigurationError(f"{CALLER_AUTH} must be {ENFORCE} or {AUDIT}, got {caller_auth!r}")
        return cls(
            table_name=table_name,
            region=region,
            secret_prefix=environ.get(SECRET_PREFIX, DEFAULT_SECRET_PREFIX),
            kms_key_id=environ.get(TOKEN_KMS_KEY_ID) or None,
            min_ttl_seconds=_seconds(environ, MIN_TTL_SECONDS, DEFAULT_MIN_TTL),
            refresh_ahead_seconds=_seconds(environ, REFRESH_AHEAD_SECONDS, DEFAULT_REFRESH_AHEAD),
            force_refresh_cooldown_seconds=_seconds(
                environ, FORCE_REFRESH_COOLDOWN_SECONDS, DEFAULT_FORCE_REFRESH_COOLDOWN
            ),
            negative_cache_seconds=_seconds(environ, NEGATIVE_CACHE_SECONDS, DEFAULT_NEGATIVE_CACHE),
            caller_auth=caller_auth,
            sts_endpoint_override=loopback_sts_endpoint(environ.get(AWS_ENDPOINT_URL_STS)),
            broker_audience=_audience(environ.get(BROKER_AUDIENCE, "").strip(), region),
            renewal_function=_renewal_function(environ.get(RENEWAL_FUNCTION, "").strip()),
        )


def loopback_sts_endpoint(url: str | None) -> str | None:
    """`AWS_ENDPOINT_URL_STS` is honoured for a loopback host only, as urllib3 connects to it (the
    local stack and tests): anywhere else, caller proofs would be judged by whoever runs that
    host, and would hand it the callers' session tokens, so STS itself is used."""
    if not url:
        return None
    try:
        endpoint = parse_endpoint(url)
    except BadEndpoint as problem:
        observability.logger.warning(f"{AWS_ENDPOINT_URL_STS} is ignored: {problem}; caller proofs go to STS")
        return None
    if not endpoint.loopback:
        observability.logger.warning(f"{AWS_ENDPOINT_URL_STS} names no loopback host; caller proofs go to STS")
        return None
    return endpoint.url


def _audience(value: str, region: str) -> Audience | None:
    if not value:
        return None
    try:
        audience = parse_audience(value)
    except ValueError:
        raise ConfigurationError(
            f"{BROKER_AUDIENCE} must be the direct function's unqualified ARN "
            f"(arn:aws:lambda:REGION:ACCOUNT:function:NAME), got {value!r}"
        ) from None
    if audience.region != region:
        raise ConfigurationError(f"{BROKER_AUDIENCE} must name a function in {region}, the broker's region")
    return audience


def _renewal_function(value: str) -> str | None:
    if not value:
        return None
    try:
        parse_audience(value, qualified=True)
    except ValueError:
        raise ConfigurationError(
            f"{RENEWAL_FUNCTION} must be the renewal function's ARN (or an alias ARN), got {value!r}"
        ) from None
    return value


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
