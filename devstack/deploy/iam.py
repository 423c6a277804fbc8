"""IAM's rules, as AWS publishes them, for checking policies without an account.

- `allows`: the policy evaluation logic for one principal's identity-based policies (or a key
  policy's statements for that principal): an explicit Deny wins, then any Allow whose action,
  resource and conditions all match; nothing else allows. Actions match case-insensitively with
  `*` and `?`, resources case-sensitively; conditions with the operators the project's policies
  use, where a key missing from the request fails the condition.
- `request_arns`: the ARN a request for an action names, from the Service Authorization
  Reference (policy_sentry's copy of it): the action's resource types' ARN formats, filled in.
- `resolved`: a template's policies with CloudFormation's intrinsic functions worked out for a
  given stack, so that both can be read as the account would.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

PARTITION, REGION, ACCOUNT = "aws", "us-east-1", "123456789012"
Context = Mapping[str, str | list[str]]


@dataclass(frozen=True)
class Request:
    """What a caller asks IAM: an action on a resource ARN (or `*`), with its context keys."""

    action: str
    resource: str
    context: Context = field(default_factory=dict)


def allows(statements: Iterable[Mapping[str, Any]], request: Request, principal: str | None = None) -> bool:
    """Whether `statements` allow `request`; with `principal`, only statements naming it count
    (a resource-based policy, such as a key policy)."""
    relevant = [s for s in statements if principal is None or principal in _principals(s)]
    matching = [s for s in relevant if _matches(s, request)]
    if any(s["Effect"] == "Deny" for s in matching):
        return False
    return any(s["Effect"] == "Allow" for s in matching)


def _principals(statement: Mapping[str, Any]) -> list[str]:
    principal = statement.get("Principal", {})
    values = principal.get("AWS", []) if isinstance(principal, dict) else [principal]
    return [values] if isinstance(values, str) else list(values)


def _listed(value: str | int | Iterable[str]) -> list[str]:
    if isinstance(value, (str, int)):
        return [str(value)]
    return list(value)


def _matches(statement: Mapping[str, Any], request: Request) -> bool:
    if "Action" in statement:
        action = any(like(pattern, request.action, fold=True) for pattern in _listed(statement["Action"]))
    else:
        action = not any(like(pattern, request.action, fold=True) for pattern in _listed(statement["NotAction"]))
    if "Resource" in statement:
        resource = any(like(pattern, request.resource) for pattern in _listed(statement["Resource"]))
    else:
        resource = not any(like(pattern, request.resource) for pattern in _listed(statement.get("NotResource", [])))
    return action and resource and _conditions_hold(statement.get("Condition", {}), request.context)


def like(pattern: str, value: str, fold: bool = False) -> bool:
    """IAM's wildcard match: `*` any run of characters, `?` any one, everything else itself
    (fnmatch would read `[...]` as a character class, which IAM does not). policyuniverse offers
    the same; these lines keep the evaluator to IAM's two rules without another dependency."""
    if fold:
        pattern, value = pattern.lower(), value.lower()
    return pattern == "*" or _wildcards(pattern).fullmatch(value) is not None


@cache
def _wildcards(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.DOTALL)


# The condition operators this project's policies use, as IAM evaluates them.
_OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda wanted, given: given == wanted,
    "StringLike": lambda wanted, given: like(wanted, given),
    "ArnEquals": lambda wanted, given: given == wanted,
    "ArnLike": lambda wanted, given: like(wanted, given),
    "Bool": lambda wanted, given: given.lower() == str(wanted).lower(),
    "NumericLessThanEquals": lambda wanted, given: float(given) <= float(wanted),
}


