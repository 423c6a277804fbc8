"""Tokens from the Token Broker, for the code that calls OAuth-protected APIs.

from token_client import TokenClient, TokenBrokerError

tokens = TokenClient()  # the broker is named by env TOKEN_BROKER_FUNCTION (or TOKEN_BROKER_URL)
headers = tokens.headers("okta-default", "GET", "https://api.example.com/orders", scopes=["orders.read"])
# {"Authorization": "Bearer …"}, or for a DPoP profile {"Authorization": "DPoP …", "DPoP": "<proof>"}

Adapters for HTTP clients, imported only when used: `token_client.requests_auth`,
`token_client.httpx_auth`, `token_client.urllib3_auth`.
"""

from token_client.client import DEFAULT_MIN_TTL_SECONDS, Scopes, TokenClient
from token_client.errors import (
    BrokerFailed,
    BrokerForbidden,
    BrokerNotFound,
    BrokerUnreachable,
    ClientMisconfigured,
    DpopRequired,
    TokenBrokerError,
)
from token_client.tokens import Token

# The package's version, released as token-client on PyPI (the one place it is written).
__version__ = "0.4.0"

__all__ = [
    "DEFAULT_MIN_TTL_SECONDS",
    "BrokerFailed",
    "BrokerForbidden",
    "BrokerNotFound",
    "BrokerUnreachable",
    "ClientMisconfigured",
    "DpopRequired",
    "Scopes",
    "Token",
    "TokenBrokerError",
    "TokenClient",
    "__version__",
]
