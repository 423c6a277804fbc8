"""token_client, the consumer library, invoking the broker through the local Invoke API, which
checks each Invoke's SigV4 signature as Lambda does and runs the broker's real handler: signing
the Invoke itself (as it ships), or through a boto3 Lambda client it is given."""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest
from botocore.config import Config

from devstack.local.authserver import LocalAuthorizationServer
from devstack.local.lambda_api import LocalLambdaApi
from devstack.local.lambda_host import FUNCTION_ARN
from devstack.local.loopback import LoopbackServer
from devstack.local.sts import Issued, LocalSts
from tests.conftest import Broker, Profiles, credentials_environment
from token_client import (
    BrokerForbidden,
    BrokerNotFound,
    BrokerUnreachable,
    ClientMisconfigured,
    TokenBrokerError,
    TokenClient,
)


def without_proof(event: dict[str, Any]) -> dict[str, Any]:
    assert "caller_proof" in event, "token_client attaches a caller proof to every invocation"
    return {name: value for name, value in event.items() if name != "caller_proof"}


def test_the_token_is_the_brokers_and_a_second_call_makes_no_invocation(
    tokens: TokenClient, lambda_api: LocalLambdaApi, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create(scopes=["customScope"])

    first = tokens.get_token(profile, scopes=["customScope"], min_ttl=60)
    second = tokens.get_token(profile, scopes=["customScope"], min_ttl=60)

    assert first == second == auth_server.issued[-1]
    assert len(lambda_api.invocations) == 1
    assert without_proof(lambda_api.invocations[0]) == {"profile": profile, "scopes": ["customScope"], "min_ttl": 60}


def test_the_broker_is_named_by_the_environment(
    lambda_api: LocalLambdaApi, profiles: Profiles, consumer: Issued, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in credentials_environment(consumer).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TOKEN_BROKER_FUNCTION", lambda_api.function_arn)
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", lambda_api.endpoint_url)
    profile = profiles.create()

    headers = TokenClient().auth_header(profile)

    assert headers["Authorization"].startswith("Bearer ")
    assert len(lambda_api.invocations) == 1


def test_without_a_broker_name_it_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOKEN_BROKER_FUNCTION", raising=False)
    with pytest.raises(ValueError, match="TOKEN_BROKER_FUNCTION"):
        TokenClient()


def test_an_error_answer_raises_token_broker_error(tokens: TokenClient, profiles: Profiles) -> None:
    profile = profiles.create(allowed_scopes=["orders.read"])

    with pytest.raises(TokenBrokerError) as raised:
        tokens.get_token(profile, scopes=["admin"])

    assert (raised.value.error, raised.value.status) == ("invalid_scope", 400)
    assert "admin" in raised.value.description


def test_an_unknown_function_is_broker_not_found_and_not_retryable(lambda_client: Any, consumer_session: Any) -> None:
    other = TokenClient(
        function_name="arn:aws:lambda:us-east-1:123456789012:function:no-such-function",
        lambda_client=lambda_client,
        session=consumer_session,
    )

    with pytest.raises(BrokerNotFound) as raised:
        other.get_token("p")

    assert (raised.value.error, raised.value.status, raised.value.retryable) == ("broker_not_found", 404, False)
    assert "no-such-function" in raised.value.description
    assert raised.value.__cause__ is not None  # botocore's own error, kept


def test_a_broker_that_cannot_be_reached_is_retryable_and_keeps_its_cause(consumer_session: Any) -> None:
    closed = consumer_session.client(  # nothing listens there; botocore's own retries would only add waits
        "lambda", endpoint_url="http://127.0.0.1:9", config=Config(retries={"max_attempts": 1})
    )
    other = TokenClient(function_name=FUNCTION_ARN, lambda_client=closed, session=consumer_session)

    with pytest.raises(BrokerUnreachable) as raised:
        other.get_token("p")

    assert (raised.value.error, raised.value.status, raised.value.retryable) == ("broker_unreachable", 503, True)
    assert raised.value.__cause__ is not None


def test_a_function_error_is_a_clear_token_broker_error(
    tokens: TokenClient, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(event: Any, context: Any) -> Any:
        raise RuntimeError("Task timed out after 15.00 seconds")

    monkeypatch.setattr(broker.app, "lambda_handler", crash)

    with pytest.raises(TokenBrokerError) as raised:
        tokens.get_token("okta-default")

    assert (raised.value.error, raised.value.status) == ("broker_failed", 502)


def test_eight_threads_on_a_fresh_client_make_one_invocation(
    tokens: TokenClient, lambda_api: LocalLambdaApi, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    profile = profiles.create()
    auth_server.delay = 0.3
    results: list[str] = []
    start = threading.Barrier(8)

    def ask() -> None:
        start.wait()
        results.append(tokens.get_token(profile))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(results) == 8
    assert len(set(results)) == 1
    assert len(lambda_api.invocations) == 1


def test_invalidate_leads_to_force_refresh(tokens: TokenClient, lambda_api: LocalLambdaApi, profiles: Profiles) -> None:
    profile = profiles.create()
    tokens.get_token(profile)

    tokens.invalidate(profile)
    tokens.get_token(profile)
    tokens.get_token(profile)

    assert [event.get("force_refresh", False) for event in lambda_api.invocations] == [False, True]


def test_a_min_ttl_above_the_cached_life_leads_to_a_new_invocation(
    tokens: TokenClient,
    lambda_api: LocalLambdaApi,
    broker: Broker,
    profiles: Profiles,
    auth_server: LocalAuthorizationServer,
) -> None:
    # Given the client holds an hour-long token with about 1000 s left
    profile = profiles.create()
    broker.seed_token(profiles, profile, life_left=1000, age=2600)
    tokens.get_token(profile)

    longer = tokens.get_token(profile, min_ttl=2000)

    assert len(lambda_api.invocations) == 2
    assert lambda_api.invocations[1]["min_ttl"] == 2000
    assert longer == auth_server.issued[-1]


class RotatingSession:
    """A boto3 session stand-in whose credentials change when told, as a role's do on renewal."""

    def __init__(self, caller: Issued) -> None:
        self.caller = caller

    def get_credentials(self) -> Any:
        frozen = self.caller.credentials
        return type("Credentials", (), {"get_frozen_credentials": lambda _self: frozen})()


def test_one_proof_serves_four_minutes_and_one_set_of_credentials(
    lambda_api: LocalLambdaApi,
    lambda_client: Any,
    profiles: Profiles,
    consumer: Issued,
    local_sts: LocalSts,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import token_client.caller_proof

    signed: list[dict[str, Any]] = []
    real_sign = token_client.caller_proof.sign_caller_proof

    def counting_sign(*args: Any) -> dict[str, Any]:
        signed.append(real_sign(*args))
        return signed[-1]

    monkeypatch.setattr(token_client.caller_proof, "sign_caller_proof", counting_sign)
    now = [1_000_000.0]
    session = RotatingSession(consumer)
    client = TokenClient(lambda_api.function_arn, lambda_client, session=session, clock=lambda: now[0])

    client.get_token(profiles.create())
    now[0] += 239
    client.get_token(profiles.create())  # the same proof, 239 s later
    now[0] += 2
    client.get_token(profiles.create())  # 241 s: a new one
    session.caller = local_sts.assume_role("orders-consumer", "orders-fn-renewed")
    client.get_token(profiles.create())  # new credentials: a new one at once

    assert len(signed) == 3
    proofs = [event["caller_proof"] for event in lambda_api.invocations]
    assert proofs[0] == proofs[1]
    assert proofs[3]["security_token"] == session.caller.credentials.token


def test_invalidating_an_old_token_never_evicts_a_newer_one(
    tokens: TokenClient, lambda_api: LocalLambdaApi, profiles: Profiles
) -> None:
    profile = profiles.create()
    current = tokens.token(profile)

    tokens.invalidate(profile, token="a-token-some-thread-held-before")  # not the one kept: ignored
    assert tokens.token(profile) == current
    tokens.invalidate(profile, token=current)  # the one kept: the next call renews
    tokens.token(profile)

    assert [event.get("force_refresh", False) for event in lambda_api.invocations] == [False, True]
    assert current.value not in repr(current)
    assert current.authorization == f"Bearer {current.value}"


def test_a_refused_invoke_permission_is_broker_forbidden_not_retryable(
    consumer_session: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from botocore.stub import Stubber

    lambda_client = consumer_session.client("lambda")
    stubber = Stubber(lambda_client)
    stubber.add_client_error("invoke", "AccessDeniedException", "not authorized to perform lambda:InvokeFunction", 403)
    client = TokenClient(function_name=FUNCTION_ARN, lambda_client=lambda_client, session=consumer_session)

    with stubber, caplog.at_level("DEBUG", logger="token_client"), pytest.raises(BrokerForbidden) as raised:
        client.get_token("p")

    assert (raised.value.error, raised.value.status, raised.value.retryable) == ("broker_forbidden", 403, False)
    assert "lambda:InvokeFunction" in raised.value.description
    assert raised.value.__cause__ is not None
    (record,) = [record for record in caplog.records if record.name == "token_client"]
    assert (record.getMessage(), record.error, record.transport) == (
        "no token from the broker",
        "broker_forbidden",
        "lambda",
    )


def test_the_logger_says_where_a_token_came_from_never_the_token(
    tokens: TokenClient, profiles: Profiles, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("DEBUG", logger="token_client"):
        value = tokens.get_token(profiles.create())

    records = [record for record in caplog.records if record.name == "token_client"]
    assert [record.getMessage() for record in records] == ["token from the broker"]
    assert value not in repr(records[0].__dict__)


class GatedTransport:
    """token_client's own transport, held at a gate while a test looks at other threads."""

    def __init__(self, transport: Any) -> None:
        self.name = transport.name
        self._transport = transport
        self.entered, self.gate = threading.Event(), threading.Event()
        self.asked: list[dict[str, Any]] = []

    def ask(self, request: dict[str, Any], request_id: str) -> dict[str, Any]:
        self.asked.append(request)
        self.entered.set()
        self.gate.wait(10)
        answer: dict[str, Any] = self._transport.ask(request, request_id)
        return answer


def test_in_the_advisory_window_one_thread_renews_while_the_others_keep_the_current_token(
    lambda_api: LocalLambdaApi, lambda_client: Any, consumer_session: Any, profiles: Profiles
) -> None:
    # Given a client holding an hour-long token (on a clock it is told)
    now = [1_000_000.0]
    client = TokenClient(lambda_api.function_arn, lambda_client, session=consumer_session, clock=lambda: now[0])
    profile = profiles.create()
    current = client.token(profile)
    gated = client._transport = GatedTransport(client._transport)  # type: ignore[assignment]

    # When it is 100 s from expiry (inside 60 s + the 60 s floor), and one thread asks, held in its call
    now[0] = current.expires_at - 100
    renewing = threading.Thread(target=client.token, args=(profile,))
    renewing.start()
    assert gated.entered.wait(10)
    # Then other threads get the current token at once, without a call of their own
    assert [client.token(profile) for _ in range(3)] == [current] * 3
    assert len(gated.asked) == 1
    assert gated.asked[0]["min_ttl"] == 120  # a token that outlives the advisory window
    gated.gate.set()
    renewing.join(10)
    assert client.token(profile).expires_at > current.expires_at


def test_a_failed_advisory_call_keeps_the_current_token_and_the_mandatory_window_asks_again(
    lambda_api: LocalLambdaApi,
    lambda_client: Any,
    consumer_session: Any,
    profiles: Profiles,
    auth_server: LocalAuthorizationServer,
) -> None:
    # Given tokens of 70 s: the advisory window (a quarter of a token's life) opens at once, and asks
    # for a token that outlives it by the 60 s floor, which the broker refuses (no fresh token lives
    # that long)
    auth_server.lifetime = 70
    now = [1_000_000.0]
    client = TokenClient(lambda_api.function_arn, lambda_client, session=consumer_session, clock=lambda: now[0])
    profile = profiles.create()
    current = client.token(profile)

    # When threads ask in the advisory window, then once it has fallen below the 60 s floor
    kept = [client.token(profile) for _ in range(3)]
    now[0] += 15
    renewed = client.token(profile)

    # Then the failed advisory call cost one invocation and kept the current token; the mandatory
    # window asked again. The broker answers the 70 s token with the life it has left when it answers
    # (69 or 68 s on a loaded machine), and the advisory call asks for a quarter of that beyond 60 s.
    assert kept == [current] * 3
    advisory_min_ttl = 60 + math.ceil((current.expires_at - current.received_at) / 4)
    assert advisory_min_ttl > 70
    assert [event.get("min_ttl") for event in lambda_api.invocations] == [None, advisory_min_ttl, None]
    assert renewed.expires_at > current.expires_at


def test_an_invoke_signed_with_credentials_sts_never_issued_is_client_misconfigured(
    lambda_api: LocalLambdaApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", lambda_api.endpoint_url)
    stranger = boto3.session.Session(
        aws_access_key_id="AKIAEXAMPLEEXAMPLE99", aws_secret_access_key="x" * 40, region_name="us-east-1"
    )
    client = TokenClient(function_name=lambda_api.function_arn, session=stranger)

    with pytest.raises(ClientMisconfigured) as raised:
        client.get_token("p")

    assert "UnrecognizedClientException" in raised.value.description
    assert not raised.value.retryable
    assert lambda_api.invocations == []


def test_an_unknown_function_invoked_by_the_client_itself_is_broker_not_found(
    lambda_api: LocalLambdaApi, consumer_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", lambda_api.endpoint_url)
    client = TokenClient(
        function_name=FUNCTION_ARN.replace("token-broker", "no-such-function"), session=consumer_session
    )

    with pytest.raises(BrokerNotFound, match="no-such-function"):
        client.get_token("p")


class ThrottledLambda:
    """Lambda answering every Invoke 429, as it does when the function's concurrency is spent
    (which no local function can be made to reach); counts the Invokes."""

    def __init__(self) -> None:
        self.invokes = 0
        self.server = LoopbackServer(self._wsgi, "throttled-lambda")
        self.server.start()

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.invokes += 1
        headers = [("x-amzn-ErrorType", "TooManyRequestsException"), ("Content-Type", "application/json")]
        start_response("429 Too Many Requests", headers)
        return [b'{"Reason":"ReservedFunctionConcurrentInvocationLimitExceeded","Type":"User"}']


def test_a_throttled_invoke_is_tried_twice_then_broker_unreachable(
    consumer_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    lambda_service = ThrottledLambda()
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", lambda_service.server.url)
    client = TokenClient(function_name=FUNCTION_ARN, session=consumer_session)
    try:
        with pytest.raises(BrokerUnreachable, match="TooManyRequestsException") as raised:
            client.get_token("p")
    finally:
        lambda_service.server.stop()

    assert lambda_service.invokes == 2
    assert raised.value.retryable


@pytest.mark.parametrize(
    ("environment", "endpoint"),
    [
        ({}, "https://lambda.eu-west-1.amazonaws.com"),
        ({"AWS_USE_FIPS_ENDPOINT": "true"}, "https://lambda-fips.eu-west-1.amazonaws.com"),
        ({"AWS_USE_DUALSTACK_ENDPOINT": "true"}, "https://lambda.eu-west-1.api.aws"),
        (
            {"AWS_ENDPOINT_URL": "https://vpce-1.lambda.eu-west-1.vpce.amazonaws.com/"},
            "https://vpce-1.lambda.eu-west-1.vpce.amazonaws.com",
        ),
        (
            {"AWS_ENDPOINT_URL": "https://elsewhere.example", "AWS_ENDPOINT_URL_LAMBDA": "http://127.0.0.1:3001"},
            "http://127.0.0.1:3001",
        ),
        (
            {"AWS_ENDPOINT_URL_LAMBDA": "http://127.0.0.1:3001", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"},
            "https://lambda.eu-west-1.amazonaws.com",
        ),
    ],
)
def test_the_invoke_goes_where_the_sdk_would_send_it(
    environment: dict[str, str], endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from token_client.caller_proof import Broker as BrokerArn
    from token_client.transports import lambda_endpoint

    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_LAMBDA", "AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    assert lambda_endpoint(BrokerArn("arn:aws:lambda:eu-west-1:123456789012:function:token-broker:live")) == endpoint


def test_an_endpoint_in_china_is_in_chinas_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    from token_client.caller_proof import Broker as BrokerArn
    from token_client.transports import lambda_endpoint

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_LAMBDA", raising=False)

    arn = "arn:aws-cn:lambda:cn-north-1:123456789012:function:token-broker"
    assert lambda_endpoint(BrokerArn(arn)) == "https://lambda.cn-north-1.amazonaws.com.cn"


@pytest.mark.parametrize(
    "url", ["http://lambda.example.com", "https://user:pass@lambda.example.com", "ftp://127.0.0.1"]
)
def test_an_endpoint_that_is_not_https_or_loopback_http_is_refused_before_any_request(
    url: str, consumer_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", url)

    with pytest.raises(ClientMisconfigured, match="AWS_ENDPOINT_URL_LAMBDA"):
        TokenClient(function_name=FUNCTION_ARN, session=consumer_session)


@pytest.mark.parametrize(
    ("scopes", "asked"),
    [("customScope", ["customScope"]), ("orders.read  customScope", ["customScope", "orders.read"])],
)
def test_a_string_of_scopes_is_oauths_space_separated_list(
    scopes: str, asked: list[str], tokens: TokenClient, lambda_api: LocalLambdaApi, profiles: Profiles
) -> None:
    profile = profiles.create(allowed_scopes=["customScope", "orders.read"])

    tokens.get_token(profile, scopes=scopes)
    tokens.get_token(profile, scopes=list(reversed(asked)))  # the same set: the token kept

    assert [without_proof(event) for event in lambda_api.invocations] == [{"profile": profile, "scopes": asked}]


def test_scopes_that_are_not_strings_are_a_type_error_before_any_call(
    tokens: TokenClient, lambda_api: LocalLambdaApi
) -> None:
    with pytest.raises(TypeError, match="space-separated"):
        tokens.get_token("p", scopes=[b"customScope"])  # type: ignore[list-item]
    assert lambda_api.invocations == []


def test_the_broker_is_named_by_its_arn_under_either_name(consumer_session: Any) -> None:
    by_arn = TokenClient(function_arn=FUNCTION_ARN, session=consumer_session)
    by_contract_name = TokenClient(function_name=FUNCTION_ARN, session=consumer_session)
    positional = TokenClient(FUNCTION_ARN, session=consumer_session)

    assert by_arn.function_arn == by_contract_name.function_arn == positional.function_arn == FUNCTION_ARN
    with pytest.raises(ClientMisconfigured, match="once"):
        TokenClient(function_arn=FUNCTION_ARN, function_name=FUNCTION_ARN + ":live", session=consumer_session)
    with pytest.raises(ClientMisconfigured, match="TokenBrokerAliasArn"):
        TokenClient(function_arn="token-broker", session=consumer_session)


def test_the_runbooks_first_token_one_liners_print_the_token_masked(
    lambda_api: LocalLambdaApi, profiles: Profiles, consumer: Issued, auth_server: LocalAuthorizationServer
) -> None:
    import re
    import subprocess
    import sys

    from devstack.template import ROOT

    # Given the runbook's one-liners, for a profile that admits the consumer
    profile = profiles.create(scopes=["orders.read"])
    runbook = (ROOT / "docs/RUNBOOK.md").read_text()
    one_liners = set(re.findall(r"`TOKEN_BROKER_FUNCTION=<TokenBrokerAliasArn> python -c '([^']+)'`", runbook))
    assert len(one_liners) == 1

    # When each runs as a consumer would, with the layer on its path
    for one_liner in one_liners:
        finished = subprocess.run(
            [sys.executable, "-c", one_liner.replace("okta-orders", profile)],
            env={
                **credentials_environment(consumer),
                "PATH": "/usr/bin:/bin",
                "PYTHONPATH": str(ROOT / "layers/token_client/python"),
                "TOKEN_BROKER_FUNCTION": lambda_api.function_arn,
                "AWS_ENDPOINT_URL_LAMBDA": lambda_api.endpoint_url,
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        # Then it printed what the token is, and never the token
        assert finished.returncode == 0, finished.stderr[-2000:]
        assert finished.stdout.startswith("Token(expires_at=")
        assert "scope='orders.read'" in finished.stdout
        assert auth_server.issued[-1] not in finished.stdout
