"""Logger and Metrics: created once here, and the broker's metric names in one place."""

from __future__ import annotations

import logging
import os
import re

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from broker.errors import BrokerError, ProfileMisconfigured

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
# the components of `degraded` that are KMS's, not DynamoDB's
KMS_COMPONENTS = frozenset({"seal", "open"})

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

# botocore logs whole response bodies (a GetSecretValue answer included) at DEBUG, and
# urllib3 logs request lines; whatever level the root logger is given, they stay quiet.
for _library in ("boto3", "botocore", "urllib3"):
    logging.getLogger(_library).setLevel(logging.WARNING)


# A request id a caller sends in its invocation's ClientContext (token_client does): short and
# plain, since it is logged as given.
CALLER_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def correlate_direct_call(client_context: object) -> None:
    """Every log line of this invocation, the audit line too, carries the caller's request id as
    `correlation_id`, when it sent a well-formed one (`{"custom": {"request_id": ...}}`)."""
    custom = getattr(client_context, "custom", None)
    request_id = custom.get("request_id") if isinstance(custom, dict) else None
    if isinstance(request_id, str) and CALLER_REQUEST_ID.fullmatch(request_id):
        logger.set_correlation_id(request_id)


def cache_hit(tier: str) -> None:
    """`tier` is `memory` or `table`."""
    metrics.add_metric(name=f"{tier.capitalize()}Hit", unit=MetricUnit.Count, value=1)


def cache_miss() -> None:
    metrics.add_metric(name="CacheMiss", unit=MetricUnit.Count, value=1)


def token_request_done(profile: str, outcome: str, seconds: float, attempt: int) -> None:
    """One HTTP exchange with a token endpoint; `outcome` is its status or `unreachable`."""
    metrics.add_metric(name="TokenRequests", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="TokenRequestLatency", unit=MetricUnit.Milliseconds, value=round(seconds * 1000, 1))
    _with_dimension("TokenRequestsByProfile", "profile", profile)
    logger.debug(
        "token endpoint answered",
        stacklevel=3,  # the location logged is the caller's, not this helper's
        extra={"profile": profile, "outcome": outcome, "latency_ms": round(seconds * 1000, 1), "attempt": attempt},
    )


def token_fetch_ended(outcome: str) -> None:
    """How one fetch ended, whatever its attempts: `refused` (a 4xx) or `unavailable`."""
    name = "TokenRefusals" if outcome == "refused" else "TokenFetchFailures"
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def error_answered(error: BrokerError) -> None:
    """Errors by code, as a dimension, so one alarm can watch a code across every profile. A
    misconfigured profile is logged with what to fix (the field, never its value): the answer
    names nothing."""
    if isinstance(error, ProfileMisconfigured):
        logger.error("profile misconfigured", extra={"problem": error.detail}, stacklevel=3)
    _with_dimension("ErrorAnswers", "error", error.error)


def _with_dimension(name: str, dimension: str, value: str) -> None:
    """A count with one more dimension than the service: its own EMF document."""
    with single_metric(
        name=name, unit=MetricUnit.Count, value=1, namespace=NAMESPACE, default_dimensions=metrics.default_dimensions
    ) as metric:
        metric.add_dimension(name=dimension, value=value)


def audit(*, path: str, profile: str | None, caller: str | None, source: str | None, outcome: str, status: int) -> None:
    """One INFO line per answer: who asked for which profile, by which door, where the token came
    from and how it ended. Never the token, the proof or anything secret."""
    logger.info(
        "answered",
        stacklevel=3,
        extra={
            "audit": True,
            "path": path,
            "profile": profile,
            "caller": caller,
            "source": source,
            "outcome": outcome,
            "status": status,
        },
    )


def degraded(component: str, failure: str) -> None:
    """A dependency the broker can do without (the table) failed; callers are still served."""
    metrics.add_metric(name="CacheUnavailable", unit=MetricUnit.Count, value=1)
    if component in KMS_COMPONENTS:
        metrics.add_metric(name="KmsUnavailable", unit=MetricUnit.Count, value=1)
    logger.warning(
        "cache table unavailable, serving without it",
        extra={"component": component, "failure": failure},
        stacklevel=3,
    )


def unreadable_cache_item(reason: str) -> None:
    """An item that no broker wrote as it is (tampered, corrupt, or sealed under another key):
    treated as a miss and renewed, never served. `reason` is the broker's, never the item's."""
    metrics.add_metric(name="UnreadableCacheItem", unit=MetricUnit.Count, value=1)
    logger.warning("a cache item cannot be used; renewing it", extra={"reason": reason}, stacklevel=3)


def cache_throttled(operation: str) -> None:
    """DynamoDB refused for want of capacity: the request waits and reads again. A large fleet
    can be throttled thousands of times a minute: the metric counts them, DEBUG tells each."""
    metrics.add_metric(name="CacheThrottled", unit=MetricUnit.Count, value=1)
    logger.debug("cache table throttled; waiting", extra={"component": operation}, stacklevel=3)
