"""The whole local stack in one place: moto's server, the local authorization server, the
cache table and key, and a demo profile, wired as the template wires them in AWS."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from devstack.local.authserver import FederatedCredential, LocalAuthorizationServer
from devstack.local.aws import LocalAws
from devstack.local.lambda_host import BROKER_ENVIRONMENT, RENEWAL_FUNCTION_ARN
from devstack.local.resource_server import LocalResourceServer
from devstack.local.sts import Issued, LocalSts, credentials_environment

if TYPE_CHECKING:
    from devstack.local.lambda_api import LocalLambdaApi

DEMO_PROFILE = "okta-default"
DEMO_CLIENT = "demo-service-app"
# Okta's default for API Services apps since February 2024: DPoP-bound tokens.
DPOP_PROFILE = "okta-dpop"
DPOP_CLIENT = "demo-dpop-app"
# The local developer's role: the demo profile admits its sessions, as a real profile would a team's.
DEVELOPER_ROLE = "local-developer"
DEVELOPER_ROLE_ARN = f"arn:aws:iam::123456789012:role/{DEVELOPER_ROLE}"
BROKER_ROLE = "token-broker-function"
BROKER_ROLE_ARN = f"arn:aws:iam::123456789012:role/{BROKER_ROLE}"
# Each secretless profile's own role lives under this path (the template's ProfileRolePath).
PROFILE_ROLE_PATH = "/token-broker-profiles/token-broker-local/"


def profile_role_arn(profile: str) -> str:
    return f"arn:aws:iam::123456789012:role{PROFILE_ROLE_PATH}{profile}"


def create_profile(
    aws: LocalAws,
    server: LocalAuthorizationServer,
    name: str,
    client_id: str,
    auth_method: str = "client_secret_basic",
    **fields: Any,
) -> dict[str, Any]:
    """A client with a fresh secret on the local authorization server (requiring DPoP when the
    profile's `token_binding` is `dpop`, as Okta's API Services apps do by default), and the
    profile secret that names it; returns the profile's document."""
    document = {
        "token_url": server.token_url,
        "client_id": client_id,
        "client_secret": secrets.token_urlsafe(24),
        "auth_method": auth_method,
        **fields,
    }
    server.add_client(client_id, document["client_secret"], auth_method, dpop=fields.get("token_binding") == "dpop")
    aws.put_profile(BROKER_ENVIRONMENT["SECRET_PREFIX"] + name, document)
    return document


def create_web_identity_profile(
    aws: LocalAws,
    server: LocalAuthorizationServer,
    sts: LocalSts,
    name: str,
    client_id: str,
    trusting: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A profile that authenticates with web identity tokens of its own role, and everything
    around it as the runbook sets it up: the role (under the stack's profile role path), whose
    trust policy admits the broker's role with this profile's tag alone, and a client on the local
    authorization server with a federated credential (as Entra ID's) that trusts the role's JWTs.
    `trusting` changes what the credential trusts (issuer, subject, audience, algorithms);
    returns the profile's document."""
    role = profile_role_arn(name)
    sts.trust(role, name, BROKER_ROLE)
    credential = FederatedCredential(**{"issuer": sts.issuer, "subject": role, **(trusting or {})})
    document = {
        "token_url": server.token_url,
        "client_id": client_id,
        "auth_method": "aws_web_identity_token",
        "assertion_audience": credential.audience,
        "web_identity_role": role,
        **fields,
    }
    server.add_client(client_id, auth_method="aws_web_identity_token", federated=credential)
    aws.put_profile(BROKER_ENVIRONMENT["SECRET_PREFIX"] + name, document)
    return document


@dataclass
class LocalStack:
    log_level: str = "WARNING"
    aws: LocalAws = field(default_factory=LocalAws)
    server: LocalAuthorizationServer = field(default_factory=LocalAuthorizationServer)
    sts: LocalSts = field(default_factory=LocalSts)
    resource: LocalResourceServer = field(init=False)
    environment: dict[str, str] = field(default_factory=dict)
    developer: Issued = field(init=False)
    broker_role: Issued = field(init=False)

    def __post_init__(self) -> None:
        # credentials are issued by the stand-in itself; it need not be running yet
        self.developer = self.sts.assume_role(DEVELOPER_ROLE, "local-session")
        # the broker's functions run as this role: moto takes any credentials, and the local STS
        # lets it assume secretless profiles' roles
        self.broker_role = self.sts.assume_role(BROKER_ROLE, "token-broker")
        self.resource = LocalResourceServer(self.server)

    def __enter__(self) -> LocalStack:
        self.aws.start()
        self.server.start()
        self.sts.start()
        self.resource.start()
        self.resource.require_nonce = True  # as an Okta API may ask
        create_profile(
            self.aws,
            self.server,
            DEMO_PROFILE,
            DEMO_CLIENT,
            scopes=["customScope"],
            allowed_callers=[DEVELOPER_ROLE_ARN],
        )
        create_profile(
            self.aws,
            self.server,
            DPOP_PROFILE,
            DPOP_CLIENT,
            scopes=["customScope"],
            token_binding="dpop",
            allowed_callers=[DEVELOPER_ROLE_ARN],
        )
        self.environment = {
            **self.aws.environment(),
            **credentials_environment(self.broker_role),
            "AWS_ENDPOINT_URL_STS": self.sts.url,
            **BROKER_ENVIRONMENT,
            "TOKEN_TABLE_NAME": self.aws.create_token_table("token-broker-local"),
            "TOKEN_KMS_KEY_ID": self.aws.create_kms_key(),  # cached tokens are sealed, as deployed
            "POWERTOOLS_LOG_LEVEL": self.log_level,
        }
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.resource.stop()
        self.sts.stop()
        self.server.stop()
        self.aws.stop()

    def environment_with(self, lambda_api: LocalLambdaApi) -> dict[str, str]:
        """The broker's environment when `lambda_api` serves its functions: renewals ahead of
        expiry are handed to the renewal function there, as the template wires them in AWS."""
        return {
            **self.environment,
            "AWS_ENDPOINT_URL_LAMBDA": lambda_api.endpoint_url,
            "RENEWAL_FUNCTION": RENEWAL_FUNCTION_ARN,
        }

    def describe(self) -> list[str]:
        return [
            f"  moto server            {self.aws.endpoint_url}  (Secrets Manager, KMS, DynamoDB "
            f"table {self.environment['TOKEN_TABLE_NAME']!r})",
            f"  authorization server   {self.server.token_url}  (client {DEMO_CLIENT})",
            f"  STS (strict stand-in)  {self.sts.url}  (checks caller proofs' SigV4 signatures)",
            f"  profile {DEMO_PROFILE!r}      secret {BROKER_ENVIRONMENT['SECRET_PREFIX'] + DEMO_PROFILE!r}, "
            f"admits {DEVELOPER_ROLE_ARN}",
            f"  profile {DPOP_PROFILE!r}         the same, token_binding dpop (client {DPOP_CLIENT} requires DPoP)",
            f"  resource server        {self.resource.url}/api  (takes the server's tokens; DPoP ones with a proof "
            "from their key, and its nonce)",
        ]
