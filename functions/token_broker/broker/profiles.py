"""A profile: one OAuth client's settings, parsed from its secret and validated field by field."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from broker.callers import BadCallerEntry, CallerRule, parse_caller_rule
from broker.client_assertion import SigningKey, load_signing_key
from broker.endpoints import BadEndpoint, parse_endpoint
from broker.errors import ProfileMisconfigured
from broker.sensitive import Sensitive
from broker.token_request import parse_scopes

CLIENT_SECRET_BASIC = "client_secret_basic"
CLIENT_SECRET_POST = "client_secret_post"
PRIVATE_KEY_JWT = "private_key_jwt"
AUTH_METHODS = (CLIENT_SECRET_BASIC, CLIENT_SECRET_POST, PRIVATE_KEY_JWT)

FIELDS = frozenset(
    {
        "token_url",
        "client_id",
        "client_secret",
        "auth_method",
        "private_key",
        "key_id",
        "scopes",
        "allowed_scopes",
        "token_params",
        "allowed_callers",
    }
)
# Form fields the broker sets itself; a profile's token_params may not override them.
RESERVED_PARAMS = frozenset(
    {"grant_type", "scope", "client_id", "client_secret", "client_assertion", "client_assertion_type"}
)


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    token_url: str
    client_id: str
    auth_method: str = CLIENT_SECRET_BASIC
    client_secret: Sensitive | None = None
    private_key: Sensitive | None = None
    # parsed from private_key; equal profiles are told apart by private_key itself
    signing_key: SigningKey | None = field(default=None, compare=False)
    key_id: str | None = None
    scopes: frozenset[str] = frozenset()
    allowed_scopes: frozenset[str] | None = None
    token_params: dict[str, str] = field(default_factory=dict)
    allowed_callers: tuple[CallerRule, ...] = ()


def parse_profile(name: str, secret_string: str | None) -> Profile:
    """Raises `ProfileMisconfigured` naming the first bad field, never quoting a value.

    `allowed_callers` is read first: any later error carries it, so that the service can refuse a
    caller it does not admit before telling of the misconfiguration."""
    if secret_string is None:
        raise ProfileMisconfigured(f"profile {name}: the secret has no SecretString")
    try:
        document = json.loads(secret_string)
    except ValueError:
        raise ProfileMisconfigured(f"profile {name}: the secret is not valid JSON") from None
    if not isinstance(document, dict):
        raise ProfileMisconfigured(f"profile {name}: the secret must be a JSON object")
    allowed_callers = _allowed_callers(document.get("allowed_callers"), name)

    def bad(message: str) -> ProfileMisconfigured:
        return ProfileMisconfigured(f"profile {name}: {message}", allowed_callers)

    unknown = sorted(str(key)[:40] for key in document if key not in FIELDS)
    if unknown:
        raise bad(f"unknown field {unknown[0]}")
    auth_method = document.get("auth_method", CLIENT_SECRET_BASIC)
    if auth_method not in AUTH_METHODS:
        raise bad(f"auth_method must be one of {', '.join(AUTH_METHODS)}")
    client_secret = _optional_text(document, "client_secret", bad)
    private_key = _optional_text(document, "private_key", bad)
    if auth_method == PRIVATE_KEY_JWT:
        if private_key is None:
            raise bad(f"private_key is required for {PRIVATE_KEY_JWT}")
    elif client_secret is None:
        raise bad(f"client_secret is required for {auth_method}")

    return Profile(
        name=name,
        token_url=_token_url(document.get("token_url"), bad),
        client_id=_required_text(document, "client_id", bad),
        auth_method=auth_method,
        client_secret=Sensitive(client_secret) if client_secret is not None else None,
        private_key=Sensitive(private_key) if private_key is not None else None,
        signing_key=(load_signing_key(private_key, bad) if auth_method == PRIVATE_KEY_JWT and private_key else None),
        key_id=_optional_text(document, "key_id", bad),
        scopes=parse_scopes(document.get("scopes", []), "scopes", bad),
        allowed_scopes=(
            parse_scopes(document["allowed_scopes"], "allowed_scopes", bad) if "allowed_scopes" in document else None
        ),
        token_params=_token_params(document.get("token_params", {}), bad),
        allowed_callers=allowed_callers,
    )


def _token_url(value: Any, bad: Callable[[str], Exception]) -> str:
    """Kept as written (it is the `aud` of private_key_jwt assertions and part of the cache key);
    urllib3 parses it again to connect, exactly as it was checked here."""
    if not isinstance(value, str) or not value:
        raise bad("token_url is required")
    try:
        endpoint = parse_endpoint(value)
    except BadEndpoint as problem:
        raise bad(f"token_url: {problem}") from None
    if endpoint.scheme == "https" or endpoint.loopback:
        return value
    raise bad("token_url must use https (http only to a loopback host)")


def _required_text(document: dict[str, Any], name: str, bad: Callable[[str], Exception]) -> str:
    value = _optional_text(document, name, bad)
    if value is None:
        raise bad(f"{name} is required")
    return value


def _optional_text(document: dict[str, Any], name: str, bad: Callable[[str], Exception]) -> str | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise bad(f"{name} must be a non-empty string")
    return value


def _token_params(value: Any, bad: Callable[[str], Exception]) -> dict[str, str]:
    if not isinstance(value, dict):
        raise bad("token_params must be an object of string values")
    for key, param in value.items():
        if key in RESERVED_PARAMS:
            raise bad(f"token_params may not set {key}; the broker sends it")
        if not isinstance(param, str):
            raise bad("token_params must be an object of string values")
    return dict(value)


def _allowed_callers(value: Any, name: str) -> tuple[CallerRule, ...]:
    """Required: a profile that names nobody admits nobody, and one that omits the field is a
    mistake, never "everyone"."""
    if value is None:
        raise ProfileMisconfigured(
            f"profile {name}: allowed_callers is required: the IAM roles or users that may get its tokens"
        )
    if not isinstance(value, list):
        raise ProfileMisconfigured(f"profile {name}: allowed_callers must be a list of IAM role or user ARNs")
    try:
        return tuple(parse_caller_rule(entry) for entry in value)
    except BadCallerEntry as error:
        raise ProfileMisconfigured(f"profile {name}: {error}") from None
