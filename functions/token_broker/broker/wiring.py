"""Builds the service and its AWS clients once per container, tuned for Lambda."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import botocore.session
from botocore.config import Config

from broker.caller_identity import CallerIdentity
from broker.config import ENFORCE, Settings
from broker.profile_store import ProfileStore
from broker.renewal_function import RenewalFunction
from broker.service import TokenService
from broker.sts import Sts
from broker.token_endpoint import TokenEndpoint
from broker.token_sealer import TokenSealer
from broker.token_table import TokenTable
from broker.web_identity import OwnCredentials, RoleSessions, WebIdentityTokens

# The table (and KMS, which only serves the table) is a cache: when it is slow or down, giving
# up fast and serving without it beats waiting. The SDK does not retry the table at all: a
# throttled read is waited for by the service, which knows the request's deadline, and any
# other failure skips the table for a while. Secrets Manager is needed for every cold
# profile, so it gets the SDK's usual patience.
TABLE_CLIENT_CONFIG = Config(connect_timeout=0.5, read_timeout=1.0, retries={"max_attempts": 1, "mode": "standard"})
KMS_CLIENT_CONFIG = Config(connect_timeout=0.5, read_timeout=1.0, retries={"max_attempts": 2, "mode": "standard"})
SECRETS_CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"})
# Handing a renewal over is an Event invocation that Lambda queues and answers at once; a caller
# waits for it, so it is asked once and given up quickly: if Lambda does not take it, the request
# makes the bounded try itself, within the same budget.
LAMBDA_CLIENT_CONFIG = Config(connect_timeout=0.5, read_timeout=1.0, retries={"max_attempts": 1, "mode": "standard"})


@dataclass(frozen=True, slots=True)
class AwsClients:
    dynamodb: Any
    secretsmanager: Any
    kms: Any
    awslambda: Any


class MadeAtFirstUse:
    """A client (or session) made when it is first used: most containers never hand a renewal
    over nor ask for a web identity token, and a client costs 6 to 8 ms of CPU to make (every
    answer reads its profile, so Secrets Manager's is made at once)."""

    __slots__ = ("_client", "_lock", "_make")

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._client: Any = None
        self._lock = threading.Lock()  # the simulated fleet shares clients among threads

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make()
        return getattr(self._client, name)


def aws_clients(overrides: Config | None = None) -> AwsClients:
    """The container's clients, from one botocore session (boto3 adds only import time);
    `overrides` changes settings of all of them (the simulated fleet of devstack.measure.fleet_model
    shares them among hundreds of threads)."""
    session = botocore.session.get_session()

    def client(service: str, config: Config) -> Any:
        return session.create_client(service, config=config.merge(overrides) if overrides is not None else config)

    return AwsClients(
        dynamodb=client("dynamodb", TABLE_CLIENT_CONFIG),
        secretsmanager=client("secretsmanager", SECRETS_CLIENT_CONFIG),
        kms=client("kms", KMS_CLIENT_CONFIG),
        awslambda=MadeAtFirstUse(lambda: client("lambda", LAMBDA_CLIENT_CONFIG)),
    )


def build_service(settings: Settings, clients: AwsClients | None = None) -> TokenService:
    clients = clients or aws_clients()
    sealer = TokenSealer(clients.kms, settings.kms_key_id) if settings.kms_key_id else None
    renewal_function = None
    if settings.renewal_function is not None:
        renewal_function = RenewalFunction(clients.awslambda, settings.renewal_function)
    return TokenService(
        settings=settings,
        profiles=ProfileStore(clients.secretsmanager, settings.secret_prefix),
        store=TokenTable(
            clients.dynamodb, settings.table_name, sealer, refusal_seconds=settings.negative_cache_seconds
        ),
        endpoint=TokenEndpoint(web_identity=web_identity_tokens(settings.region, settings.sts_endpoint_override)),
        renewal_function=renewal_function,
    )


def web_identity_tokens(region: str, sts_endpoint_override: str | None, session: Any = None) -> WebIdentityTokens:
    """The broker's web identity tokens: each profile's role, assumed with the function's own
    credentials (from a session made at first use). With an operator's `session`, the JWT names
    the operator instead (`token-broker-admin try`)."""
    holder = session if session is not None else MadeAtFirstUse(botocore.session.get_session)
    sts = Sts(region, sts_endpoint_override, credentials=lambda: holder.get_credentials())
    return WebIdentityTokens(sts, OwnCredentials() if session is not None else RoleSessions(sts))


def build_caller_identity(settings: Settings) -> CallerIdentity:
    return CallerIdentity(
        Sts(settings.region, settings.sts_endpoint_override),
        settings.region,
        settings.caller_auth == ENFORCE,
        settings.broker_audience,
    )
