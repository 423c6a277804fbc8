"""DynamoDB's side of the cache item: its attribute values read typed (a value of another type
is none), and the condition expressions made from the store's horizons and item schema, with a
type check before every comparison (DynamoDB evaluates a String compared with a Number as false;
a type check first says what is meant)."""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any

from broker.failures import REFUSED, Outage
from broker.token_store import FETCH, OUTAGE, Attribute, Horizon


class Conditions:
    """Condition expressions made from the store's horizons, at one clock reading, with their
    values. Every comparison follows the type check that makes it meaningful."""

    def __init__(self, now: float) -> None:
        self._now = now
        self.values: dict[str, Any] = {}  # DynamoDB refuses a value that no expression uses

    def value(self, attribute_value: dict[str, Any]) -> str:
        for name, known in self.values.items():
            if known == attribute_value:
                return name
        name = f":c{len(self.values)}"
        self.values[name] = attribute_value
        return name

    def typed(self, attribute: str, type_code: str) -> str:
        return f"attribute_type({attribute}, {self.value({'S': type_code})})"

    def number_below(self, attribute: str, bound: float) -> str:
        return f"({self.typed(attribute, 'N')} AND {attribute} < {self.value(number_value(bound))})"

    def plausible(self, horizon: Horizon) -> str:
        limit = self.value(number_value(self._now + horizon.ahead))
        return f"({self.typed(horizon.attribute, 'N')} AND {horizon.attribute} <= {limit})"

    def in_force(self, horizon: Horizon) -> str:
        now, limit = self.value(number_value(self._now)), self.value(number_value(self._now + horizon.ahead))
        name = horizon.attribute
        return f"({self.typed(name, 'N')} AND {name} > {now} AND {name} <= {limit})"

    def plausible_token(self) -> str:
        return f"({self.typed(Attribute.EXPIRES_AT, 'N')} AND {self.plausible(FETCH)})"

    def failure_in_force(self, refusals: Horizon) -> str:
        """As `read` reads a failure, but for its code's characters, which no condition can see."""
        outage = self.value({"S": Outage.error})
        refused = ", ".join(self.value({"S": code}) for code in sorted(REFUSED))
        return (
            f"({self.typed(Attribute.FAILURE_CODE, 'S')} AND ("
            f"({Attribute.FAILURE_ERROR} = {outage} AND {self.in_force(OUTAGE)}) OR "
            f"({Attribute.FAILURE_ERROR} IN ({refused}) AND {self.in_force(refusals)})))"
        )


def number_value(value: float) -> dict[str, str]:
    return {"N": repr(round(value, 3)) if isinstance(value, float) else str(value)}


def number(item: dict[str, Any], name: str) -> float | None:
    attribute = item.get(name)
    if not isinstance(attribute, dict) or not isinstance(attribute.get("N"), str):
        return None
    try:
        value = float(Decimal(attribute["N"]))
    except (InvalidOperation, OverflowError):
        return None
    return value if math.isfinite(value) else None


def string(item: dict[str, Any], name: str) -> str | None:
    attribute = item.get(name)
    value = attribute.get("S") if isinstance(attribute, dict) else None
    return value if isinstance(value, str) else None


def binary(item: dict[str, Any], name: str) -> bytes | None:
    attribute = item.get(name)
    value = attribute.get("B") if isinstance(attribute, dict) else None
    return value if isinstance(value, bytes) else None
