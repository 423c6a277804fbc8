"""token_client as a package: built, pip-installed into a fresh environment with only its locked
dependencies, and used through both transports and every adapter against the local stack's
Invoke API and HTTP route (what `make serve` serves), calling a resource server that refuses
each client's first token once."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import token_client
from devstack.local.lambda_api import LocalLambdaApi
from devstack.local.sts import Issued, LocalSts
from devstack.template import ROOT
from tests.conftest import Broker, Profiles, credentials_environment


class ResourceServer(BaseHTTPRequestHandler):
    """Answers 401 to the first request on each path, 200 after; records the tokens it saw."""

    seen: dict[str, list[str]] = {}

    def do_GET(self) -> None:  # http.server's name
        tokens = self.seen.setdefault(self.path, [])
        tokens.append(self.headers.get("Authorization", ""))
        self.send_response(401 if len(tokens) == 1 else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def resource_server() -> Iterator[str]:
    ResourceServer.seen = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), ResourceServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh environment with token_client installed as a user would, from its locked
    dependencies (hash-checked) and a wheel built from layers/token_client."""
    work = tmp_path_factory.mktemp("token-client")
    # built from a copy: setuptools leaves build/ and egg-info beside the sources it builds
    source = shutil.copytree(ROOT / "layers/token_client", work / "source")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(work), str(source)], check=True)
    (wheel,) = work.glob("token_client-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
    python = str(work / "venv" / "bin" / "python")
    install = [python, "-m", "pip", "install", "--disable-pip-version-check", "--quiet", "--no-deps"]
    subprocess.run([*install, "--require-hashes", "-r", str(ROOT / "requirements-consumer.txt")], check=True)
    subprocess.run([*install, str(wheel)], check=True)
    return Path(python)


@pytest.mark.slow
def test_the_installed_package_works_through_each_transport_and_adapter(
    installed: Path,
    broker: Broker,
    profiles: Profiles,
    consumer: Issued,
    local_sts: LocalSts,
    resource_server: str,
    auth_server: Any,
) -> None:
    # Given the local stack's endpoints, and a broker that renews on every force_refresh
    broker.new_container(FORCE_REFRESH_COOLDOWN_SECONDS="0")
    api = LocalLambdaApi(broker.app, local_sts).start()
    profile = profiles.create(scopes=["orders.read"])
    environment = {
        **credentials_environment(consumer),
        "AWS_ENDPOINT_URL_LAMBDA": api.endpoint_url,
    }
    try:
        # When a program in that environment uses every door
        finished = subprocess.run(
            [
                str(installed),
                str(ROOT / "tests/consumers/use_every_door.py"),
                api.function_arn,
                api.endpoint_url,
                profile,
                resource_server,
            ],
            capture_output=True,
            text=True,
            env=environment,
            timeout=120,
            check=False,
        )
    finally:
        api.stop()
    assert finished.returncode == 0, finished.stderr[-3000:]
    results = json.loads(finished.stdout)

    # Then it ran the installed copy, of the version the package says, whose core imports neither
    # requests nor httpx
    assert str(installed.parent.parent) in results["location"]
    assert results["version"] == [token_client.__version__] * 2
    assert results["core_imports"] == []
    assert results["lambda"] is True
    assert results["http"] == "orders.read"
    # and every adapter, refused once, invalidated that token and succeeded with a new one
    assert results["requests"] == [200, 1]
    assert results["httpx"] == results["httpx_async"] == results["urllib3"] == 200
    for path, tokens in ResourceServer.seen.items():
        assert len(tokens) == 2, path
        assert tokens[0].startswith("Bearer ")
        assert tokens[0] != tokens[1], f"{path} retried with the refused token"
        assert tokens[1].removeprefix("Bearer ") in auth_server.issued
