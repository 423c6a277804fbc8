"""A consumer as `mypy --strict` sees it: token_client's types, boto3's through boto3-stubs."""

import boto3
from mypy_boto3_lambda import LambdaClient

from token_client import Scopes, Token, TokenBrokerError, TokenClient


def tokens(session: boto3.session.Session, lambda_client: LambdaClient) -> TokenClient:
    return TokenClient(
        "arn:aws:lambda:us-east-1:123456789012:function:token-broker:live", lambda_client, session=session
    )


def header(client: TokenClient, scopes: Scopes) -> dict[str, str]:
    try:
        token: Token = client.token("okta-default", scopes=scopes, min_ttl=120)
    except TokenBrokerError as error:
        return {"X-Token-Error": error.error} if not error.retryable else {}
    return {"Authorization": token.authorization}


def calls(client: TokenClient) -> list[str]:
    return [client.get_token("okta-default", scopes="orders.read orders.write"), client.get_token("p", ["a", "b"])]
