"""aws_web_identity_token: no secret at all. The client assertion is a JWT that STS issues the
profile's own role (`web_identity_role`), which the broker assumes with the profile's name as a
session tag; the role's trust policy admits that tag's value alone, so the JWT's subject names
this profile, and an authorization server that trusts it (Entra ID's federated identity
credentials) trusts one profile, never every profile of the broker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from broker.callers import ROLE_ARN
from broker.client_auth.base import Attempt, ClientAuth, Credentials
from broker.errors import ProfileMisconfigured
from broker.profile_document import ProfileDocument

# The algorithms STS signs web identity tokens with; the first is the default.
ASSERTION_ALGORITHMS = ("RS256", "ES384")
MAX_ASSERTION_AUDIENCE = 1000  # STS's own limit on an audience
ENTRA_AUDIENCE = "api://AzureADTokenExchange"


@dataclass(frozen=True, slots=True)
class WebIdentity(ClientAuth):
    method: ClassVar[str] = "aws_web_identity_token"
    fields: ClassVar[frozenset[str]] = frozenset({"assertion_audience", "assertion_algorithm", "web_identity_role"})
    role: str
    audience: str
    algorithm: str = ASSERTION_ALGORITHMS[0]

    @classmethod
    def parse(cls, document: ProfileDocument) -> Self:
        audience = document.required("assertion_audience", f" for {cls.method} (Entra ID: {ENTRA_AUDIENCE})")
        if len(audience) > MAX_ASSERTION_AUDIENCE:
            raise document.bad(f"assertion_audience may be at most {MAX_ASSERTION_AUDIENCE} characters")
        role = document.required(
            "web_identity_role", f" for {cls.method}: the ARN of the profile's own role, which the broker assumes"
        )
        if ROLE_ARN.fullmatch(role) is None:
            raise document.bad("web_identity_role must be an IAM role ARN (arn:aws:iam::123456789012:role/name)")
        return cls(role, audience, document.choice("assertion_algorithm", ASSERTION_ALGORITHMS))

    def credentials(self, attempt: Attempt) -> Credentials:
        if attempt.web_identity is None:
            raise ProfileMisconfigured(f"profile {attempt.profile}: no web identity tokens here for {self.method}")
        assertion = attempt.web_identity.assertion(self, attempt.profile, attempt.token_url, attempt.deadline)
        return Credentials.jwt_assertion(attempt.client_id, assertion.reveal())

    def describe(self) -> str:
        return f"{self.method} (a JWT STS issues {self.role} for {self.audience}, signed {self.algorithm})"
