"""The example consumer, as users will copy it: token through the layer, API call, one retry on 401."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType

import pytest

from devstack.local.authserver import LocalAuthorizationServer
from devstack.local.lambda_api import LocalLambdaApi
from devstack.local.lambda_host import LambdaContext
from devstack.local.sts import Issued, LocalSts
from devstack.template import ROOT
from tests.conftest import Broker, Profiles, credentials_environment


class ProtectedApi(BaseHTTPRequestHandler):
    """Answers 401 to the first token it sees (as if revoked), 200 to any other."""

    seen: list[str] = []

    def do_GET(self) -> None:
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        self.seen.append(token)
        self.send_response(401 if token == self.seen[0] else 200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def protected_api() -> Iterator[str]:
    ProtectedApi.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ProtectedApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/orders"
    server.shutdown()


@pytest.fixture
def example(
    broker: Broker,
    profiles: Profiles,
    protected_api: str,
    consumer: Issued,
    local_sts: LocalSts,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[ModuleType]:
    # a token revoked seconds after it was issued: no cooldown, so force_refresh fetches anew
    broker.new_container(FORCE_REFRESH_COOLDOWN_SECONDS="0")
    api = LocalLambdaApi(broker.app, local_sts).start()
    for name, value in credentials_environment(consumer).items():  # the consumer function's role
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TOKEN_BROKER_FUNCTION", api.function_arn)
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", api.endpoint_url)
    monkeypatch.setenv("TOKEN_PROFILE", profiles.create())
    monkeypatch.setenv("TARGET_URL", protected_api)
    spec = importlib.util.spec_from_file_location("example_consumer", ROOT / "functions/example_consumer/app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    api.stop()


def test_the_example_calls_the_api_with_the_brokers_token_and_renews_on_401(
    example: ModuleType, auth_server: LocalAuthorizationServer
) -> None:
    result = example.lambda_handler({}, LambdaContext())

    assert result == {"ok": True, "status": 200}
    first, second = ProtectedApi.seen
    assert first != second
    assert [first, second] == auth_server.issued[-2:]
