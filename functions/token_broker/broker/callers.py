"""Who may get a profile's tokens: the `allowed_callers` grammar and admission of verified ARNs.

An entry names an IAM role (admitting that role's `assumed-role` sessions) or an IAM user.
Matching is on the role or user name, partition and account of a verified ARN, never on a
session name: whoever assumes a role chooses that.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

# IAM names: 1 to 64 of these characters; paths are `/`-separated runs of the same.
_NAME = r"[\w+=,.@-]{1,64}"
# AWS partitions: aws, aws-cn, aws-us-gov, aws-iso-b, ...
PARTITION = r"aws(?:-[a-z]+)*"
_ENTRY = re.compile(
    rf"arn:(?P<partition>{PARTITION}):iam::(?P<account>\d{{12}}):(?P<kind>role|user)/"
    rf"(?P<path>(?:[\w+=,.@-]+/)*)(?P<name>{_NAME}\*?|\*)",
    re.ASCII,
)
_SESSION = re.compile(
    rf"arn:(?P<partition>{PARTITION}):sts::(?P<account>\d{{12}}):assumed-role/(?P<name>{_NAME})/[\w+=,.@-]{{1,64}}",
    re.ASCII,
)
# A role's ARN, as a profile names the role the broker assumes for it (its path kept: IAM needs it).
ROLE_ARN = re.compile(rf"arn:{PARTITION}:iam::\d{{12}}:role/(?:[\w+=,.@-]+/)*{_NAME}", re.ASCII)
_USER = re.compile(
    rf"arn:(?P<partition>{PARTITION}):iam::(?P<account>\d{{12}}):user/(?:[\w+=,.@-]+/)*(?P<name>{_NAME})",
    re.ASCII,
)


class BadCallerEntry(ValueError):
    """An `allowed_callers` entry outside the grammar; the message never quotes it."""


@dataclass(frozen=True, slots=True)
class CallerRule:
    """One parsed `allowed_callers` entry."""

    partition: str
    account: str
    kind: str  # "role" or "user"
    name: str  # without the trailing `*`
    prefix: bool  # the entry ended in `*`: any name starting with `name`

    def admits(self, principal: Principal) -> bool:
        if (principal.partition, principal.account, principal.kind) != (self.partition, self.account, self.kind):
            return False
        return principal.name.startswith(self.name) if self.prefix else principal.name == self.name


@dataclass(frozen=True, slots=True)
class Principal:
    """A verified caller, reduced to what admission compares."""

    partition: str
    account: str
    kind: str  # "role" for an assumed-role session, "user" for an IAM user
    name: str


def parse_caller_rule(entry: object) -> CallerRule:
    """Raises `BadCallerEntry` for anything but a role or user ARN with at most a trailing `*`.

    An entry whose name is a bare `*` after a path (`role/team-a/*`) reads as "every role under
    this path", which cannot be honoured (a session's ARN carries no path), so it is refused
    rather than widened to every role of the account."""
    if not isinstance(entry, str):
        raise BadCallerEntry("allowed_callers entries must be strings")
    match = _ENTRY.fullmatch(entry)
    if match is None:
        raise BadCallerEntry(
            "allowed_callers entries must be IAM role or user ARNs (arn:aws:iam::123456789012:role/name), "
            "with `*` only at the end of the name"
        )
    name = match["name"]
    if name == "*" and match["path"]:
        raise BadCallerEntry("allowed_callers: a path cannot be matched by `*`; name the role or user")
    return CallerRule(
        partition=match["partition"],
        account=match["account"],
        kind=match["kind"],
        name=name.removesuffix("*"),
        prefix=name.endswith("*"),
    )


@functools.lru_cache(maxsize=1024)  # a container sees few callers, each on every request
def principal_of(arn: str) -> Principal | None:
    """An assumed-role session or IAM user ARN as a `Principal`; None for anything else
    (a root user, a federated user, a role ARN that no caller can present)."""
    session = _SESSION.fullmatch(arn)
    if session is not None:
        return Principal(session["partition"], session["account"], "role", session["name"])
    user = _USER.fullmatch(arn)
    if user is not None:
        return Principal(user["partition"], user["account"], "user", user["name"])
    return None


def caller_admitted(rules: tuple[CallerRule, ...], caller_arn: str) -> bool:
    """Whether any rule admits the verified caller; no rules admit nobody."""
    principal = principal_of(caller_arn)
    return principal is not None and any(rule.admits(principal) for rule in rules)


def same_principal(claimed: object, verified_arn: str) -> bool:
    """Whether `claimed` (an ARN from an event, unverified) names the principal STS verified:
    the same ARN, or sessions of the same role (a session's name is the caller's own choice)."""
    if not isinstance(claimed, str):
        return False
    if claimed == verified_arn:
        return True
    principal = principal_of(claimed)
    return principal is not None and principal == principal_of(verified_arn)
