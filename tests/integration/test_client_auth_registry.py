"""Client authentication is a type in one registry (docs/ADDING_A_METHOD.md): a method the broker
has never heard of, registered with one line, is parsed, described, keyed and sent on its own
connection pool with no other change. The token request goes to the real local authorization
server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar, Self

import pytest
import urllib3

from broker.client_auth import METHODS, Attempt, ClientAuth, Credentials
from broker.errors import ProfileMisconfigured
from broker.http_exchange import pool_manager
from broker.profile_document import ProfileDocument
from broker.profiles import cache_key, parse_profile
from broker.token_endpoint import TokenEndpoint
from devstack.local.authserver import LocalAuthorizationServer


@dataclass(frozen=True, slots=True)
class HeaderKey(ClientAuth):
    """A made-up method: the client's key in a header of its own, sent on a pool of its own."""

    method: ClassVar[str] = "x_header_key"
    fields: ClassVar[frozenset[str]] = frozenset({"header_key"})
    header_key: str
    pool: urllib3.PoolManager = field(compare=False, repr=False)

    @classmethod
    def parse(cls, document: ProfileDocument) -> Self:
        return cls(document.required("header_key", f" for {cls.method}"), pool_manager(num_pools=1))

    def credentials(self, attempt: Attempt) -> Credentials:
        return Credentials(
            form={"client_id": attempt.client_id, "client_secret": self.header_key},
            headers={"X-Client-Key": "present"},
            pool=self.pool,
        )

    def describe(self) -> str:
        return f"{self.method} (a key in a header)"


@pytest.fixture
def registered() -> Iterator[None]:
    METHODS[HeaderKey.method] = HeaderKey  # the one line a new method adds
    yield
    del METHODS[HeaderKey.method]


def document(server: LocalAuthorizationServer, **fields: object) -> str:
    base = {"token_url": server.token_url, "client_id": "header-client", "allowed_callers": []}
    return json.dumps({**base, **fields})


@pytest.mark.usefixtures("registered")
def test_a_new_method_is_parsed_described_keyed_and_sent_on_its_own_pool(
    auth_server: LocalAuthorizationServer,
) -> None:
    # Given a method registered with one line, and a client that posts its key (as the form says)
    auth_server.add_client("header-client", "k" * 24, "client_secret_post")
    profile = parse_profile("p", document(auth_server, auth_method="x_header_key", header_key="k" * 24))

    # When the broker's token endpoint asks for a token with it
    issued = TokenEndpoint().fetch(profile, frozenset(), time.time() + 10)

    # Then the request carried the method's credentials, on the method's own pool
    assert issued.access_token.reveal() in auth_server.issued
    assert isinstance(profile.client_auth, HeaderKey)
    assert profile.client_auth.pool.pools, "the method's own pool made the connection"
    assert profile.client_auth.describe() == "x_header_key (a key in a header)"
    secret = parse_profile("p", document(auth_server, client_secret="s" * 24))
    assert cache_key(profile, frozenset()) != cache_key(secret, frozenset())


@pytest.mark.usefixtures("registered")
def test_its_fields_are_refused_with_another_method_and_required_with_its_own(
    auth_server: LocalAuthorizationServer,
) -> None:
    with pytest.raises(ProfileMisconfigured, match="header_key is not used with auth_method client_secret_basic"):
        parse_profile("p", document(auth_server, client_secret="s" * 24, header_key="k"))
    with pytest.raises(ProfileMisconfigured, match="header_key is required for x_header_key"):
        parse_profile("p", document(auth_server, auth_method="x_header_key"))


def test_an_unregistered_method_is_refused_naming_the_registered_ones(auth_server: LocalAuthorizationServer) -> None:
    with pytest.raises(
        ProfileMisconfigured, match="auth_method must be one of client_secret_basic, client_secret_post"
    ):
        parse_profile("p", document(auth_server, auth_method="x_header_key"))
