"""The suite-wide leak check (tests/conftest.py) finds a real leak in the broker's own output
format, and cannot fire on chance."""

from __future__ import annotations

import logging
from types import ModuleType

from devstack.local.authserver import LocalAuthorizationServer
from tests.conftest import Broker, Profiles, leaked


def test_a_token_the_broker_logged_is_found(
    app_module: ModuleType, broker: Broker, profiles: Profiles, auth_server: LocalAuthorizationServer
) -> None:
    # Given a real token, written by the broker's own formatter as a careless line would hold it
    token = broker.invoke({"profile": profiles.create()}).answer["access_token"]
    record = logging.LogRecord("token-broker", logging.DEBUG, __file__, 1, "fetched", None, None)
    record.token = token
    line = app_module.logger.registered_formatter.format(record)

    # Then the check finds it, among everything the suite issued
    assert leaked(line, set(auth_server.issued)) == [token]


def test_values_too_short_to_be_unmistakable_are_not_looked_for() -> None:
    line = '{"level":"INFO","message":"answered","status":200}'
    assert leaked(line, {"'", "", "200", "INFO"}) == []
