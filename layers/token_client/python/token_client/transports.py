"""The two ways to ask the broker: invoking its function, or calling its HTTP route.

Each takes a request (the contract's fields, without a proof) and gives back the broker's
answer as the direct invocation's JSON object: a token, or `error`, `error_description`,
`status` and `retry_after`. A failure to ask at all raises one of `errors`' classes.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import random
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from token_client.caller_proof import Broker, NoCredentials, Prover
from token_client.errors import (
    BrokerFailed,
    BrokerForbidden,
    BrokerNotFound,
    BrokerUnreachable,
    ClientMisconfigured,
    TokenBrokerError,
)

# The broker's function times out after 15 s; an answer is waited for a little longer than that.
BROKER_TIMEOUT_SECONDS = 15
CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = BROKER_TIMEOUT_SECONDS + 5.0
# One retry of a failed connection or a throttled or failing Lambda; never more, a caller waits.
INVOKE_ATTEMPTS = 2
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
# Lambda's answers to a request whose signature or credentials it cannot accept.
CREDENTIALS_REFUSED = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "ExpiredTokenException",
    }
)
_EXECUTE_API_HOST = re.compile(r"[a-z0-9]+\.execute-api\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?")


class LambdaTransport:
    """Direct invocation of the broker's function; every request carries a caller proof signed
    with the session's credentials (one proof per 4 minutes and set of credentials).

    The `Invoke` request is signed here with botocore's SigV4 signer and sent with urllib3, as
    the SDK would send it (its endpoint, `AWS_ENDPOINT_URL_LAMBDA` or `AWS_ENDPOINT_URL` too),
    since making a boto3 Lambda client is most of a consumer's cold start; a `lambda_client`
    given is used instead."""

    name = "lambda"

    def __init__(
        self,
        function_arn: str,
        session: Callable[[], Any],
        lambda_client: Any = None,
        clock: Callable[[], float] = time.time,
        pool: urllib3.PoolManager | None = None,
    ) -> None:
        try:
            broker = Broker(function_arn)
        except ValueError as error:
            raise ClientMisconfigured(str(error)) from error
        self.function_arn = function_arn
        self._broker = broker
        self._session = session
        self._lambda = lambda_client
        self._prover = Prover(broker, session, clock)
        if lambda_client is None:
            endpoint = lambda_endpoint(broker)
            self._url = f"{endpoint}/2015-03-31/functions/{quote(function_arn, safe='')}/invocations"
            self._pool = pool or urllib3.PoolManager(num_pools=1, maxsize=4)

    def ask(self, request: dict[str, Any], request_id: str) -> dict[str, Any]:
        payload = json.dumps({**request, "caller_proof": _proof(self._prover)}).encode()
        # the broker logs this id as the correlation id of every line of this invocation
        client_context = base64.b64encode(json.dumps({"custom": {"request_id": request_id}}).encode()).decode()
        if self._lambda is not None:
            function_error, body = self._invoke_with_client(payload, client_context)
        else:
            function_error, body = self._invoke(payload, client_context)
        if function_error:
            raise BrokerFailed(f"the broker failed ({function_error})")
        return _json_object(body)

    def _invoke(self, payload: bytes, client_context: str) -> tuple[str | None, bytes]:
        """Lambda's `Invoke`, retried once (after a pause under a second) when the connection
        fails or Lambda is throttled or failing, as the SDK's standard retry mode would."""
        headers = {
            "Content-Type": "application/json",
            "X-Amz-Invocation-Type": "RequestResponse",
            "X-Amz-Client-Context": client_context,
        }
        attempt = 1
        while True:
            credentials = _frozen_credentials(self._session, "invoke the broker")
            try:
                signer = SigV4Auth(credentials, "lambda", self._broker.region)
                response = _signed_post(self._pool, self._url, payload, headers, signer)
            except urllib3.exceptions.ReadTimeoutError as error:  # the broker had its 15 s: asking again won't help
                raise BrokerUnreachable("the broker could not be invoked: ReadTimeoutError") from error
            except urllib3.exceptions.HTTPError as error:
                if attempt == INVOKE_ATTEMPTS:
                    raise BrokerUnreachable(f"the broker could not be invoked: {type(error).__name__}") from error
            else:
                if response.status == 200:
                    return response.headers.get("X-Amz-Function-Error"), response.data
                code = response.headers.get("X-Amzn-ErrorType", "").split(":")[0] or f"HTTP {response.status}"
                if response.status not in RETRIED_STATUSES or attempt == INVOKE_ATTEMPTS:
                    raise self._refused(code)
            attempt += 1
            time.sleep(random.random())  # noqa: S311  # nosec B311  # jitter, not cryptography

    def _invoke_with_client(self, payload: bytes, client_context: str) -> tuple[str | None, bytes]:
        try:
            response = self._lambda.invoke(
                FunctionName=self.function_arn,
                InvocationType="RequestResponse",
                Payload=payload,
                ClientContext=client_context,
            )
            body: bytes = response["Payload"].read()
        except ClientError as error:
            raise self._refused(error.response.get("Error", {}).get("Code", "ClientError")) from error
        except NoCredentialsError as error:
            raise ClientMisconfigured("no AWS credentials to invoke the broker with") from error
        except BotoCoreError as error:
            raise BrokerUnreachable(f"the broker could not be invoked: {type(error).__name__}") from error
        return response.get("FunctionError"), body

    def _refused(self, code: str) -> TokenBrokerError:
        """What Lambda's refusal to invoke the broker means to the caller."""
        if code == "AccessDeniedException":
            return BrokerForbidden(
                f"this role may not invoke {self.function_arn}: grant lambda:InvokeFunction "
                "(the stack's TokenBrokerInvokePolicyArn)"
            )
        if code == "ResourceNotFoundException":
            return BrokerNotFound(f"no function {self.function_arn}: check the ARN, alias and region")
        if code in CREDENTIALS_REFUSED:
            return ClientMisconfigured(f"Lambda refused this caller's credentials ({code}): check them and the clock")
        return BrokerUnreachable(f"the broker could not be invoked: {code}")


