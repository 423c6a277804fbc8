"""token_client over the HTTP route (SigV4 for API Gateway, a caller proof for the broker's
audience in the body), and its adapters' 401 retry: only on the origin the token went to, and
only with a different token."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import requests
import urllib3

from devstack.local.authserver import LocalAuthorizationServer
from devstack.local.lambda_api import LocalLambdaApi
from devstack.local.sts import Issued
from tests.adapters import ADAPTERS, get_with
from tests.conftest import Broker, Profiles
from token_client import BrokerUnreachable, ClientMisconfigured, TokenClient


class Api:
    """A resource server on loopback: answers each request with the next status of `statuses`
    (then the last one again), redirecting to `redirect_to` on a 302, and records what it saw."""

    def __init__(self, host: str, statuses: list[int], redirect_to: str | None = None) -> None:
        api = self
        self.seen: list[str | None] = []  # the Authorization header of each request

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server's name
                api.seen.append(self.headers.get("Authorization"))
                status = statuses[min(len(api.seen), len(statuses)) - 1]
                self.send_response(status)
                if status == 302 and redirect_to is not None:
                    self.send_header("Location", redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self._server.server_address[1]}/orders"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def apis() -> Iterator[Callable[..., Api]]:
    started: list[Api] = []

    def start(host: str, statuses: list[int], redirect_to: str | None = None) -> Api:
        started.append(Api(host, statuses, redirect_to))
        return started[-1]

    yield start
    for api in started:
        api.stop()


@pytest.fixture
def over_http(lambda_api: LocalLambdaApi, consumer_session: Any) -> TokenClient:
    return TokenClient(url=lambda_api.endpoint_url, audience=lambda_api.function_arn, session=consumer_session)


def test_the_http_transport_gets_a_token_with_sigv4_and_a_caller_proof(
    over_http: TokenClient,
    lambda_api: LocalLambdaApi,
    profiles: Profiles,
    consumer: Issued,
    auth_server: LocalAuthorizationServer,
) -> None:
    profile = profiles.create()

    token = over_http.get_token(profile)

    assert token == auth_server.issued[-1]
    (event,) = lambda_api.invocations
    body = json.loads(base64.b64decode(event["body"]))
    assert body["caller_proof"]["credential"].endswith("/us-east-1/sts/aws4_request")
    assert event["requestContext"]["authorizer"]["iam"]["userArn"] == consumer.arn


def test_the_local_route_refuses_a_request_signed_by_nobody(lambda_api: LocalLambdaApi, profiles: Profiles) -> None:
    response = urllib3.request("POST", f"{lambda_api.endpoint_url}/token", json={"profile": profiles.create()})

    assert response.status == 403  # as API Gateway's IAM authorizer: the function is never invoked
    assert lambda_api.invocations == []


def test_without_an_audience_the_http_transport_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOKEN_BROKER_AUDIENCE", raising=False)
    with pytest.raises(ClientMisconfigured) as raised:
        TokenClient(url="https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com")
    assert "audience=" in raised.value.description
    assert "TOKEN_BROKER_AUDIENCE" in raised.value.description


@pytest.mark.parametrize(
    "url",
    [
        "http://192.0.2.2:80\\@127.0.0.1/",  # loopback to urllib.parse, a connection to 192.0.2.2 for urllib3
        "http://user:pass@127.0.0.1/",
        "http://broker.example.com/",
    ],
)
def test_a_route_url_that_is_not_https_or_loopback_is_refused(url: str) -> None:
    with pytest.raises(ClientMisconfigured):
        TokenClient(url=url, audience="arn:aws:lambda:us-east-1:123456789012:function:token-broker")


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_redirect_to_another_origin_never_carries_the_token_there(
    adapter: str, tokens: TokenClient, profiles: Profiles, apis: Callable[..., Api]
) -> None:
    # Given API A, which redirects to B on another origin, and B, which refuses everything
    other = apis("127.0.0.2", [401])
    first = apis("127.0.0.1", [302], redirect_to=other.url)

    # When the adapter follows the redirect
    status = get_with(adapter, tokens, profiles.create(), first.url)

    # Then B never saw a token, and the 401 it gave was not taken for a refusal of the token
    assert status == 401
    assert other.seen == [None]
    assert len(first.seen) == 1
    assert first.seen[0] is not None
    assert first.seen[0].startswith("Bearer ")


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_401_is_retried_once_with_a_different_token(
    adapter: str,
    tokens: TokenClient,
    broker: Broker,
    profiles: Profiles,
    auth_server: LocalAuthorizationServer,
    apis: Callable[..., Api],
) -> None:
    broker.new_container(FORCE_REFRESH_COOLDOWN_SECONDS="0")  # a force_refresh fetches anew
    api = apis("127.0.0.1", [401, 200])

    assert get_with(adapter, tokens, profiles.create(), api.url) == 200
    first, second = api.seen
    assert first != second
    assert second == f"Bearer {auth_server.issued[-1]}"


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_401_within_the_brokers_cooldown_is_not_retried_with_the_same_token(
    adapter: str, tokens: TokenClient, profiles: Profiles, apis: Callable[..., Api]
) -> None:
    # Given a broker that shares the last fetch with force_refresh requests for 30 s (the default)
    api = apis("127.0.0.1", [401])

    # When the API refuses a token fetched a moment ago
    status = get_with(adapter, tokens, profiles.create(), api.url)

    # Then the refusal is the answer: the same token would be refused again
    assert status == 401
    assert len(api.seen) == 1


LIBRARY_ERRORS = {
    "requests": requests.RequestException,
    "httpx": httpx.RequestError,
    "urllib3": urllib3.exceptions.HTTPError,
}


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_an_adapters_failure_to_get_a_token_is_its_librarys_error_too(
    adapter: str, profiles: Profiles, consumer_session: Any, apis: Callable[..., Api]
) -> None:
    # Given a client whose broker cannot be reached (nothing listens on port 9)
    unreachable = TokenClient(
        url="http://127.0.0.1:9", audience="arn:aws:lambda:us-east-1:123456789012:function:b", session=consumer_session
    )
    api = apis("127.0.0.1", [200])

    # When a request through the adapter needs a token
    with pytest.raises(LIBRARY_ERRORS[adapter]) as raised:
        get_with(adapter, unreachable, profiles.create(), api.url)

    # Then the HTTP library's own `except` catches it, and it is still the broker client's error
    assert isinstance(raised.value, BrokerUnreachable)
    assert (raised.value.error, raised.value.status, raised.value.retryable) == ("broker_unreachable", 503, True)
    assert isinstance(raised.value.__cause__, BrokerUnreachable)
    assert api.seen == []  # nothing was sent without a token


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_an_adapters_error_keeps_no_token_in_the_request_it_holds(
    adapter: str,
    tokens: TokenClient,
    broker: Broker,
    profiles: Profiles,
    apis: Callable[..., Api],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an API that refuses the token, and a broker that cannot be reached for another
    api = apis("127.0.0.1", [401])
    profile = profiles.create()
    sent = tokens.get_token(profile)

    def unreachable(*args: Any) -> Any:
        raise BrokerUnreachable("the broker could not be reached")

    monkeypatch.setattr(tokens._transport, "ask", unreachable)

    # When the adapter asks for a new token after the 401, and fails
    with pytest.raises(LIBRARY_ERRORS[adapter]) as raised:
        get_with(adapter, tokens, profile, api.url)

    # Then the error (which a caller may log) holds no token, in its request or its response's
    assert api.seen == [f"Bearer {sent}"]
    held = [getattr(raised.value, "request", None), getattr(getattr(raised.value, "response", None), "request", None)]
    for request in (r for r in held if r is not None):
        assert "Authorization" not in request.headers
    assert sent not in repr(vars(raised.value))
