"""Parsing what comes from outside: requests, profile secrets, the function's environment."""

from __future__ import annotations

import json
from typing import Any

import pytest

from broker.client_auth import PrivateKeyJwt, SecretBasic, WebIdentity
from broker.config import Settings
from broker.errors import ConfigurationError, InvalidRequest, ProfileMisconfigured
from broker.profiles import cache_key, parse_profile
from broker.sensitive import Sensitive
from broker.token_binding import Bearer, Dpop
from broker.token_request import TokenRequest, parse_request
from tests.conftest import EVENTS, SECRETS_USED
from tests.credentials import certificate_pem, private_key, private_pem

GOOD = {
    "token_url": "https://dev-1.okta.com/oauth2/default/v1/token",
    "client_id": "0oa1",
    "client_secret": "s3cr3t",
    "allowed_callers": ["arn:aws:iam::123456789012:role/orders-*"],
}
LAMBDA = {"TOKEN_TABLE_NAME": "t", "AWS_REGION": "eu-west-1"}


WEB_IDENTITY = {
    "auth_method": "aws_web_identity_token",
    "assertion_audience": "api://AzureADTokenExchange",
    "web_identity_role": "arn:aws:iam::123456789012:role/token-broker-profiles/stack/p",
}


def jwt_document(key: Any, **fields: str) -> dict[str, Any]:
    document = {k: v for k, v in GOOD.items() if k != "client_secret"}
    return {**document, "auth_method": "private_key_jwt", "private_key": private_pem(key, SECRETS_USED), **fields}


class TestRequest:
    def test_a_full_request(self) -> None:
        request = parse_request(
            {"profile": "okta-default", "scopes": ["b", "a", "a"], "min_ttl": 0, "force_refresh": True}
        )
        assert request == TokenRequest("okta-default", frozenset({"a", "b"}), 0, True)

    def test_an_http_api_event_sent_directly_is_an_invalid_request(self) -> None:
        event = json.loads((EVENTS / "http_token_request.json").read_text())
        with pytest.raises(InvalidRequest, match="unknown field"):
            parse_request(event)

    def test_the_caller_proof_is_never_printed_with_the_request(self) -> None:
        request = parse_request({"profile": "p", "caller_proof": {"security_token": "FwoGZXIvYXdzEXAMPLE"}})
        assert "FwoGZXIvYXdzEXAMPLE" not in repr(request)

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
        assert profile.client_auth == SecretBasic(Sensitive("s3cr3t"))
        assert profile.binding == Bearer()
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
            # loopback to urllib.parse, a connection to 192.0.2.2 for urllib3
            "http://192.0.2.2:8080\\@127.0.0.1/token",
            "http://127.0.0.1%2f@192.0.2.2/token",
            "https://idp.example.com/token#fragment",
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

    def test_allowed_callers_is_required_and_an_empty_list_admits_nobody(self) -> None:
        document = {**GOOD}
        del document["allowed_callers"]
        with pytest.raises(ProfileMisconfigured, match="allowed_callers is required"):
            parse_profile("p", json.dumps(document))
        assert parse_profile("p", json.dumps({**GOOD, "allowed_callers": []})).allowed_callers == ()

    def test_the_complaint_names_the_field_for_the_log_never_its_value_and_the_answer_neither(self) -> None:
        with pytest.raises(ProfileMisconfigured) as raised:
            parse_profile("p", json.dumps({**GOOD, "client_secret": 12345678}))
        assert "client_secret" in raised.value.detail
        assert "12345678" not in raised.value.detail
        assert "client_secret" not in json.dumps(raised.value.answer())

    def test_a_misconfigured_profile_still_says_whom_it_admits(self) -> None:
        with pytest.raises(ProfileMisconfigured) as raised:
            parse_profile("p", json.dumps({**GOOD, "refresh_token": "x"}))
        assert raised.value.allowed_callers is not None
        assert [rule.name for rule in raised.value.allowed_callers] == ["orders-"]


class TestTokenBinding:
    """token_binding: Bearer unless the profile asks for DPoP; each binding's fields are its own."""

    @pytest.mark.parametrize(
        ("fields", "binding"),
        [
            ({"token_binding": "dpop"}, Dpop("ES256")),
            ({"token_binding": "dpop", "dpop_algorithm": "PS256"}, Dpop("PS256")),
            ({"token_binding": "bearer"}, Bearer()),
        ],
    )
    def test_a_profile_names_its_binding(self, fields: dict[str, str], binding: object) -> None:
        assert parse_profile("p", json.dumps({**GOOD, **fields})).binding == binding

    @pytest.mark.parametrize(
        ("fields", "named"),
        [
            ({"token_binding": "mtls"}, "token_binding must be one of bearer, dpop"),
            ({"token_binding": "dpop", "dpop_algorithm": "HS256"}, "dpop_algorithm must be one of ES256, RS256, PS256"),
            ({"dpop_algorithm": "ES256"}, "dpop_algorithm is not used with token_binding bearer"),
        ],
    )
    def test_a_binding_it_cannot_make_is_refused_naming_the_field(self, fields: dict[str, str], named: str) -> None:
        with pytest.raises(ProfileMisconfigured, match=named):
            parse_profile("p", json.dumps({**GOOD, **fields}))


