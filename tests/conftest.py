"""Fixtures: moto's server and the local authorization server for the session, a fresh broker
"container" per test, profiles on demand, and the suite-wide check that nothing leaks."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from devstack.local.authserver import LocalAuthorizationServer
from devstack.local.aws import LocalAws
from devstack.local.container import ContainerProcess
from devstack.local.lambda_api import LocalLambdaApi
from devstack.local.lambda_host import BROKER_ENVIRONMENT, Invocation, invoke, load_handler_module, put_on_path
from devstack.local.resource_server import LocalResourceServer
from devstack.local.stack import create_profile, create_web_identity_profile
from devstack.local.sts import Issued, LocalSts, credentials_environment, with_proof
from tests import emf

put_on_path()
# Generated inputs: 300 examples a property in the full suite, 30 in `make test-fast`
# (--hypothesis-profile=fast). Fixtures are per test, not per example: each example starts from
# what the test's fixtures made.
settings.register_profile(
    "default", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.register_profile("fast", parent=settings.get_profile("default"), max_examples=30)
settings.load_profile("default")
# The broker logs at DEBUG throughout the suite, so that the leak check reads every line it can
# write: set before any test module imports the broker's Logger.
os.environ["POWERTOOLS_LOG_LEVEL"] = "DEBUG"

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
def resource_server_session(auth_server: LocalAuthorizationServer) -> Iterator[LocalResourceServer]:
    server = LocalResourceServer(auth_server).start()
    yield server
    server.stop()


@pytest.fixture
def resource_server(resource_server_session: LocalResourceServer) -> Iterator[LocalResourceServer]:
    """An API that takes the local authorization server's tokens, DPoP-bound ones with proofs."""
    yield resource_server_session
    resource_server_session.reset()


@pytest.fixture(scope="session")
def local_sts() -> Iterator[LocalSts]:
    sts = LocalSts().start()
    yield sts
    sts.stop()


# The role whose sessions call the broker in the tests, and which test profiles admit.
CONSUMER_ROLE = "orders-consumer"
CONSUMER_ROLE_ARN = f"arn:aws:iam::123456789012:role/{CONSUMER_ROLE}"


@pytest.fixture(scope="session")
def consumer(local_sts: LocalSts) -> Issued:
    """Session credentials of the consumer role, as a Lambda with that role has them."""
    issued = local_sts.assume_role(CONSUMER_ROLE, "orders-fn")
    SECRETS_USED.update({issued.credentials.secret_key, issued.credentials.token or ""})
    return issued


@pytest.fixture
def consumer_session(consumer: Issued) -> Any:
    """The consumer role's boto3 session, as its Lambda has it."""
    import boto3

    return boto3.session.Session(
        aws_access_key_id=consumer.credentials.access_key,
        aws_secret_access_key=consumer.credentials.secret_key,
        aws_session_token=consumer.credentials.token,
        region_name="us-east-1",
    )


# The broker's own role: what its functions' credentials are (moto takes any, the local STS
# knows these), and what web identity tokens name as their subject.
BROKER_ROLE = "token-broker-function"
BROKER_ROLE_ARN = f"arn:aws:iam::123456789012:role/{BROKER_ROLE}"


