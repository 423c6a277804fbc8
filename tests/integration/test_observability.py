"""What an answer writes: one line that is its audit line and the EMF document of its metrics;
metrics with a dimension of their own in documents of their own; and the metrics whatever the
log level, since alarms watch them."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.local.lambda_host import Invocation
from tests import emf
from tests.conftest import Broker, Profiles


def lines(invocation: Invocation) -> list[dict[str, Any]]:
    return [json.loads(line) for line in invocation.emitted.splitlines()]


@pytest.fixture
def warn_level(broker: Broker) -> Iterator[None]:
    """The broker's Logger at WARNING (LogLevel WARN), for one test."""
    previous = broker.app.logger.log_level
    broker.app.logger.setLevel(logging.WARNING)
    yield
    broker.app.logger.setLevel(previous)


def test_a_memory_hit_writes_one_line_its_audit_line_and_the_emf_document_of_its_metric(
    broker: Broker, profiles: Profiles
) -> None:
    profile = profiles.create()
    broker.invoke({"profile": profile})

    (line,) = lines(broker.invoke({"profile": profile}))

    assert (line["audit"], line["message"], line["profile"], line["source"]) == (True, "answered", profile, "memory")
    assert emf.problems(line) == []
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert directive == {
        "Namespace": "TokenBroker",
        "Dimensions": [["service"]],
        "Metrics": [{"Name": "MemoryHit", "Unit": "Count"}],
    }
    assert (line["service"], line["MemoryHit"]) == ("token-broker", 1)


def test_a_fetch_puts_every_metric_it_counted_on_the_audit_line_and_the_profile_count_in_its_own_document(
    broker: Broker, profiles: Profiles
) -> None:
    profile = profiles.create()

    written = lines(broker.invoke({"profile": profile}))

    (audit,) = [line for line in written if line.get("audit")]
    names = {metric["Name"] for metric in audit["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert names == {"CacheMiss", "TokenRequests", "TokenRequestLatency"}
    assert audit["TokenRequestLatency"] > 0
    (by_profile,) = [line for line in written if "TokenRequestsByProfile" in line]
    assert "audit" not in by_profile
    assert emf.problems(by_profile) == []
    assert by_profile["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["profile", "service"]]
    assert (by_profile["profile"], by_profile["TokenRequestsByProfile"]) == (profile, 1)


def test_an_error_answer_is_counted_by_its_code_in_a_document_of_its_own(broker: Broker) -> None:
    written = lines(broker.invoke({"profile": "no-such-profile"}))

    (counted,) = [line for line in written if "ErrorAnswers" in line]
    assert emf.problems(counted) == []
    assert (counted["error"], counted["ErrorAnswers"]) == ("unknown_profile", 1)
    assert counted["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["error", "service"]]


@pytest.mark.usefixtures("warn_level")
def test_at_warn_there_is_no_audit_line_but_the_metrics_are_written(broker: Broker, profiles: Profiles) -> None:
    profile = profiles.create()
    broker.invoke({"profile": profile})

    (line,) = lines(broker.invoke({"profile": profile}))

    assert "audit" not in line
    assert "level" not in line
    assert emf.problems(line) == []
    assert line["MemoryHit"] == 1


def test_the_lean_formatter_writes_the_line_powertools_formatter_would(broker: Broker) -> None:
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    from broker.log_format import LeanFormatter

    keys = {"service": "token-broker", "cold_start": False, "function_request_id": "r-1", "profile": "orders"}
    lean, powertools = LeanFormatter(), LambdaPowertoolsFormatter()
    lean.start(**keys)
    powertools.append_keys(**keys)
    try:
        raise ValueError("the table said no")
    except ValueError as error:
        exception = (type(error), error, error.__traceback__)
    for exc_info in (None, exception):
        record = logging.LogRecord("token-broker", logging.WARNING, __file__, 7, "cache %s", ("unavailable",), exc_info)
        record.__dict__.update({"component": "read", "failure": "timeout", "skipped": None})

        assert json.loads(lean.format(record)) == json.loads(powertools.format(record))
