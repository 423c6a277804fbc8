"""Fixtures: moto's server and the local authorization server for the session, a fresh broker
"container" per test, profiles on demand, and the suite-wide check that nothing leaks."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from devstack.authserver import LocalAuthorizationServer
from devstack.aws import LocalAws
from devstack.container import ContainerProcess
from devstack.lambda_host import BROKER_ENVIRONMENT, Invocation, invoke, load_handler_module, put_on_path
from devstack.stack import create_profile

put_on_path()

EVENTS = Path(__file__).parent / "events"
# Everything the broker said during the suite: log records at DEBUG, metrics, error answers
# and the output of every broker process. Searched for secrets and tokens at the end.
BROKER_OUTPUT: list[str] = []
SECRETS_USED: set[str] = set()


# Loggers of the local servers that run inside the test process: they are not the broker.
LOCAL_SERVERS = ("moto", "werkzeug", "authlib", "flask", "devstack")


class _Recorder(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(LOCAL_SERVERS):
            BROKER_OUTPUT.append(record.getMessage() + " " + repr(record.__dict__))


@pytest.fixture(scope="session")
def local_aws() -> Iterator[LocalAws]:
    aws = LocalAws().start()
    yield aws
    aws.stop()


@pytest.fixture(scope="session")
def auth_server() -> Iterator[LocalAuthorizationServer]:
    with LocalAuthorizationServer() as server:
        yield server


@pytest.fixture(scope="session")
def broker_environment(local_aws: LocalAws) -> dict[str, str]:
    """The environment of a broker container; DEBUG, so the leak check sees everything."""
    return {
        **local_aws.environment(),
        **BROKER_ENVIRONMENT,
        "POWERTOOLS_LOG_LEVEL": "DEBUG",
        "TOKEN_TABLE_NAME": local_aws.create_token_table(),
        # as deployed: the template always sets a key, so cached tokens are sealed
        "TOKEN_KMS_KEY_ID": local_aws.create_kms_key(),
    }


@contextlib.contextmanager
def log_records_off() -> Iterator[None]:
    """For a memory measurement: the log records that the leak check and pytest's log capture
    keep would count as the broker's growth, so no records are made meanwhile."""
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


@pytest.fixture(scope="session")
def app_module(broker_environment: dict[str, str]) -> ModuleType:
    os.environ.update(broker_environment)
    app = load_handler_module()
    recorder = _Recorder(level=logging.DEBUG)
    for logger in (logging.getLogger(), logging.getLogger(BROKER_ENVIRONMENT["POWERTOOLS_SERVICE_NAME"])):
        logger.addHandler(recorder)
    logging.getLogger().setLevel(logging.DEBUG)
    return app


@pytest.fixture(scope="session", autouse=True)
def no_secret_leaks(auth_server: LocalAuthorizationServer) -> Iterator[None]:
    """Contract promise 8, over the whole suite: no secret or token in anything the broker said."""
    yield
    corpus = "\n".join(BROKER_OUTPUT)
    if auth_server.issued:
        assert corpus, "tokens were issued, yet the leak check saw no broker output"
    sensitive = SECRETS_USED | set(auth_server.issued)
    leaked = sorted(value for value in sensitive if value in corpus)
    assert not leaked, f"{len(leaked)} secrets or tokens appear in the broker's output"


@dataclass
class Profiles:
    """Creates profiles whose OAuth clients exist on the local authorization server."""

    aws: LocalAws
    server: LocalAuthorizationServer
    prefix: str = BROKER_ENVIRONMENT["SECRET_PREFIX"]

    def create(self, auth_method: str = "client_secret_basic", **fields: Any) -> str:
        name = f"p-{secrets.token_hex(4)}"
        document = create_profile(self.aws, self.server, name, f"client-{secrets.token_hex(4)}", auth_method, **fields)
        SECRETS_USED.add(document["client_secret"])
        return name

    def put(self, name: str, document: dict[str, Any] | str) -> None:
        if isinstance(document, dict) and isinstance(document.get("client_secret"), str):
            SECRETS_USED.add(document["client_secret"])
        self.aws.put_profile(self.prefix + name, document)

    def document(self, name: str) -> dict[str, Any]:
        secret = self.aws.client("secretsmanager").get_secret_value(SecretId=self.prefix + name)
        document: dict[str, Any] = json.loads(secret["SecretString"])
        return document

    def client_id(self, name: str) -> str:
        return str(self.document(name)["client_id"])


@pytest.fixture
def profiles(local_aws: LocalAws, auth_server: LocalAuthorizationServer) -> Iterator[Profiles]:
    yield Profiles(local_aws, auth_server)
    auth_server.reset()


@dataclass
class Broker:
    """The handler in this process, as one fresh Lambda container with its own table."""

    app: ModuleType
    table_name: str
    environment: dict[str, str]
    started: list[ContainerProcess] = field(default_factory=list)

    def invoke(self, event: Any, timeout_seconds: float = 15.0) -> Invocation:
        invocation = invoke(self.app, event, timeout_seconds)
        BROKER_OUTPUT.append(invocation.emitted)
        if "error" in invocation.answer:
            BROKER_OUTPUT.append(json.dumps(invocation.answer))
        return invocation

    def new_container(self, **overrides: str) -> None:
        """Forgets the memory tier, as a new container would; the table stays."""
        from broker.config import Settings
        from broker.wiring import build_service

        self.app.SERVICE = build_service(Settings.from_env({**self.environment, **overrides}))

    def container_processes(self, count: int, **overrides: str) -> list[ContainerProcess]:
        """`count` containers started side by side, each ready for its first event."""
        containers = [ContainerProcess.start({**self.environment, **overrides}, BROKER_OUTPUT) for _ in range(count)]
        self.started.extend(containers)
        for container in containers:
            container.wait_ready()
        return containers

    def container_process(self, **overrides: str) -> ContainerProcess:
        (container,) = self.container_processes(1, **overrides)
        return container


@pytest.fixture
def broker(app_module: ModuleType, broker_environment: dict[str, str], local_aws: LocalAws) -> Iterator[Broker]:
    environment = {**broker_environment, "TOKEN_TABLE_NAME": local_aws.create_token_table()}
    instance = Broker(app_module, environment["TOKEN_TABLE_NAME"], environment)
    instance.new_container()
    yield instance
    for container in instance.started:
        container.close()
