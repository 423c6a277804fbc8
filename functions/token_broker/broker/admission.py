"""Admission, before anything else a request does: the profile's `allowed_callers` against the
caller STS verified. In audit mode (`CALLER_AUTH=audit`) a refusal is logged, not enforced."""

from __future__ import annotations

from broker import observability
from broker.caller_identity import Caller
from broker.callers import CallerRule, caller_admitted
from broker.errors import AccessDenied, ProfileMisconfigured
from broker.profile_store import ProfileStore
from broker.profiles import Profile


def admitted_profile(profiles: ProfileStore, name: str, caller: Caller, *, enforce: bool) -> Profile:
    """The profile, once its `allowed_callers` admit the caller. A misconfigured profile is told
    of only to a caller it admits (or one audit mode lets through)."""
    try:
        profile = profiles.get(name)
    except ProfileMisconfigured as misconfigured:
        if misconfigured.allowed_callers is not None:
            _admit(name, misconfigured.allowed_callers, caller, enforce=enforce)
        raise
    _admit(name, profile.allowed_callers, caller, enforce=enforce)
    return profile


def _admit(name: str, allowed_callers: tuple[CallerRule, ...], caller: Caller, *, enforce: bool) -> None:
    refusal = caller.refusal
    if refusal is None and (caller.principal is None or not caller_admitted(allowed_callers, caller.principal)):
        # the description never tells which profile fields exist or what they hold
        refusal = AccessDenied("this caller may not use this profile")
    if refusal is None:
        return
    if enforce:
        raise refusal
    observability.logger.warning(
        "caller would be refused (CALLER_AUTH=audit)",
        extra={"profile": name, "caller": caller.arn, "path": caller.door, "refusal": refusal.error},
    )
