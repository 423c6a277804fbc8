"""private_key_jwt (RFC 7523 §2.2): a fresh assertion signed with the profile's private key,
with its certificate's thumbprint for Entra ID's certificate credentials."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Self

from broker.client_assertion import SigningKey, client_assertion, load_signing_key
from broker.client_auth.base import Attempt, ClientAuth, Credentials
from broker.profile_document import ProfileDocument
from broker.sensitive import Sensitive


@dataclass(frozen=True, slots=True)
class PrivateKeyJwt(ClientAuth):
    method: ClassVar[str] = "private_key_jwt"
    fields: ClassVar[frozenset[str]] = frozenset({"private_key", "key_id", "certificate", "signing_algorithm"})
    private_key: Sensitive
    # parsed from private_key (and certificate); equal profiles are told apart by those themselves
    signing_key: SigningKey = field(compare=False)
    key_id: str | None = None
    certificate: str | None = None

    @classmethod
    def parse(cls, document: ProfileDocument) -> Self:
        private_key = document.required("private_key", f" for {cls.method}")
        certificate = document.text("certificate")
        signing_key = load_signing_key(private_key, document.bad, document.text("signing_algorithm"), certificate)
        return cls(Sensitive(private_key), signing_key, document.text("key_id"), certificate)

    def credentials(self, attempt: Attempt) -> Credentials:
        assertion = client_assertion(self.signing_key, attempt.client_id, attempt.token_url, self.key_id, attempt.now)
        return Credentials.jwt_assertion(attempt.client_id, assertion)

    def describe(self) -> str:
        kind = "a certificate credential" if self.certificate else "a private key"
        return f"{self.method} ({kind}, signing {self.signing_key.algorithm})"