class TestCredentialKinds:
    """aws_web_identity_token and certificate credentials: what a profile of each must hold."""

    def test_a_web_identity_profile_holds_no_secret_and_names_its_audience(self) -> None:
        document = {**GOOD, **WEB_IDENTITY}
        del document["client_secret"]
        profile = parse_profile("p", json.dumps(document))
        assert profile.client_auth == WebIdentity(
            WEB_IDENTITY["web_identity_role"], "api://AzureADTokenExchange", "RS256"
        )

    @pytest.mark.parametrize(
        ("changes", "named"),
        [
            ({}, "assertion_audience"),
            ({"assertion_audience": "api://x", "client_secret": "s"}, "client_secret"),
            ({**WEB_IDENTITY, "assertion_algorithm": "HS256"}, "assertion_algorithm"),
            ({"assertion_audience": "a" * 1001}, "assertion_audience"),
            ({"assertion_audience": "api://x", "certificate": "x"}, "certificate"),
            ({"assertion_audience": "api://x"}, "web_identity_role is required"),
            ({**WEB_IDENTITY, "web_identity_role": "arn:aws:iam::123456789012:user/alice"}, "web_identity_role"),
            ({**WEB_IDENTITY, "web_identity_role": "arn:aws:iam::*:role/x"}, "web_identity_role"),
        ],
    )
    def test_a_web_identity_profile_refuses_what_it_cannot_use(self, changes: dict[str, str], named: str) -> None:
        document = {k: v for k, v in GOOD.items() if k != "client_secret"}
        with pytest.raises(ProfileMisconfigured, match=named):
            parse_profile("p", json.dumps({**document, "auth_method": "aws_web_identity_token", **changes}))

    def test_assertion_fields_are_refused_with_another_method(self) -> None:
        with pytest.raises(ProfileMisconfigured, match="assertion_audience is not used"):
            parse_profile("p", json.dumps({**GOOD, "assertion_audience": "api://x"}))

    @pytest.mark.parametrize(("kind", "algorithm"), [("rsa", None), ("rsa", "PS256"), ("rsa", "RS256"), ("ec", None)])
    def test_a_certificate_of_the_key_is_named_by_its_thumbprint(self, kind: str, algorithm: str | None) -> None:
        key = private_key(kind)
        fields = {"signing_algorithm": algorithm} if algorithm else {}
        profile = parse_profile("p", json.dumps(jwt_document(key, certificate=certificate_pem(key), **fields)))
        assert isinstance(profile.client_auth, PrivateKeyJwt)
        signing_key = profile.client_auth.signing_key
        assert signing_key.algorithm == (algorithm or ("RS256" if kind == "rsa" else "ES256"))
        assert len(signing_key.certificate_thumbprint or "") == 43  # 32 bytes, base64url, unpadded

    @pytest.mark.parametrize(
        ("certificate", "algorithm", "named"),
        [
            (lambda key: certificate_pem(private_key("rsa")), None, "certificate does not hold"),
            (lambda key: certificate_pem(key, valid_from_days=-30, valid_until_days=-1), None, "expired"),
            (lambda key: certificate_pem(key, valid_from_days=2), None, "not yet valid"),
            (lambda key: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", None, "certificate is not"),
            (lambda key: certificate_pem(key), "HS256", "signing_algorithm"),
            (lambda key: certificate_pem(key), "ES256", "signing_algorithm"),
        ],
        ids=[
            "another-key",
            "expired",
            "not-yet-valid",
            "not-a-certificate",
            "unknown-algorithm",
            "ec-algorithm-on-rsa",
        ],
    )
    def test_a_certificate_or_algorithm_that_cannot_sign_is_refused_naming_the_field(
        self, certificate: Any, algorithm: str | None, named: str
    ) -> None:
        key = private_key("rsa")
        fields = {"signing_algorithm": algorithm} if algorithm else {}
        document = jwt_document(key, certificate=certificate(key), **fields)
        with pytest.raises(ProfileMisconfigured, match=named) as raised:
            parse_profile("p", json.dumps(document))
        assert "BEGIN" not in raised.value.detail

    @pytest.mark.parametrize("field", ["private_key", "certificate"])
    def test_a_pem_field_holding_two_keys_or_certificates_is_refused_naming_it(self, field: str) -> None:
        # cryptography would read the first and ignore the second: the profile is not what it seems
        key = private_key("ec")
        document = jwt_document(key, certificate=certificate_pem(key))
        document[field] = (
            document[field]
            + "\n"
            + (private_pem(private_key("ec"), SECRETS_USED) if field == "private_key" else certificate_pem(key))
        )
        with pytest.raises(ProfileMisconfigured, match=f"{field} must hold exactly one") as raised:
            parse_profile("p", json.dumps(document))
        assert "BEGIN" not in raised.value.detail

    def test_the_cache_key_separates_profiles_that_differ_only_in_credential_kind(self) -> None:
        secret = parse_profile("p", json.dumps(GOOD))
        federated = {k: v for k, v in GOOD.items() if k != "client_secret"}
        federated.update(WEB_IDENTITY)
        assert cache_key(secret, frozenset()) != cache_key(parse_profile("p", json.dumps(federated)), frozenset())


class TestSensitive:
    def test_every_way_of_printing_it_prints_a_mask(self) -> None:
        value = Sensitive("hunter2-token")
        assert "hunter2" not in f"{value} {value!r} {value:>20} {[value]} { ({'k': value}) }"
        assert value.reveal() == "hunter2-token"


class TestSettings:
    def test_defaults_follow_the_contract(self) -> None:
        settings = Settings.from_env(LAMBDA)
        assert settings == Settings("t", "eu-west-1", "token-broker/", None, 60, 300, 30, 30, "enforce", None)

    @pytest.mark.parametrize(
        ("environ", "named"),
        [
            ({}, "TOKEN_TABLE_NAME"),
            ({"TOKEN_TABLE_NAME": "t"}, "AWS_REGION"),
            ({**LAMBDA, "MIN_TTL_SECONDS": "sixty"}, "MIN_TTL_SECONDS"),
            ({**LAMBDA, "REFRESH_AHEAD_SECONDS": "-1"}, "REFRESH_AHEAD_SECONDS"),
            ({**LAMBDA, "CALLER_AUTH": "off"}, "CALLER_AUTH"),
        ],
    )
    def test_a_bad_value_fails_loudly_naming_the_variable(self, environ: dict[str, str], named: str) -> None:
        with pytest.raises(ConfigurationError, match=named):
            Settings.from_env(environ)

    @pytest.mark.parametrize("url", ["http://127.0.0.1:4566", "http://localhost:9000/", "http://[::1]:8080"])
    def test_a_loopback_sts_endpoint_is_honoured(self, url: str) -> None:
        assert Settings.from_env({**LAMBDA, "AWS_ENDPOINT_URL_STS": url}).sts_endpoint_override == url

    @pytest.mark.parametrize(
        "url",
        [
            "https://sts.attacker.example",
            "http://169.254.169.254/",
            "http://127.0.0.1.nip.io/",
            "::",
            # urllib.parse sees 127.0.0.1, urllib3 connects to 192.0.2.2
            "http://192.0.2.2:4566\\@127.0.0.1/",
            "http://user@127.0.0.1:4566/",
            "http://127.0.0.1%2f@192.0.2.2/",
        ],
    )
    def test_any_other_sts_endpoint_is_ignored_for_sts_itself(self, url: str) -> None:
        assert Settings.from_env({**LAMBDA, "AWS_ENDPOINT_URL_STS": url}).sts_endpoint_override is None

    def test_renewal_function_is_a_function_arn_qualified_or_not(self) -> None:
        alias = "arn:aws:lambda:eu-west-1:123456789012:function:token-broker-renewal:live"
        assert Settings.from_env({**LAMBDA, "RENEWAL_FUNCTION": alias}).renewal_function == alias
        assert Settings.from_env(LAMBDA).renewal_function is None
        with pytest.raises(ConfigurationError, match="RENEWAL_FUNCTION"):
            Settings.from_env({**LAMBDA, "RENEWAL_FUNCTION": "token-broker-renewal"})

    def test_broker_audience_names_the_direct_function_in_this_region(self) -> None:
        arn = "arn:aws:lambda:eu-west-1:123456789012:function:token-broker-prod-TokenBroker-1A2B"
        audience = Settings.from_env({**LAMBDA, "BROKER_AUDIENCE": arn}).broker_audience
        assert audience is not None
        assert (audience.arn, audience.partition, audience.region) == (arn, "aws", "eu-west-1")

    @pytest.mark.parametrize(
        "value",
        [
            "arn:aws:lambda:eu-west-1:123456789012:function:token-broker:live",
            "arn:aws:lambda:us-east-1:123456789012:function:token-broker",
            "token-broker",
        ],
    )
    def test_any_other_broker_audience_fails_loudly(self, value: str) -> None:
        with pytest.raises(ConfigurationError, match="BROKER_AUDIENCE"):
            Settings.from_env({**LAMBDA, "BROKER_AUDIENCE": value})
