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
    """A caller's ARN, parsed once where it enters (STS's answer, or what an event claims) and
    carried as this: what admission compares, and the ARN as it was stated."""

    arn: str
    partition: str
    account: str
    kind: str  # "role" for an assumed-role session, "user" for an IAM user, "other" for anything else
    name: str

    def same_as(self, other: Principal) -> bool:
        """The same ARN, or sessions of the same role (a session's name is its caller's choice)."""
        if self.arn == other.arn:
            return True
        mine, theirs = (
            (self.partition, self.account, self.kind, self.name),
            (
                other.partition,
                other.account,
                other.kind,
                other.name,
            ),
        )
        return self.kind != OTHER and mine == theirs


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


OTHER = "other"  # a root user, a federated user: never admitted, and never the same as another


@functools.lru_cache(maxsize=1024)  # a container sees few callers, each on every request
def principal_of(arn: str) -> Principal:
    """An ARN as a `Principal`: an assumed-role session as its role, an IAM user as itself, and
    anything else (a root user, a federated user, a role ARN that no caller presents) as `other`."""
    session = _SESSION.fullmatch(arn)
    if session is not None:
        return Principal(arn, session["partition"], session["account"], "role", session["name"])
    user = _USER.fullmatch(arn)
    if user is not None:
        return Principal(arn, user["partition"], user["account"], "user", user["name"])
    return Principal(arn, "", "", OTHER, "")


def caller_admitted(rules: tuple[CallerRule, ...], caller: Principal) -> bool:
    """Whether any rule admits the verified caller; no rules admit nobody."""
    return any(rule.admits(caller) for rule in rules)


def same_principal(claimed: object, verified: Principal) -> bool:
    """Whether `claimed` (an ARN from an event, unverified) names the principal STS verified."""
    return isinstance(claimed, str) and bool(claimed) and principal_of(claimed).same_as(verified)