def lambda_endpoint(broker: Broker) -> str:
    """Where the SDK would send the broker's `Invoke`: `AWS_ENDPOINT_URL_LAMBDA`, else
    `AWS_ENDPOINT_URL` (unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`), else Lambda's endpoint in the
    function's region, its FIPS or dual-stack one where `AWS_USE_FIPS_ENDPOINT` or
    `AWS_USE_DUALSTACK_ENDPOINT` ask for it."""
    configured = None
    if os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() != "true":
        configured = os.environ.get("AWS_ENDPOINT_URL_LAMBDA") or os.environ.get("AWS_ENDPOINT_URL")
    if configured:
        _route_host(configured, what="AWS_ENDPOINT_URL_LAMBDA")
        return configured.rstrip("/")
    service = "lambda-fips" if os.environ.get("AWS_USE_FIPS_ENDPOINT", "").lower() == "true" else "lambda"
    dual_stack = os.environ.get("AWS_USE_DUALSTACK_ENDPOINT", "").lower() == "true"
    domain = "api.aws" if dual_stack and broker.partition == "aws" else broker.domain
    return f"https://{service}.{broker.region}.{domain}"


class HttpTransport:
    """The broker's HTTP route (`POST …/token`), signed with SigV4 for `execute-api`, as API
    Gateway's IAM authorizer requires, with a caller proof for the broker's `audience` (its
    direct function's unqualified ARN) in the body: for services that are not Lambdas."""

    name = "http"

    def __init__(  # TokenClient's ways to name the broker and its credentials, and what tests fake
        self,
        url: str,
        session: Callable[[], Any],
        audience: str,
        region: str | None = None,
        clock: Callable[[], float] = time.time,
        pool: urllib3.PoolManager | None = None,
    ) -> None:
        host = _route_host(url)
        try:
            broker = Broker(audience)
        except ValueError:
            raise ClientMisconfigured(
                "the broker's audience is its direct function's ARN (the stack output TokenBrokerAudience)"
            ) from None
        host_region = _EXECUTE_API_HOST.fullmatch(host)
        self.url = url.rstrip("/") if url.rstrip("/").endswith("/token") else url.rstrip("/") + "/token"
        self._session = session
        self._region = region or (host_region["region"] if host_region else None)
        self._prover = Prover(broker, session, clock)
        self._pool = pool or urllib3.PoolManager(num_pools=2, maxsize=4)

    def ask(self, request: dict[str, Any], request_id: str) -> dict[str, Any]:
        """`request_id` is only logged here: the broker correlates by API Gateway's own id."""
        body = json.dumps({**request, "caller_proof": _proof(self._prover)}).encode()
        credentials = _frozen_credentials(self._session, "sign the request")
        headers = {"Content-Type": "application/json"}
        try:
            signer = SigV4Auth(credentials, "execute-api", self._region_name())
            response = _signed_post(self._pool, self.url, body, headers, signer)
        except urllib3.exceptions.HTTPError as error:
            raise BrokerUnreachable(f"the broker's route could not be reached: {type(error).__name__}") from error
        try:
            document = _json_object(response.data)
        except BrokerFailed:
            document = {}
        if isinstance(document.get("error"), str):  # the broker's own error answer
            retry_after = response.headers.get("Retry-After", "")
            return {
                **document,
                "status": response.status,
                "retry_after": int(retry_after) if retry_after.isdigit() else None,
            }
        if response.status == 403:
            raise BrokerForbidden(f"the route refused this caller: grant execute-api:Invoke on {self.url}")
        if response.status == 404:
            raise BrokerNotFound(f"no broker route at {self.url}")
        if response.status == 429 or response.status >= 500:
            raise BrokerUnreachable(f"the broker's route answered HTTP {response.status}")
        if response.status != 200 or not document:
            raise BrokerFailed(f"the broker's route answered HTTP {response.status} without a token")
        return document

    def _region_name(self) -> str:
        region = self._region or self._session().region_name
        if not region:
            raise ClientMisconfigured("name the broker's region: TokenClient(url=..., region=...) or AWS_REGION")
        return str(region)