@pytest.fixture(scope="session")
def broker_environment(local_aws: LocalAws, local_sts: LocalSts) -> dict[str, str]:
    """The environment of a broker container; DEBUG, so the leak check sees everything."""
    broker_role = local_sts.assume_role(BROKER_ROLE, "token-broker")
    SECRETS_USED.update({broker_role.credentials.secret_key, broker_role.credentials.token or ""})
    return {
        **local_aws.environment(),
        **credentials_environment(broker_role),
        "AWS_ENDPOINT_URL_STS": local_sts.url,
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


@pytest.fixture(scope="session", autouse=True)
def app_module(broker_environment: dict[str, str]) -> ModuleType:
    """The broker's handler module, loaded as Lambda loads it, with the broker's environment in
    `os.environ` from the first test of every session (of every xdist worker), whatever runs first."""
    os.environ.update(broker_environment)
    app = load_handler_module()
    recorder = _Recorder(level=logging.DEBUG)
    for logger in (logging.getLogger(), logging.getLogger(BROKER_ENVIRONMENT["POWERTOOLS_SERVICE_NAME"])):
        logger.addHandler(recorder)
    logging.getLogger().setLevel(logging.DEBUG)
    assert app.logger.log_level == logging.DEBUG, "the broker's Logger was made before the suite set DEBUG"
    return app


@pytest.fixture(scope="session", autouse=True)
def no_secret_leaks(auth_server: LocalAuthorizationServer, local_sts: LocalSts) -> Iterator[None]:
    """Contract promise 8, over the whole suite: no secret, key, token or web identity token in
    anything the broker said."""
    yield
    corpus = "\n".join(BROKER_OUTPUT)
    if auth_server.issued:
        assert corpus, "tokens were issued, yet the leak check saw no broker output"
    issued = set(auth_server.issued) | set(local_sts.web_identity_tokens) | local_sts.issued_secrets()
    found = leaked(corpus, SECRETS_USED | issued)
    assert not found, f"{len(found)} secrets or tokens appear in the broker's output"


# What the leak check looks for is what could really leak: secrets the tests generated and tokens
# the servers issued, all far longer than this. A shorter value (a one-character junk signature
# some test registered, say) is found in any JSON line by chance.
MIN_SECRET_CHARACTERS = 16


def leaked(corpus: str, sensitive: set[str]) -> list[str]:
    """The values of `sensitive` that appear in `corpus`, of those long enough to be unmistakable."""
    return sorted(value for value in sensitive if len(value) >= MIN_SECRET_CHARACTERS and value in corpus)


@pytest.fixture(scope="session", autouse=True)
def every_metric_is_registered() -> Iterator[None]:
    """Every metric the broker emitted during the suite (its EMF lines, from this process and
    from every container process) is one `observability.EMITTED` names, with those dimensions,
    in a document CloudWatch can read: the dashboard and the alarms are held to that registry."""
    yield
    from broker.observability import EMITTED

    emitted: set[tuple[str, tuple[str, ...]]] = set()
    for output in BROKER_OUTPUT:
        for line in output.splitlines():
            if '"_aws":' not in line:
                continue
            document = json.loads(line)
            assert not emf.problems(document), (emf.problems(document), line)
            for directive in document["_aws"]["CloudWatchMetrics"]:
                for dimensions in directive["Dimensions"]:
                    emitted |= {(metric["Name"], tuple(sorted(dimensions))) for metric in directive["Metrics"]}
    unregistered = sorted(entry for entry in emitted if EMITTED.get(entry[0]) != entry[1])
    assert not unregistered, f"metrics emitted but not in observability.EMITTED: {unregistered}"


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def broker_log(app_module: ModuleType) -> Iterator[list[logging.LogRecord]]:
    """The broker's log records during one test, as its Logger made them."""
    collector = _Collector()
    logger = logging.getLogger(BROKER_ENVIRONMENT["POWERTOOLS_SERVICE_NAME"])
    logger.addHandler(collector)
    yield collector.records
    logger.removeHandler(collector)


class _Lines(io.TextIOBase):
    """A stream that keeps every JSON line written to it, and passes everything on."""

    def __init__(self, onward: Any) -> None:
        self.onward = onward
        self.lines: list[dict[str, Any]] = []

    def write(self, text: str) -> int:
        self.lines.extend(json.loads(line) for line in text.splitlines() if line.startswith("{"))
        return int(self.onward.write(text))

    def flush(self) -> None:
        self.onward.flush()


@pytest.fixture
def broker_lines(app_module: ModuleType) -> Iterator[list[dict[str, Any]]]:
    """The broker's log lines during one test, as JSON objects exactly as its Logger's stream
    receives them (the audit line included, which is written there without a log record)."""
    handler = app_module.logger.registered_handler
    lines = _Lines(handler.stream)
    previous = handler.setStream(lines)
    yield lines.lines
    handler.setStream(previous)


def http_event(
    body: Any = None,
    *,
    signer: Issued | None = None,
    gateway_caller: str | None = None,
    path: str | None = None,
    method: str | None = None,
    is_base64: bool | None = None,
) -> dict[str, Any]:
    """The sample HTTP API event from tests/events with another body, path or method. A body
    without a `caller_proof` gets one signed by `signer`; `gateway_caller` is the principal
    API Gateway's IAM authorizer names (None: the event names none)."""
    event: dict[str, Any] = copy.deepcopy(json.loads((EVENTS / "http_token_request.json").read_text()))
    if body is not None:
        if signer is not None:
            body = with_proof(body, signer)
        event["body"] = body if isinstance(body, str) else json.dumps(body)
    if gateway_caller is None:
        del event["requestContext"]["authorizer"]
    else:
        event["requestContext"]["authorizer"]["iam"]["userArn"] = gateway_caller
    if path is not None:
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
    if method is not None:
        event["requestContext"]["http"]["method"] = method
    if is_base64 is not None:
        event["isBase64Encoded"] = is_base64
    return event


# The private members of a JWK: each is as secret as the token it is bound to.
PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi")


def remember_dpop_key(answer: Any) -> None:
    """Every private part of a DPoP key a broker handed out joins what must never leak."""
    key = answer.get("dpop_key") if isinstance(answer, dict) else None
    if isinstance(key, dict):
        SECRETS_USED.update(str(key[name]) for name in PRIVATE_JWK_MEMBERS if name in key)


def _remember_proof(request: Any) -> None:
    """A proof is a credential for 5 minutes: its signature must never be logged. Only a real
    one counts (64 hex digits): a generated junk signature such as `'` is in any JSON line."""
    proof = request.get("caller_proof") if isinstance(request, dict) else None
    signature = proof.get("signature") if isinstance(proof, dict) else None
    if isinstance(signature, str) and re.fullmatch(r"[0-9a-f]{64}", signature):
        SECRETS_USED.add(signature)


@dataclass
class Profiles:
    """Creates profiles whose OAuth clients exist on the local authorization server."""

    aws: LocalAws
    server: LocalAuthorizationServer
    sts: LocalSts
    prefix: str = BROKER_ENVIRONMENT["SECRET_PREFIX"]

    def create(self, auth_method: str = "client_secret_basic", **fields: Any) -> str:
        """A profile that admits the consumer role unless `allowed_callers` says otherwise."""
        fields.setdefault("allowed_callers", [CONSUMER_ROLE_ARN])
        name = f"p-{secrets.token_hex(4)}"
        document = create_profile(self.aws, self.server, name, f"client-{secrets.token_hex(4)}", auth_method, **fields)
        SECRETS_USED.add(document["client_secret"])
        return name

    def create_web_identity(self, trusting: dict[str, Any] | None = None, **fields: Any) -> str:
        """A secretless profile with its own role, whose client trusts that role's JWTs (or what
        `trusting` changes); it admits the consumer role unless `allowed_callers` says otherwise."""
        fields.setdefault("allowed_callers", [CONSUMER_ROLE_ARN])
        name = f"p-{secrets.token_hex(4)}"
        client_id = f"client-{secrets.token_hex(4)}"
        create_web_identity_profile(self.aws, self.server, self.sts, name, client_id, trusting, **fields)
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
def profiles(local_aws: LocalAws, auth_server: LocalAuthorizationServer, local_sts: LocalSts) -> Iterator[Profiles]:
    yield Profiles(local_aws, auth_server, local_sts)
    auth_server.reset()
    local_sts.reset()


@dataclass
class Broker:
    """The handler in this process, as one fresh Lambda container with its own table."""

    app: ModuleType
    aws: LocalAws
    table_name: str
    environment: dict[str, str]
    caller: Issued
    clients: Any
    started: list[ContainerProcess] = field(default_factory=list)

    def invoke(self, event: Any, timeout_seconds: float = 15.0, caller: Issued | None = None) -> Invocation:
        """A direct invocation; a request without a `caller_proof` gets one, signed by `caller`
        (default: the consumer role that test profiles admit)."""
        event = with_proof(event, caller or self.caller)
        _remember_proof(event)
        return self._record(invoke(self.app, event, timeout_seconds))

    def invoke_unsigned(self, event: Any) -> Invocation:
        """A direct invocation exactly as given: no proof is added."""
        return self._record(invoke(self.app, event))

    def invoke_http(self, event: Any, timeout_seconds: float = 15.0) -> Invocation:
        """The HTTP function, with exactly this event."""
        with contextlib.suppress(ValueError, TypeError, KeyError):
            _remember_proof(json.loads(event["body"]))
        return self._record(invoke(self.app, event, timeout_seconds, handler="http_handler"))

    def post(self, body: Any, caller: Issued | None = None, timeout_seconds: float = 15.0) -> Invocation:
        """The HTTP function as API Gateway invokes it for `caller` (default: the consumer), who
        signed the HTTP request and the body's caller proof."""
        signer = caller or self.caller
        return self.invoke_http(http_event(body, signer=signer, gateway_caller=signer.arn), timeout_seconds)

    def _record(self, invocation: Invocation) -> Invocation:
        remember_dpop_key(invocation.answer)
        BROKER_OUTPUT.append(invocation.emitted)
        if "error" in invocation.answer:
            BROKER_OUTPUT.append(json.dumps(invocation.answer))
        return invocation

    def new_container(self, *, fresh_clients: bool = False, **overrides: str) -> None:
        """Forgets the memory tier and the verified identities, as a new container would; the
        table stays. The AWS clients are the suite's, made once (they hold no state of the
        broker's), unless `fresh_clients` makes them anew from the process's environment."""
        from broker.config import Settings
        from broker.wiring import aws_clients, build_caller_identity, build_service

        settings = Settings.from_env({**self.environment, **overrides})
        self.app.SERVICE = build_service(settings, aws_clients() if fresh_clients else self.clients)
        self.app.IDENTITY = build_caller_identity(settings)

    def with_own_table(self) -> None:
        """A table for this test alone (a test that scans it), and a new container on it."""
        self.table_name = self.environment["TOKEN_TABLE_NAME"] = self.aws.create_token_table()
        self.new_container()

    def cache_key(self, profiles: Profiles, profile: str, scopes: frozenset[str] = frozenset()) -> str:
        """The table's key for a profile's token, as the broker computes it."""
        from broker.profiles import cache_key, parse_profile

        return cache_key(parse_profile(profile, json.dumps(profiles.document(profile))), scopes)

    def seed_token(self, profiles: Profiles, profile: str, *, life_left: int, age: int) -> str:
        """Given a token in the table, stored as a broker stores it, with `life_left` seconds to
        go and fetched `age` seconds ago; returns it."""
        from broker.config import Settings
        from broker.profiles import parse_profile
        from devstack.measure.fleet_model import seed_token

        value = f"seeded-{profile}-{secrets.token_hex(4)}"
        parsed = parse_profile(profile, json.dumps(profiles.document(profile)))
        settings = Settings.from_env(self.environment)
        seed_token(settings, self.clients, parsed, life_left=life_left, age=age, value=value)
        return value

    def item(self, profiles: Profiles, profile: str) -> dict[str, Any]:
        """The profile's cache item as DynamoDB holds it."""
        key = {"cache_key": {"S": self.cache_key(profiles, profile)}}
        item: dict[str, Any] = self.aws.client("dynamodb").get_item(TableName=self.table_name, Key=key).get("Item", {})
        return item

    def put_item(self, item: dict[str, Any]) -> None:
        """Writes an item exactly as given, as a table writer without the broker's code could."""
        self.aws.client("dynamodb").put_item(TableName=self.table_name, Item=item)

    def container_processes(self, count: int, **overrides: str) -> list[ContainerProcess]:
        """`count` containers started side by side, each ready for its first event; events sent
        to them get the consumer's caller proof."""
        containers = [
            ContainerProcess.start({**self.environment, **overrides}, BROKER_OUTPUT, self.caller) for _ in range(count)
        ]
        self.started.extend(containers)
        for container in containers:
            container.wait_ready()
        return containers

    def container_process(self, **overrides: str) -> ContainerProcess:
        (container,) = self.container_processes(1, **overrides)
        return container


@pytest.fixture
def lambda_api(broker: Broker, local_sts: LocalSts) -> Iterator[LocalLambdaApi]:
    """The broker container behind a local Lambda Invoke API and HTTP route (what `make serve` serves)."""
    api = LocalLambdaApi(broker.app, local_sts, output=BROKER_OUTPUT).start()
    yield api
    api.stop()


@pytest.fixture
def lambda_client(lambda_api: LocalLambdaApi, consumer_session: Any) -> Any:
    """A boto3 Lambda client of the consumer role, for the local Invoke API."""
    return consumer_session.client("lambda", endpoint_url=lambda_api.endpoint_url)


@pytest.fixture
def tokens(lambda_api: LocalLambdaApi, consumer_session: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A TokenClient of the consumer role, invoking the local broker directly as it ships: signing
    each Invoke itself, sent where the SDK would send it (`AWS_ENDPOINT_URL_LAMBDA`)."""
    from token_client import TokenClient

    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", lambda_api.endpoint_url)
    return TokenClient(function_name=lambda_api.function_arn, session=consumer_session)


@pytest.fixture(scope="session")
def shared_clients(app_module: ModuleType) -> Any:
    """The broker's AWS clients, made once for the suite from the broker's environment."""
    from broker.wiring import aws_clients

    return aws_clients()


@pytest.fixture
def broker(
    app_module: ModuleType,
    broker_environment: dict[str, str],
    local_aws: LocalAws,
    consumer: Issued,
    shared_clients: Any,
) -> Iterator[Broker]:
    """A fresh container on the suite's table: every test's profiles, so keys, are its own."""
    environment = dict(broker_environment)
    instance = Broker(app_module, local_aws, environment["TOKEN_TABLE_NAME"], environment, consumer, shared_clients)
    instance.new_container()
    yield instance
    for container in instance.started:
        container.close()
