"""What every client authentication method is: a parser of its own profile fields, and the
credentials it adds to one token request."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Self

from broker.client_assertion import ASSERTION_TYPE

if TYPE_CHECKING:
    import urllib3

    from broker.profile_document import ProfileDocument
    from broker.web_identity import WebIdentityTokens


@dataclass(frozen=True, slots=True)
class Attempt:
    """One token request about to be sent: whose, where, when, and the services a method may
    ask for what it sends (`deadline` bounds them too)."""

    profile: str
    client_id: str
    token_url: str
    now: float
    deadline: float
    web_identity: WebIdentityTokens | None = None


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a method adds to a token request: form fields, headers, and the connection pool it
    must be sent on (None: the endpoint's shared pool; mutual TLS needs its own)."""

    form: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    pool: urllib3.PoolManager | None = None

    @classmethod
    def jwt_assertion(cls, client_id: str, assertion: str) -> Credentials:
        """A JWT client assertion in the form (RFC 7523 §2.2), whoever signed it."""
        return cls(
            form={"client_id": client_id, "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
        )


class ClientAuth(ABC):
    """A client authentication method (RFC 6749 §2.3) with the profile fields it holds.

    A subclass names its `method` (the profile's `auth_method`) and its `fields` (those of the
    profile that belong to it alone), parses them, and makes each request's credentials. It is
    registered in `broker.client_auth.METHODS`. Its `repr` and `describe` hold nothing secret."""

    method: ClassVar[str]
    fields: ClassVar[frozenset[str]]

    @classmethod
    @abstractmethod
    def parse(cls, document: ProfileDocument) -> Self:
        """The method's fields, validated; raises `document.bad(...)` naming the first bad one."""

    @abstractmethod
    def credentials(self, attempt: Attempt) -> Credentials:
        """What this token request carries to authenticate the client."""

    @abstractmethod
    def describe(self) -> str:
        """One line for the operator (`token-broker-admin`), with nothing secret in it."""
