"""How the benchmark times an action and reads a percentile: one definition for every figure."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def timed(action: Callable[[], Any], runs: int) -> list[float]:
    """Microseconds per run of `action`."""
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        timings.append((time.perf_counter() - started) * 1_000_000)
    return timings


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
