"""Logger and metrics: made once here, and the broker's metric names in one place.

Both are on every answer's path, and a memory hit's whole answer is budgeted at 60 µs, so both
are lean. The Logger is Powertools' with a formatter that writes the same JSON line without the
work the broker never needs (`log_format.LeanFormatter`). The metrics are CloudWatch embedded metric format
(EMF) lines written here (`EmbeddedMetrics`): Powertools' Metrics validates and re-serializes
its whole set at every flush, about 40 µs an answer, where one prepared line costs 5. Each
answer's metrics are written when it ends, not summed per minute in the container: CloudWatch
keeps a standard metric per minute anyway, but Lambda says nothing before it reclaims an idle
container, whose unwritten minute would be lost.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO, cast

from aws_lambda_powertools import Logger

from broker.errors import BrokerError, ProfileMisconfigured
from broker.log_format import LeanFormatter

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "token-broker"
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "TokenBroker"

# Every metric the broker emits, in namespace NAMESPACE, with its dimensions: the dashboard and
# the alarms in template.yaml plot and watch only these (a test holds them to it).
EMITTED: dict[str, tuple[str, ...]] = {
    "MemoryHit": ("service",),
    "TableHit": ("service",),
    "CacheMiss": ("service",),
    "TokenRequests": ("service",),  # every HTTP exchange with a token endpoint: what its quota counts
    "TokenRequestsByProfile": ("profile", "service"),  # profiles are the operators' secrets: few
    "TokenRequestLatency": ("service",),
    "TokenFetchFailures": ("service",),  # a fetch that got no answer after its retries (5xx, 429, timeouts)
    "TokenRefusals": ("service",),  # a fetch the authorization server refused (4xx)
    "ErrorAnswers": ("error", "service"),
    "CacheUnavailable": ("service",),
    "KmsUnavailable": ("service",),
    "UnreadableCacheItem": ("service",),
    "CacheThrottled": ("service",),
}
UNITS = {"TokenRequestLatency": "Milliseconds"}  # the others count
# the components of `degraded` that are KMS's, not DynamoDB's
KMS_COMPONENTS = frozenset({"seal", "open"})
# EMF takes at most 100 values of a metric in one document
MAX_VALUES = 100


class EmbeddedMetrics:
    """An invocation's metrics, as CloudWatch embedded metric format (EMF). Those with the
    service dimension alone ride on the answer's audit line (`embed`), which makes that line an
    EMF document too; whatever is left when the invocation ends is written on stdout (`flush`),
    one document for each further dimension's value (the error code of `ErrorAnswers`, the
    profile of `TokenRequestsByProfile`)."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str | None], list[float]] = {}
        self._lock = threading.Lock()  # the simulated fleet of devstack.measure.fleet_model shares it among threads

    def add(self, name: str, value: float = 1, dimension_value: str | None = None) -> None:
        with self._lock:
            values = self._values.setdefault((name, dimension_value), [])
            values.append(value)
            full = len(values) >= MAX_VALUES
        if full:
            self.flush()

    def discard(self) -> None:
        with self._lock:
            self._values = {}

    def embed(self) -> str:
        """Takes the metrics with the service dimension alone, as the JSON members that make a
        line with the `service` key an EMF document of them (empty: none)."""
        with self._lock:
            taken = {name: self._values.pop((name, value)) for name, value in list(self._values) if value is None}
        return _emf_members(taken) if taken else ""

    def flush(self) -> None:
        with self._lock:
            values, self._values = self._values, {}
        groups: dict[tuple[tuple[str, ...], str | None], dict[str, list[float]]] = {}
        for (name, dimension_value), numbers in values.items():
            groups.setdefault((EMITTED[name], dimension_value), {})[name] = numbers
        for (dimensions, dimension_value), group in groups.items():
            values_of_dimensions = {"service": SERVICE} | dict.fromkeys(set(dimensions) - {"service"}, dimension_value)
            sys.stdout.write(f"{json.dumps(values_of_dimensions)[:-1]},{_emf_members(group)}}}\n")


