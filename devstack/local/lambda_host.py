"""Hosts the broker's handler as Lambda would: layer folders on sys.path, a context, one event."""

from __future__ import annotations

import base64
import contextlib
import importlib
import io
import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from devstack.template import ROOT

FUNCTION_DIR = ROOT / "functions" / "token_broker"
# The local broker's function ARN: what Lambda tells the handler it was invoked as, and the
# audience of the caller proofs made for it.
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:token-broker"
# The local renewal function (`renewal_handler`), which the broker hands renewals ahead of expiry.
RENEWAL_FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:token-broker-renewal"
LAYER_DIRS = sorted((ROOT / "layers").glob("*/python"))
# What every local broker process gets besides the AWS endpoint and the table name.
BROKER_ENVIRONMENT = {
    "POWERTOOLS_SERVICE_NAME": "token-broker",
    "POWERTOOLS_METRICS_NAMESPACE": "TokenBroker",
    "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
    "SECRET_PREFIX": "token-broker/",
}


@dataclass
class ClientContext:
    """What Lambda makes of an Invoke's `X-Amz-Client-Context` header (base64 JSON)."""

    custom: dict[str, Any] | None = None
    env: dict[str, Any] | None = None
    client: dict[str, Any] | None = None

    @classmethod
    def from_header(cls, header: str | None) -> ClientContext | None:
        if not header:
            return None
        try:
            document = json.loads(base64.b64decode(header))
        except ValueError:
            return None
        if not isinstance(document, dict):
            return None
        return cls(document.get("custom"), document.get("env"), document.get("client"))


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that the handler and Powertools read."""

    timeout_seconds: float = 15.0
    function_name: str = "token-broker"
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = FUNCTION_ARN
    client_context: ClientContext | None = None
    _started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


@dataclass
class Invocation:
    answer: dict[str, Any]
    metrics: list[str]
    milliseconds: float
    emitted: str


def put_on_path() -> None:
    """The function's folder, and each layer's `python/` as Lambda mounts it at /opt/python."""
    for folder in [FUNCTION_DIR, *LAYER_DIRS]:
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


class CurrentStdout(io.TextIOBase):
    """Whatever `sys.stdout` is at each write. In Lambda the Logger's lines and the EMF documents
    share one stdout; here `invoke` redirects `sys.stdout` to capture an invocation's, so the
    Logger's handler (which holds the stream it was made with) writes through this."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def load_handler_module() -> ModuleType:
    """Imports `app` as a cold start does; the environment must be set first."""
    put_on_path()
    app = importlib.import_module("app")
    app.logger.registered_handler.setStream(CurrentStdout())
    return app


def invoke(
    app: ModuleType,
    event: Any,
    timeout_seconds: float = 15.0,
    handler: str = "lambda_handler",
    function_arn: str | None = None,
) -> Invocation:
    """One invocation of `handler` (as `function_arn`, default the local broker's), with what it
    wrote on stdout (its log lines and EMF documents); the metric names are read from that."""
    emitted = io.StringIO()
    arn = function_arn or FUNCTION_ARN
    context = LambdaContext(timeout_seconds=timeout_seconds, function_name=arn.split(":")[6], invoked_function_arn=arn)
    started = time.perf_counter()
    with contextlib.redirect_stdout(emitted):
        answer = getattr(app, handler)(event, context)
    elapsed = (time.perf_counter() - started) * 1000
    output = emitted.getvalue()
    return Invocation(answer=answer, metrics=metric_names(output), milliseconds=elapsed, emitted=output)


def metric_names(output: str) -> list[str]:
    names: list[str] = []
    for line in output.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and "_aws" in document:
            for directive in document["_aws"].get("CloudWatchMetrics", []):
                names.extend(metric["Name"] for metric in directive.get("Metrics", []))
    return names
