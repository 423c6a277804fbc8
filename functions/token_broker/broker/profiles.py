"""A profile: one OAuth client's settings, parsed from its secret and validated field by field."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from broker.callers import BadCallerEntry, CallerRule, parse_caller_rule
from broker.client_auth import METHODS, ClientAuth
from broker.endpoints import BadEndpoint, parse_endpoint
from broker.errors import ProfileMisconfigured
from broker.profile_document import ProfileDocument
from broker.token_binding import BEARER, BINDINGS, TokenBinding
from broker.token_request import parse_scopes

# The fields every profile may hold; each method and binding adds its own.
COMMON_FIELDS = frozenset(
    {
        "token_url",
        "client_id",
        "auth_method",
        "token_binding",
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
    client_auth: ClientAuth
    binding: TokenBinding = BEARER
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
        parsed = json.loads(secret_string)
    except ValueError:
        raise ProfileMisconfigured(f"profile {name}: the secret is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise ProfileMisconfigured(f"profile {name}: the secret must be a JSON object")
    allowed_callers = _allowed_callers(parsed.get("allowed_callers"), name)
    document = ProfileDocument(
        parsed, lambda message: ProfileMisconfigured(f"profile {name}: {message}", allowed_callers)
    )
    # read from the registries as they are now: a method registered after import counts too
    fields = COMMON_FIELDS.union(
        *(method.fields for method in METHODS.values()), *(binding.fields for binding in BINDINGS.values())
    )
    unknown = sorted(str(key)[:40] for key in document.names() if key not in fields)
    if unknown:
        raise document.bad(f"unknown field {unknown[0]}")
    client_auth = _variant(document, "auth_method", METHODS).parse(document)
    binding = _variant(document, "token_binding", BINDINGS).parse(document)
    return Profile(
        name=name,
        token_url=_token_url(document.raw("token_url"), document.bad),
        client_id=document.required("client_id"),
        client_auth=client_auth,
        binding=binding,
        scopes=parse_scopes(document.raw("scopes", []), "scopes", document.bad),
        allowed_scopes=(
            parse_scopes(document.raw("allowed_scopes"), "allowed_scopes", document.bad)
            if "allowed_scopes" in document
            else None
        ),
        token_params=_token_params(document.raw("token_params", {}), document.bad),
        allowed_callers=allowed_callers,
    )


def cache_key(profile: Profile, scopes: frozenset[str]) -> str:
    """One key per (profile, client identity, credential kind and token URL, scope set,
    token_params), hashed.

    The profile is part of it so that two profiles never share a token, whatever their clients:
    each is admitted by its own `allowed_callers`. The hash keeps names, client ids, URLs and
    scopes out of the table; the secret is no part of it, so a rotated secret keeps serving the
    same cached token.
    """
    identity = [
        profile.name,
        profile.token_url,
        profile.client_id,
        profile.client_auth.method,  # a token a secret got is not served where an assertion is expected
        sorted(scopes),
        sorted(profile.token_params.items()),
        *profile.binding.cache_identity(),  # Bearer and DPoP tokens are never shared
    ]
    canonical = json.dumps(identity, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _variant[T: (ClientAuth, TokenBinding)](
    document: ProfileDocument, selector: str, registry: dict[str, type[T]]
) -> type[T]:
    """The registry's type that `selector` names (default: its first); a field that belongs only
    to the registry's other types says the profile is not what it seems."""
    chosen = document.choice(selector, tuple(registry))
    foreign = set().union(*(other.fields for other in registry.values())) - registry[chosen].fields
    given = sorted(name for name in document.names() if name in foreign)
    if given:
        raise document.bad(f"{given[0]} is not used with {selector} {chosen}")
    return registry[chosen]


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
