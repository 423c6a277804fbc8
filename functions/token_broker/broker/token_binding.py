"""What an issued token is bound to (`token_binding`): nothing (Bearer, RFC 6750), or a key pair
whose proofs must go with it (DPoP, RFC 9449). One type per binding, registered in `BINDINGS`,
orthogonal to how the client authenticates (`broker.client_auth`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Self

from broker import dpop

if TYPE_CHECKING:
    from broker.profile_document import ProfileDocument
    from broker.sensitive import Sensitive


class ProofOfPossession(ABC):
    """One token request's binding: the headers each attempt adds, and the key the token is bound
    to (None for a Bearer token)."""

    key: Sensitive | None

    @abstractmethod
    def headers(self, url: str, now: float, nonce: str | None) -> dict[str, str]: ...


class _Unbound(ProofOfPossession):
    key = None

    def headers(self, url: str, now: float, nonce: str | None) -> dict[str, str]:
        return {}


UNBOUND = _Unbound()


class _Proven(ProofOfPossession):
    def __init__(self, key: dpop.DpopKey) -> None:
        self._key = key
        self.key = key.private_jwk

    def headers(self, url: str, now: float, nonce: str | None) -> dict[str, str]:
        return {dpop.PROOF_HEADER: self._key.proof("POST", url, now, nonce)}


class TokenBinding(ABC):
    """A subclass names its profile value (`name`), the `token_type` the authorization server
    must answer with, and the profile `fields` it alone holds."""

    name: ClassVar[str]
    token_type: ClassVar[str]
    fields: ClassVar[frozenset[str]]

    @classmethod
    @abstractmethod
    def parse(cls, document: ProfileDocument) -> Self: ...

    @abstractmethod
    def for_request(self) -> ProofOfPossession:
        """What one token request is bound by: for DPoP, a new key pair, made here."""

    @abstractmethod
    def cache_identity(self) -> tuple[str, ...]:
        """What the cache key adds for this binding: tokens of two bindings are never shared."""

    def describe(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Bearer(TokenBinding):
    name: ClassVar[str] = "bearer"
    token_type: ClassVar[str] = "Bearer"
    fields: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def parse(cls, document: ProfileDocument) -> Self:
        return cls()

    def for_request(self) -> ProofOfPossession:
        return UNBOUND

    def cache_identity(self) -> tuple[str, ...]:
        return ()  # the keys of Bearer profiles are those they had before bindings existed


@dataclass(frozen=True, slots=True)
class Dpop(TokenBinding):
    name: ClassVar[str] = "dpop"
    token_type: ClassVar[str] = "DPoP"
    fields: ClassVar[frozenset[str]] = frozenset({"dpop_algorithm"})
    algorithm: str = dpop.ALGORITHMS[0]

    @classmethod
    def parse(cls, document: ProfileDocument) -> Self:
        return cls(document.choice("dpop_algorithm", dpop.ALGORITHMS))

    def for_request(self) -> ProofOfPossession:
        return _Proven(dpop.new_key(self.algorithm))

    def cache_identity(self) -> tuple[str, ...]:
        return (self.name, self.algorithm)

    def describe(self) -> str:
        return f"{self.name} ({self.algorithm})"


BEARER = Bearer()
# Every binding, by the profile's `token_binding`; the first is the default.
BINDINGS: dict[str, type[TokenBinding]] = {binding.name: binding for binding in (Bearer, Dpop)}