def _emf_members(group: dict[str, list[float]]) -> str:
    """`"_aws":{...},"Name":value,...` for metrics that share their dimensions; the values are
    counts and milliseconds, all finite, which Python writes as JSON does."""
    metadata = f'"_aws":{{"Timestamp":{int(time.time() * 1000)},"CloudWatchMetrics":{_directive(tuple(group))}}}'
    values = ",".join(
        f'"{name}":{numbers[0]!r}' if len(numbers) == 1 else f'"{name}":[{",".join(map(repr, numbers))}]'
        for name, numbers in group.items()
    )
    return f"{metadata},{values}"


@functools.lru_cache(maxsize=64)
def _directive(names: tuple[str, ...]) -> str:
    """EMF's `CloudWatchMetrics` for metrics that share their dimensions, as JSON, made once."""
    metrics = [{"Name": name, "Unit": UNITS.get(name, "Count")} for name in names]
    directive = [{"Namespace": NAMESPACE, "Dimensions": [list(EMITTED[names[0]])], "Metrics": metrics}]
    return json.dumps(directive, separators=(",", ":"))


_formatter = LeanFormatter()
logger = Logger(service=SERVICE, logger_formatter=_formatter)
_records = logging.getLogger(SERVICE)  # the standard library's logger under Powertools'


def _stream_handler() -> logging.StreamHandler[TextIO]:
    """The Logger's handler: it writes to a stream (stdout, where Lambda reads it)."""
    return cast("logging.StreamHandler[TextIO]", logger.registered_handler)


metrics = EmbeddedMetrics()

# botocore logs whole response bodies (a GetSecretValue answer included) at DEBUG, and
# urllib3 logs request lines; whatever level the root logger is given, they stay quiet.
for _library in ("boto3", "botocore", "urllib3"):
    logging.getLogger(_library).setLevel(logging.WARNING)

_first_invocation = [True]


def invocation[Handler: Callable[[Any, Any], Any]](handler: Handler) -> Handler:
    """What Powertools' `inject_lambda_context(clear_state=True)` and `log_metrics` do, at a
    fraction of their cost: every log line of an invocation carries the context's keys (and none
    an earlier invocation appended), and its metrics are written when it ends, whatever happens.
    The event is never logged: events carry caller proofs and HTTP headers with session tokens."""

    @functools.wraps(handler)
    def invoked(event: Any, context: Any) -> Any:
        cold_start, _first_invocation[0] = _first_invocation[0], False
        trace = os.environ.get("_X_AMZN_TRACE_ID")  # Lambda sets it for each invocation
        _formatter.start(
            service=SERVICE,
            cold_start=cold_start and os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") != "provisioned-concurrency",
            function_name=context.function_name,
            function_memory_size=context.memory_limit_in_mb,
            function_arn=context.invoked_function_arn,
            function_request_id=context.aws_request_id,
            xray_trace_id=trace.split(";")[0].removeprefix("Root=") if trace else None,
        )
        try:
            return handler(event, context)
        finally:
            metrics.flush()

    return invoked  # type: ignore[return-value]


@contextlib.contextmanager
def operator_command() -> Iterator[None]:
    """The operator's CLI runs the broker's code on a laptop: meanwhile its log lines go to stderr,
    from WARNING up (stdout holds the command's answer alone), and the metrics it counts are no
    fleet's, so they are dropped."""
    handler = _stream_handler()
    stream, level = handler.stream, _records.level
    handler.setStream(sys.stderr)
    _records.setLevel(logging.WARNING)
    try:
        yield
    finally:
        _records.setLevel(level)
        handler.setStream(stream)
        metrics.discard()


def about_profile(name: str) -> None:
    """Every later line of the invocation, its audit line included, names the profile asked for."""
    _formatter.append_keys(profile=name)


# A request id from outside (the caller's, or API Gateway's) is logged as `correlation_id` on
# every line of the invocation only when it is short and plain, since it is logged as given.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:=+/-]{1,64}")


def correlate_direct_call(client_context: object) -> None:
    """The caller's request id, when it sent a well-formed one in its invocation's ClientContext
    (`{"custom": {"request_id": ...}}`, as token_client does)."""
    custom = getattr(client_context, "custom", None)
    _correlate(custom.get("request_id") if isinstance(custom, dict) else None)


