"""A profile: one OAuth client's settings, parsed from its secret and validated field by field."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from broker.callers import BadCallerEntry, CallerRule, parse_caller_rule
from broker.client_assertion import SigningKey, load_signing_key
from broker.endpoints import BadEndpoint, parse_endpoint
from broker.errors import ProfileMisconfigured
from broker.sensitive import Sensitive
from broker.token_request import parse_scopes


class AuthMethod(StrEnum):
    """How the broker authenticates as the profile's client at the token endpoint."""

    CLIENT_SECRET_BASIC = "client_secret_basic"  # RFC 6749 §2.3.1
    CLIENT_SECRET_POST = "client_secret_post"
    PRIVATE_KEY_JWT = "private_key_jwt"  # RFC 7523, with a key (and certificate) of the profile's
    AWS_WEB_IDENTITY_TOKEN = "aws_web_identity_token"  # RFC 7523, with a JWT STS issues the broker's role


SECRET_METHODS = (AuthMethod.CLIENT_SECRET_BASIC, AuthMethod.CLIENT_SECRET_POST)
# The algorithms STS signs web identity tokens with; the first is the default.
ASSERTION_ALGORITHMS = ("RS256", "ES384")
# The fields of one method alone: given with another, they say the profile is not what it seems.
METHOD_FIELDS = {
    "certificate": AuthMethod.PRIVATE_KEY_JWT,
    "signing_algorithm": AuthMethod.PRIVATE_KEY_JWT,
    "assertion_audience": AuthMethod.AWS_WEB_IDENTITY_TOKEN,
    "assertion_algorithm": AuthMethod.AWS_WEB_IDENTITY_TOKEN,
}
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
        *METHOD_FIELDS,
    }
)
MAX_ASSERTION_AUDIENCE = 1000  # STS's own limit on an audience
# Form fields the broker sets itself; a profile's token_params may not override them.
RESERVED_PARAMS = frozenset(
    {"grant_type", "scope", "client_id", "client_secret", "client_assertion", "client_assertion_type"}
)


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    token_url: str
    client_id: str
    auth_method: AuthMethod = AuthMethod.CLIENT_SECRET_BASIC
    client_secret: Sensitive | None = None
    private_key: Sensitive | None = None
    # parsed from private_key (and certificate); equal profiles are told apart by those themselves
    signing_key: SigningKey | None = field(default=None, compare=False)
    key_id: str | None = None
    certificate: str | None = None
    assertion_audience: str | None = None  # aws_web_identity_token: the `aud` of STS's JWT
    assertion_algorithm: str = ASSERTION_ALGORITHMS[0]
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
    try:
        auth_method = AuthMethod(document.get("auth_method", AuthMethod.CLIENT_SECRET_BASIC))
    except (ValueError, TypeError):
        raise bad(f"auth_method must be one of {', '.join(AuthMethod)}") from None
    foreign = sorted(key for key in document if key in METHOD_FIELDS and METHOD_FIELDS[key] is not auth_method)
    if foreign:
        raise bad(f"{foreign[0]} is not used with auth_method {auth_method}")
    if auth_method is AuthMethod.AWS_WEB_IDENTITY_TOKEN and ({"client_secret", "private_key"} & set(document)):
        raise bad(f"{auth_method} holds no secret: remove client_secret and private_key")
    client_secret = _optional_text(document, "client_secret", bad)
    private_key = _optional_text(document, "private_key", bad)
    if auth_method is AuthMethod.PRIVATE_KEY_JWT and private_key is None:
        raise bad(f"private_key is required for {auth_method}")
    if auth_method in SECRET_METHODS and client_secret is None:
        raise bad(f"client_secret is required for {auth_method}")
    certificate = _optional_text(document, "certificate", bad)
    signing_key = None
    if auth_method is AuthMethod.PRIVATE_KEY_JWT and private_key is not None:
        algorithm = _optional_text(document, "signing_algorithm", bad)
        signing_key = load_signing_key(private_key, bad, algorithm, certificate)
    assertion_audience = _optional_text(document, "assertion_audience", bad)
    assertion_algorithm = document.get("assertion_algorithm", ASSERTION_ALGORITHMS[0])
    if auth_method is AuthMethod.AWS_WEB_IDENTITY_TOKEN:
        if assertion_audience is None:
            raise bad(f"assertion_audience is required for {auth_method} (Entra ID: api://AzureADTokenExchange)")
        if len(assertion_audience) > MAX_ASSERTION_AUDIENCE:
            raise bad(f"assertion_audience may be at most {MAX_ASSERTION_AUDIENCE} characters")
        if assertion_algorithm not in ASSERTION_ALGORITHMS:
            raise bad(f"assertion_algorithm must be one of {', '.join(ASSERTION_ALGORITHMS)}")

    return Profile(
        name=name,
        token_url=_token_url(document.get("token_url"), bad),
        client_id=_required_text(document, "client_id", bad),
        auth_method=auth_method,
        client_secret=Sensitive(client_secret) if client_secret is not None else None,
        private_key=Sensitive(private_key) if private_key is not None else None,
        signing_key=signing_key,
        key_id=_optional_text(document, "key_id", bad),
        certificate=certificate,
        assertion_audience=assertion_audience,
        assertion_algorithm=assertion_algorithm,
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
