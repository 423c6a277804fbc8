"""CloudWatch's embedded metric format, as its specification states it: what a document must be
for CloudWatch to extract its metrics (a line that breaks a rule is kept as a log, silently)."""

from __future__ import annotations

from typing import Any

UNITS = frozenset(
    {
        "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
        "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
        "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
        "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
    }
)  # fmt: skip


def problems(document: dict[str, Any]) -> list[str]:
    """What keeps `document` from being an EMF document; none: CloudWatch extracts its metrics."""
    metadata = document.get("_aws")
    if not isinstance(metadata, dict):
        return ["no _aws object"]
    found = []
    if not isinstance(metadata.get("Timestamp"), int):
        found.append("_aws.Timestamp is not epoch milliseconds")
    directives = metadata.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        return [*found, "no CloudWatchMetrics"]
    for directive in directives:
        if not isinstance(directive.get("Namespace"), str) or not 1 <= len(directive["Namespace"]) <= 255:
            found.append("a directive without a namespace")
        for dimensions in directive.get("Dimensions", []):
            if len(dimensions) > 30:
                found.append("more than 30 dimensions in a set")
            found += [f"dimension {key} is not a string member" for key in dimensions if not _text(document.get(key))]
        metrics = directive.get("Metrics", [])
        if not 1 <= len(metrics) <= 100:
            found.append("a directive with no metrics or more than 100")
        for metric in metrics:
            name, unit = metric.get("Name"), metric.get("Unit", "None")
            if unit not in UNITS:
                found.append(f"metric {name} has unit {unit!r}")
            if not _values(document.get(name)):
                found.append(f"metric {name} has no number (or list of at most 100) as a member")
    return found


def _text(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 1024


def _values(value: object) -> bool:
    numbers = value if isinstance(value, list) else [value]
    return 0 < len(numbers) <= 100 and all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers)