def correlate_gateway_request(event: object) -> None:
    """API Gateway's request id (also in its access log), from an HTTP API event."""
    request_context = event.get("requestContext") if isinstance(event, dict) else None
    _correlate(request_context.get("requestId") if isinstance(request_context, dict) else None)


def _correlate(request_id: object) -> None:
    if isinstance(request_id, str) and REQUEST_ID.fullmatch(request_id):
        logger.set_correlation_id(request_id)


def cache_hit(tier: str) -> None:
    """`tier` is `memory` or `table`."""
    metrics.add(f"{tier.capitalize()}Hit")


def cache_miss() -> None:
    metrics.add("CacheMiss")


def token_request_done(profile: str, outcome: str, seconds: float, attempt: int) -> None:
    """One HTTP exchange with a token endpoint; `outcome` is its status or `unreachable`."""
    metrics.add("TokenRequests")
    metrics.add("TokenRequestLatency", round(seconds * 1000, 1))
    metrics.add("TokenRequestsByProfile", dimension_value=profile)
    logger.debug(
        "token endpoint answered",
        stacklevel=3,  # the location logged is the caller's, not this helper's
        extra={"profile": profile, "outcome": outcome, "latency_ms": round(seconds * 1000, 1), "attempt": attempt},
    )


def token_fetch_ended(outcome: str) -> None:
    """How one fetch ended, whatever its attempts: `refused` (a 4xx) or `unavailable`."""
    name = "TokenRefusals" if outcome == "refused" else "TokenFetchFailures"
    metrics.add(name)


def error_answered(error: BrokerError) -> None:
    """Errors by code, as a dimension, so one alarm can watch a code across every profile. A
    misconfigured profile is logged with what to fix (the field, never its value): the answer
    names nothing."""
    if isinstance(error, ProfileMisconfigured):
        logger.error("profile misconfigured", extra={"problem": error.detail}, stacklevel=3)
    metrics.add("ErrorAnswers", dimension_value=error.error)


def audit(*, path: str, caller: str | None, source: str | None, outcome: str, status: int) -> None:
    """One INFO line per answer: who asked for which profile (the invocation's `profile` key,
    appended once the request is read), by which door, where the token came from and how it
    ended. Never the token, the proof or anything secret.

    It is the one line of every answer, so it is written to the Logger's stream in the Logger's
    own shape without a `LogRecord` and the handler chain, which cost half a memory hit's time,
    and it carries the answer's metrics (it is their EMF document) rather than a line of its own."""
    if not _records.isEnabledFor(logging.INFO):
        return  # the metrics are written without it
    fields = {
        "audit": True,
        "path": path,
        "caller": caller,
        "source": source,
        "outcome": outcome,
        "status": status,
    }
    answering = sys._getframe(1)  # the location, as a record has it: who called
    location = f"{answering.f_code.co_name}:{answering.f_lineno}"
    line = _formatter.line("INFO", location, "answered", time.time(), fields)
    embedded = metrics.embed()
    if embedded:
        line = f"{line[:-1]},{embedded}}}"
    handler = _stream_handler()
    handler.acquire()
    try:
        handler.stream.write(line + "\n")
        handler.stream.flush()
    finally:
        handler.release()


def degraded(component: str, failure: str) -> None:
    """A dependency the broker can do without (the table) failed; callers are still served."""
    metrics.add("CacheUnavailable")
    if component in KMS_COMPONENTS:
        metrics.add("KmsUnavailable")
    logger.warning(
        "cache table unavailable, serving without it",
        extra={"component": component, "failure": failure},
        stacklevel=3,
    )


def unreadable_cache_item(reason: str) -> None:
    """An item that no broker wrote as it is (tampered, corrupt, or sealed under another key):
    treated as a miss and renewed, never served. `reason` is the broker's, never the item's."""
    metrics.add("UnreadableCacheItem")
    logger.warning("a cache item cannot be used; renewing it", extra={"reason": reason}, stacklevel=3)


def cache_throttled(operation: str) -> None:
    """DynamoDB refused for want of capacity: the request waits and reads again. A large fleet
    can be throttled thousands of times a minute: the metric counts them, DEBUG tells each."""
    metrics.add("CacheThrottled")
    logger.debug("cache table throttled; waiting", extra={"component": operation}, stacklevel=3)
