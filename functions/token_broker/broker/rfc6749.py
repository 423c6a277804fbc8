"""The grammars of RFC 6749 that the broker holds OAuth text to, wherever it comes from (a
caller, a profile, an authorization server or the cache table), before any of it is sent,
stored or answered."""

from __future__ import annotations

import re
from typing import TypeGuard

# §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ); bounded.
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,200}")
# §3.3: scope = scope-token *( SP scope-token ), as the broker writes a granted scope; or none.
GRANTED_SCOPE = re.compile(r"(?:[\x21\x23-\x5b\x5d-\x7e]{1,200}(?: [\x21\x23-\x5b\x5d-\x7e]{1,200})*)?")
MAX_GRANTED_SCOPE_CHARACTERS = 16 * 1024
# §5.2: error = 1*( %x20-21 / %x23-5B / %x5D-7E ); bounded, as anything shown to callers.
ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}")
# Appendix A.12: access-token = 1*VSCHAR
ACCESS_TOKEN = re.compile(r"[\x20-\x7e]+")


def is_granted_scope(value: object) -> TypeGuard[str]:
    """A scope string in the form the broker stores and answers: scope tokens, one space apart."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_GRANTED_SCOPE_CHARACTERS
        and GRANTED_SCOPE.fullmatch(value) is not None
    )


def is_error_code(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and ERROR_CODE.fullmatch(value) is not None


def is_access_token(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and ACCESS_TOKEN.fullmatch(value) is not None
