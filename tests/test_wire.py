"""One wire, three copies: the broker, token_client (Python) and the Node.js client each carry the
constants they must agree on, since they ship apart. This test reads every copy and fails on any
difference (STYLE point 16), and names the pieces that stand twice on purpose (`duplicates`):
the STS partition suffixes, the loopback check and the function-ARN grammar."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from broker import caller_proof as broker_proof
from broker import dpop as broker_dpop
from broker.config import DEFAULT_MIN_TTL
from broker.endpoints import is_loopback
from broker.errors import BrokerError
from broker.sts import PARTITION_SUFFIXES
from broker.token_request import PROFILE_PATTERN, parse_request
from devstack.template import ROOT
from token_client import DEFAULT_MIN_TTL_SECONDS, errors
from token_client import caller_proof as client_proof
from token_client import dpop as client_dpop
from token_client.transports import _is_loopback as client_is_loopback

NODE = (ROOT / "docs/examples/node/token-client.mjs").read_text()


def node_constant(name: str) -> Any:
    """A `const NAME = <JSON-ish literal>;` of the Node client, read as JSON."""
    match = re.search(rf"^const {name} = (.+?);[ \t]*(?://[^\n]*)?$", NODE, re.MULTILINE | re.DOTALL)
    assert match is not None, f"the Node client has no const {name}"
    literal = re.sub(r"//[^\n]*", "", match.group(1))
    literal = re.sub(r"([{,]\s*)([A-Za-z_][\w]*)(\s*:)", r'\1"\2"\3', literal)  # unquoted keys
    literal = re.sub(r",(\s*})", r"\1", literal)  # trailing commas
    return json.loads(literal)


def node_regex(name: str) -> re.Pattern[str]:
    match = re.search(rf"^const {name} = /(.+)/([a-z]*);$", NODE, re.MULTILINE)
    assert match is not None, f"the Node client has no regex {name}"
    return re.compile(match.group(1), re.IGNORECASE if "i" in match.group(2) else 0)


def test_the_caller_proof_is_one_format_in_all_three() -> None:
    expected = (1, "Action=GetCallerIdentity&Version=2011-06-15", "application/x-www-form-urlencoded; charset=utf-8")
    for proof in (broker_proof, client_proof):
        assert expected == (proof.PROOF_VERSION, proof.BODY, proof.CONTENT_TYPE)
        assert proof.AUDIENCE_HEADER == "X-Token-Broker-Audience"
    node = (node_constant("PROOF_VERSION"), node_constant("PROOF_BODY"), node_constant("PROOF_CONTENT_TYPE"))
    assert node == expected
    assert node_constant("AUDIENCE_HEADER") == broker_proof.AUDIENCE_HEADER.lower()


def test_every_copy_knows_every_partitions_sts_domain() -> None:
    assert client_proof.PARTITION_SUFFIXES == PARTITION_SUFFIXES
    assert node_constant("STS_SUFFIX") == PARTITION_SUFFIXES


ARNS = [
    ("arn:aws:lambda:us-east-1:123456789012:function:token-broker-dev-TokenBrokerFunction-AbC", True),
    ("arn:aws:lambda:us-east-1:123456789012:function:tb-fn:live", True),
    ("arn:aws-cn:lambda:cn-north-1:123456789012:function:tb-fn:7", True),
    ("arn:aws-iso-b:lambda:us-isob-east-1:123456789012:function:tb-fn", True),
    ("arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:tb-fn:$LATEST", True),
    ("arn:aws:lambda:us-east-1:12345678901:function:tb-fn", False),
    ("arn:aws:lambda:us-east-1:123456789012:layer:tb-fn", False),
    ("arn:aws:lambda:us-east-1:123456789012:function:tb fn", False),
    ("token-broker-dev-TokenBrokerFunction", False),
    ("arn:aws:lambda:us-east-1:123456789012:function:tb-fn:live:again", False),
]


@pytest.mark.parametrize(("arn", "a_broker"), ARNS)
def test_the_function_arn_grammar_is_one_in_all_three(arn: str, a_broker: bool) -> None:
    def broker_reads(value: str) -> bool:
        try:
            broker_proof.parse_audience(value, qualified=True)
        except ValueError:
            return False
        return True

    def client_reads(value: str) -> bool:
        try:
            client_proof.Broker(value)
        except ValueError:
            return False
        return True

    node = node_regex("FUNCTION_ARN").fullmatch(arn)
    node_reads = node is not None and node.group(2) in node_constant("STS_SUFFIX")
    assert (broker_reads(arn), client_reads(arn), node_reads) == (a_broker, a_broker, a_broker)


LOOPBACK = {"127.0.0.1": True, "127.9.8.7": True, "::1": True, "localhost": True, "LOCALHOST": True}
NOT_LOOPBACK = {"128.0.0.1": False, "10.0.0.1": False, "localhost.example.com": False, "::2": False, "": False}


@pytest.mark.parametrize(("host", "loopback"), [*LOOPBACK.items(), *NOT_LOOPBACK.items()])
def test_the_loopback_check_is_one_in_the_broker_and_token_client(host: str, loopback: bool) -> None:
    assert (is_loopback(host), client_is_loopback(host)) == (loopback, loopback)


def test_the_default_min_ttl_is_the_brokers_floor_everywhere() -> None:
    assert DEFAULT_MIN_TTL_SECONDS == DEFAULT_MIN_TTL == node_constant("DEFAULT_MIN_TTL_SECONDS") == 60


def test_what_the_client_may_retry_is_what_the_broker_says_may_succeed_later() -> None:
    broker_codes = {kind.error: kind.status for kind in _subclasses(BrokerError)}
    # every broker answer that comes with retry_after is retryable for the client, and nothing else of the broker's
    assert {code for code, status in broker_codes.items() if status == 503} == errors.RETRYABLE_ERRORS & set(
        broker_codes
    )
    assert errors.RETRYABLE_ERRORS - set(broker_codes) == {errors.BrokerUnreachable("x").error}


def test_dpop_is_one_protocol_in_all_three() -> None:
    assert broker_dpop.PROOF_TYPE == client_dpop.PROOF_TYPE == node_constant("PROOF_TYPE") == "dpop+jwt"
    assert broker_dpop.NONCE_HEADER == client_dpop.NONCE_HEADER == "DPoP-Nonce"
    assert broker_dpop.USE_NONCE == client_dpop.USE_NONCE == "use_dpop_nonce"
    assert 'error="use_dpop_nonce"' in node_regex("NONCE_CHALLENGE").pattern
    assert broker_dpop.target_uri("https://a.example/x?q=1#f") == client_dpop.target_uri("https://a.example/x?q=1#f")


@pytest.mark.parametrize(
    "options",
    [{}, {"scopes": ["orders.read", "orders.write"]}, {"min_ttl": 120}, {"force_refresh": True}],
    ids=["plain", "scopes", "min-ttl", "force-refresh"],
)
def test_the_clients_request_is_one_the_schema_and_the_broker_accept(options: dict[str, Any]) -> None:
    import jsonschema

    from token_client.client import TokenClient

    # Given the request token_client sends (its transport, captured where it would go on the wire)
    sent: list[dict[str, Any]] = []

    class Capture:
        name = "capture"

        def ask(self, request: dict[str, Any], request_id: str) -> dict[str, Any]:
            sent.append({**request, "caller_proof": PROOF})
            return {"access_token": "t" * 20, "token_type": "Bearer", "expires_in": 600, "scope": ""}

    client = TokenClient(function_arn="arn:aws:lambda:us-east-1:123456789012:function:tb")
    client._transport = Capture()  # type: ignore[assignment]
    client.token("orders-api", options.get("scopes"), options.get("min_ttl"))
    if options.get("force_refresh"):
        client.invalidate("orders-api", options.get("scopes"))
        client.token("orders-api", options.get("scopes"), options.get("min_ttl"))

    # Then the schema accepts it, and so does the broker's parser
    schema = json.loads((ROOT / "docs/schemas/token-request.schema.json").read_text())
    for request in sent:
        jsonschema.validate(request, schema)
        assert PROFILE_PATTERN.fullmatch(parse_request(request).profile)
    assert sent[-1].get("force_refresh", False) is options.get("force_refresh", False)


PROOF = {
    "v": 1,
    "credential": "ASIAEXAMPLEEXAMPLE12/20261206/us-east-1/sts/aws4_request",
    "amz_date": "20261206T000000Z",
    "signed_headers": broker_proof.SIGNED_HEADERS_SESSION,
    "signature": "0" * 64,
    "security_token": "A" * 32,
}


def _subclasses(kind: type[BrokerError]) -> list[type[BrokerError]]:
    return [kind, *(sub for child in kind.__subclasses__() for sub in _subclasses(child))]
