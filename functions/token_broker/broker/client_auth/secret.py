"""A client secret, in the Authorization header (RFC 6749 §2.3.1) or in the form."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import ClassVar, Self
from urllib.parse import quote_plus

from broker.client_auth.base import Attempt, ClientAuth, Credentials
from broker.profile_document import ProfileDocument
from broker.sensitive import Sensitive


@dataclass(frozen=True, slots=True)
class _ClientSecret(ClientAuth):
    fields: ClassVar[frozenset[str]] = frozenset({"client_secret"})
    client_secret: Sensitive

    @classmethod
    def parse(cls, document: ProfileDocument) -> Self:
        return cls(Sensitive(document.required("client_secret", f" for {cls.method}")))


@dataclass(frozen=True, slots=True)
class SecretBasic(_ClientSecret):
    method: ClassVar[str] = "client_secret_basic"

    def credentials(self, attempt: Attempt) -> Credentials:
        # RFC 6749 §2.3.1: form-encode id and secret before joining and Base64-encoding them.
        user_pass = f"{quote_plus(attempt.client_id)}:{quote_plus(self.client_secret.reveal())}"
        return Credentials(headers={"Authorization": "Basic " + base64.b64encode(user_pass.encode()).decode()})

    def describe(self) -> str:
        return f"{self.method} (a client secret, in the Authorization header)"


@dataclass(frozen=True, slots=True)
class SecretPost(_ClientSecret):
    method: ClassVar[str] = "client_secret_post"

    def credentials(self, attempt: Attempt) -> Credentials:
        return Credentials(form={"client_id": attempt.client_id, "client_secret": self.client_secret.reveal()})

    def describe(self) -> str:
        return f"{self.method} (a client secret, in the form)"
