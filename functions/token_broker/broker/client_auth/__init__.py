"""How the broker authenticates as a profile's client at the token endpoint: one type per
method, registered here as Authlib registers its client authentication methods. A new method
is a module of its own and one entry in `METHODS` (docs/ADDING_A_METHOD.md walks through one)."""

from broker.client_auth.base import Attempt, ClientAuth, Credentials
from broker.client_auth.private_key_jwt import PrivateKeyJwt
from broker.client_auth.secret import SecretBasic, SecretPost
from broker.client_auth.web_identity import WebIdentity

# Every method, by the profile's `auth_method`; the first is the default.
METHODS: dict[str, type[ClientAuth]] = {
    auth.method: auth for auth in (SecretBasic, SecretPost, PrivateKeyJwt, WebIdentity)
}

__all__ = [
    "METHODS",
    "Attempt",
    "ClientAuth",
    "Credentials",
    "PrivateKeyJwt",
    "SecretBasic",
    "SecretPost",
    "WebIdentity",
]