def _proof(prover: Prover) -> dict[str, Any]:
    try:
        return prover.proof()
    except NoCredentials as error:
        raise ClientMisconfigured(str(error)) from None


def _signed_post(
    pool: urllib3.PoolManager, url: str, body: bytes, headers: dict[str, str], signer: SigV4Auth
) -> urllib3.BaseHTTPResponse:
    """`body` POSTed to `url`, signed by `signer` (SigV4, for a service and region), with the
    transports' timeouts and no retries or redirects of urllib3's own (the transports decide)."""
    signed = AWSRequest("POST", url, data=body, headers=headers)
    signer.add_auth(signed)
    timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS)
    return pool.request(
        "POST", url, body=body, headers=dict(signed.headers), timeout=timeout, retries=False, redirect=False
    )


def _frozen_credentials(session: Callable[[], Any], to: str) -> Any:
    credentials = session().get_credentials()
    if credentials is None:
        raise ClientMisconfigured(f"no AWS credentials to {to} with")
    return credentials.get_frozen_credentials()


def _route_host(url: str, what: str = "the broker's URL") -> str:
    """The URL's host as urllib3 connects to it; the URL is https (http only on loopback), with
    no credentials and no backslash, so that what is checked is what is dialled."""
    try:
        parsed = parse_url(url) if "\\" not in url else None
    except LocationParseError:
        parsed = None
    if parsed is None or parsed.auth is not None or not parsed.host:
        raise ClientMisconfigured(f"{what} must be an https URL with a host and no credentials")
    host = parsed.host.strip("[]")
    if parsed.scheme != "https" and not (parsed.scheme == "http" and _is_loopback(host)):
        raise ClientMisconfigured(f"{what} must be https (http only on a loopback host)")
    return host


def _json_object(payload: bytes) -> dict[str, Any]:
    try:
        document = json.loads(payload)
    except ValueError:
        raise BrokerFailed("the broker's answer is not JSON") from None
    if not isinstance(document, dict):
        raise BrokerFailed("the broker's answer is not a JSON object")
    return document


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