def _conditions_hold(conditions: Mapping[str, Mapping[str, Any]], context: Context) -> bool:
    """Every condition holds. `Null` tests a key's presence; `ForAllValues:` holds when every value
    of a multivalued key matches, and for a missing key (an empty set) too, as AWS documents it;
    otherwise a key missing from the request fails the condition, and any value may match."""
    for operator, keys in conditions.items():
        qualifier, _, base = operator.rpartition(":")
        if (base != "Null" and base not in _OPERATORS) or qualifier not in ("", "ForAllValues"):
            raise ValueError(f"the evaluator does not know the condition operator {operator}")
        for key, wanted in keys.items():
            given = context.get(key)
            if base == "Null":
                if (given is None) != (str(wanted).lower() == "true"):
                    return False
                continue
            if given is None:
                if qualifier == "ForAllValues":
                    continue
                return False
            test = _OPERATORS[base]
            values = [given] if isinstance(given, str) else given
            matched = [any(test(option, value) for option in _listed(wanted)) for value in values]
            if not (all(matched) if qualifier == "ForAllValues" else any(matched)):
                return False
    return True


@cache
def _formats(action: str) -> tuple[str, ...]:
    """The action's resource types' ARN formats; none: it has no resource type (`*`)."""
    from policy_sentry.querying.actions import get_action_data

    service, name = action.split(":", 1)
    rows = get_action_data(service, name).get(service, [])
    return tuple(dict.fromkeys(row["resource_arn_format"] for row in rows if row["resource_arn_format"] != "*"))


def acts_on(action: str, arn: str) -> bool:
    """Whether `arn` is of a resource type `action` names (its ARN formats, placeholders as `*`):
    an action without one, or of another type, cannot be asked of that resource."""
    return any(like(re.sub(r"\$\{[^}]*\}", "*", arn_format), arn) for arn_format in _formats(action))


@cache
def known_action(action: str) -> bool:
    from policy_sentry.querying.actions import get_action_data

    service, name = action.split(":", 1)
    return bool(get_action_data(service, name).get(service))


def request_arns(action: str, kinds: Iterable[str], names: Mapping[str, str]) -> list[str]:
    """The ARNs a request for `action` names: its ARN formats of the first of `kinds` (a
    fragment of the format, such as `:function:`) that it has, filled in from `names`; `*` for
    an action without a resource type."""
    formats = _formats(action)
    if not formats:
        return ["*"]
    for kind in kinds:
        chosen = [f for f in formats if kind in f]
        if chosen:
            return [_filled(f, names) for f in chosen]
    return [_filled(formats[0], names)]


def _filled(arn_format: str, names: Mapping[str, str]) -> str:
    values = {"Partition": PARTITION, "Region": REGION, "Account": ACCOUNT, **names}

    def value(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            raise KeyError(f"no example name for ${{{match.group(1)}}} in {arn_format}")
        return values[match.group(1)]

    return re.sub(r"\$\{(\w+)\}", value, arn_format)


def resolved(node: Any, values: Mapping[str, Any], conditions: Mapping[str, bool]) -> Any:
    """`node` with Ref, Fn::Sub, Fn::GetAtt, Fn::If, Fn::Join, Fn::ImportValue and AWS::NoValue
    worked out from `values` (parameters, pseudo parameters, `Logical` / `Logical.Attribute` of
    resources, and `Export::<name>` for the exports of other stacks)."""
    if isinstance(node, list):
        return [item for item in (resolved(item, values, conditions) for item in node) if item is not _NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        ((key, argument),) = node.items()
        if key == "Ref":
            return _NO_VALUE if argument == "AWS::NoValue" else values[argument]
        if key == "Fn::GetAtt":
            name = ".".join(argument) if isinstance(argument, list) else argument
            return values[name]
        if key == "Fn::Sub":
            text, local = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
            scope = {**values, **{k: resolved(v, values, conditions) for k, v in local.items()}}
            return re.sub(r"\$\{([\w:.]+)\}", lambda match: str(scope[match.group(1)]), text)
        if key == "Fn::If":
            name, when_true, when_false = argument
            return resolved(when_true if conditions[name] else when_false, values, conditions)
        if key == "Fn::ImportValue":  # another stack's export, as `values` holds it
            return values[f"Export::{resolved(argument, values, conditions)}"]
        if key == "Fn::Join":
            separator, items = argument
            return separator.join(str(item) for item in resolved(items, values, conditions))
    result = {key: resolved(value, values, conditions) for key, value in node.items()}
    return {key: value for key, value in result.items() if value is not _NO_VALUE}


_NO_VALUE = object()
