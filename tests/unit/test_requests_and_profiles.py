"""Parsing what comes from outside: requests, profile secrets, the function's environment."""

from __future__ import annotations

import json

import pytest

from broker.config import Settings
from broker.errors import ConfigurationError, InvalidRequest, ProfileMisconfigured
from broker.profiles import parse_profile
from broker.sensitive import Sensitive
from broker.token_request import TokenRequest, parse_request

GOOD = {"token_url": "https://dev-1.okta.com/oauth2/default/v1/token", "client_id": "0oa1", "client_secret": "s3cr3t"}


class TestRequest:
    def test_a_full_request(self) -> None:
        request = parse_request(
            {"profile": "okta-default", "scopes": ["b", "a", "a"], "min_ttl": 0, "force_refresh": True}
        )
        assert request == TokenRequest("okta-default", frozenset({"a", "b"}), 0, True)

    def test_an_empty_scope_list_means_the_profile_defaults(self) -> None:
        assert parse_request({"profile": "p", "scopes": []}).scopes is None

    @pytest.mark.parametrize("name", ["a" * 128, "Okta.default_1-x", "0"])
    def test_profile_names_the_contract_allows(self, name: str) -> None:
        assert parse_request({"profile": name}).profile == name

    @pytest.mark.parametrize("name", ["", "a" * 129, "-x", "x/y", "é", "x\n", 5])
    def test_profile_names_it_refuses(self, name: object) -> None:
        with pytest.raises(InvalidRequest, match="profile"):
            parse_request({"profile": name})

    def test_an_unknown_field_is_named_but_cut_short(self) -> None:
        with pytest.raises(InvalidRequest) as raised:
            parse_request({"profile": "p", "x" * 10_000: 1})
        assert len(raised.value.description) < 200

    @pytest.mark.parametrize("scope", ["a" * 201, "", 'quote"', "back\\slash", "tab\t", "ü"])
    def test_scopes_must_be_rfc_6749_scope_tokens(self, scope: str) -> None:
        with pytest.raises(InvalidRequest, match="scopes"):
            parse_request({"profile": "p", "scopes": [scope]})


class TestProfile:
    def test_defaults(self) -> None:
        profile = parse_profile("p", json.dumps(GOOD))
        assert profile.auth_method == "client_secret_basic"
        assert profile.client_secret == Sensitive("s3cr3t")
        assert profile.scopes == frozenset()
        assert profile.allowed_scopes is None

    @pytest.mark.parametrize(
        "url", ["http://127.0.0.1:8080/token", "http://localhost/token", "http://[::1]:9000/t", "http://127.8.9.10/t"]
    )
    def test_plain_http_only_to_loopback(self, url: str) -> None:
        assert parse_profile("p", json.dumps({**GOOD, "token_url": url})).token_url == url

    @pytest.mark.parametrize(
        "url",
        [
            "http://dev-1.okta.com/token",
            "http://127.0.0.1.nip.io/token",
            "http://10.0.0.1/token",
            "https:///token",
            "https://user:pw@idp.example.com/token",
            "https://idp.example.com:99999/token",
            "idp.example.com/token",
        ],
    )
    def test_other_urls_are_refused(self, url: str) -> None:
        with pytest.raises(ProfileMisconfigured, match="token_url"):
            parse_profile("p", json.dumps({**GOOD, "token_url": url}))

    def test_private_key_jwt_needs_a_key_not_a_secret(self) -> None:
        document = {**GOOD, "auth_method": "private_key_jwt"}
        del document["client_secret"]
        with pytest.raises(ProfileMisconfigured, match="private_key"):
            parse_profile("p", json.dumps(document))

    def test_the_secret_value_never_appears_in_the_complaint(self) -> None:
        with pytest.raises(ProfileMisconfigured) as raised:
            parse_profile("p", json.dumps({**GOOD, "client_secret": 12345678}))
        assert "client_secret" in raised.value.description
        assert "12345678" not in raised.value.description


class TestSensitive:
    def test_every_way_of_printing_it_prints_a_mask(self) -> None:
        value = Sensitive("hunter2-token")
        assert "hunter2" not in f"{value} {value!r} {value:>20} {[value]} { ({'k': value}) }"
        assert value.reveal() == "hunter2-token"


class TestSettings:
    def test_defaults_follow_the_contract(self) -> None:
        settings = Settings.from_env({"TOKEN_TABLE_NAME": "t"})
        assert settings == Settings("t", "token-broker/", None, 60, 300, 30, 30)

    @pytest.mark.parametrize(
        ("environ", "named"),
        [
            ({}, "TOKEN_TABLE_NAME"),
            ({"TOKEN_TABLE_NAME": "t", "MIN_TTL_SECONDS": "sixty"}, "MIN_TTL_SECONDS"),
            ({"TOKEN_TABLE_NAME": "t", "REFRESH_AHEAD_SECONDS": "-1"}, "REFRESH_AHEAD_SECONDS"),
        ],
    )
    def test_a_bad_value_fails_loudly_naming_the_variable(self, environ: dict[str, str], named: str) -> None:
        with pytest.raises(ConfigurationError, match=named):
            Settings.from_env(environ)
