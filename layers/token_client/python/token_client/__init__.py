"""Tokens from the Token Broker, for the Lambdas that call OAuth-protected APIs.

from token_client import TokenClient, TokenBrokerError

tokens = TokenClient()  # the broker is named by env TOKEN_BROKER_FUNCTION
headers = tokens.auth_header("okta-default", scopes=["orders.read"])
"""

from token_client.client import DEFAULT_MIN_TTL_SECONDS, TokenBrokerError, TokenClient

__all__ = ["DEFAULT_MIN_TTL_SECONDS", "TokenBrokerError", "TokenClient"]
