"""Who may call: the allowed_callers grammar, admission, and caller proofs refused before any STS call."""

from __future__ import annotations

import calendar
import time
from typing import Any, cast

import pytest

from broker.caller_identity import IDENTITIES_MAX, CallerIdentity, Door, invoked_audience
from broker.caller_proof import (
    SIGNED_HEADERS_LONG_TERM,
    SIGNED_HEADERS_SESSION,
    Audience,
    parse_audience,
    parse_caller_proof,
    sts_request_headers,
)
from broker.callers import BadCallerEntry, Principal, caller_admitted, parse_caller_rule, principal_of, same_principal
from broker.errors import AccessDenied, InternalError
from broker.sts import Sts

ACCOUNT = "123456789012"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/billing-worker/billing-fn"
SIGNED_AT = calendar.timegm((2026, 11, 29, 5, 0, 13))
GOOD_PROOF: dict[str, Any] = {
    "v": 1,
    "credential": "ASIAEXAMPLEEXAMPLE12/20261129/us-east-1/sts/aws4_request",
    "amz_date": "20261129T050013Z",
    "signed_headers": SIGNED_HEADERS_SESSION,
    "signature": "0123456789abcdef" * 4,
    "security_token": "FwoGZXIvYXdzEBAaDExampleSessionToken/+=",
}


class TestAllowedCallersGrammar:
    @pytest.mark.parametrize(
        "entry",
        [
            f"arn:aws:iam::{ACCOUNT}:role/billing-worker",
            f"arn:aws:iam::{ACCOUNT}:role/service/billing-worker",
            f"arn:aws:iam::{ACCOUNT}:role/billing-*",
            f"arn:aws:iam::{ACCOUNT}:role/*",
            f"arn:aws:iam::{ACCOUNT}:user/ci",
            f"arn:aws-us-gov:iam::{ACCOUNT}:user/team/ci-*",
        ],
    )
    def test_role_and_user_arns_with_a_trailing_star_are_rules(self, entry: str) -> None:
        parse_caller_rule(entry)

    @pytest.mark.parametrize(
        "entry",
        [
            "*",
            "arn:aws:iam::*:role/billing-*",  # any account
            f"arn:*:iam::{ACCOUNT}:role/billing",  # any partition
            f"arn:aws:iam::{ACCOUNT}:role/team-a/*",  # a path wildcard cannot be honoured
            f"arn:aws:iam::{ACCOUNT}:role/*/billing",
            f"arn:aws:iam::{ACCOUNT}:role/bill*ing",
            f"arn:aws:iam::{ACCOUNT}:role/billing**",
            f"arn:aws:sts::{ACCOUNT}:assumed-role/billing/session",  # session names are the caller's choice
            f"arn:aws:iam::{ACCOUNT}:root",
            f"arn:aws:iam::{ACCOUNT}:group/admins",
            f"arn:aws:iam::{ACCOUNT}:role/",
            f"arn:aws:iam::{ACCOUNT[:-1]}:role/billing",
            f"arn:aws:iam::{ACCOUNT}:role/billing\n",
            5,
        ],
    )
    def test_anything_else_is_refused_when_the_profile_is_parsed(self, entry: object) -> None:
        with pytest.raises(BadCallerEntry):
            parse_caller_rule(entry)

    def test_the_complaint_never_quotes_the_entry(self) -> None:
        with pytest.raises(BadCallerEntry) as raised:
            parse_caller_rule("arn:aws:iam::*:role/secret-team-name")
        assert "secret-team-name" not in str(raised.value)


class TestAdmission:
    @pytest.mark.parametrize(
        ("entries", "caller", "admitted"),
        [
            ([f"arn:aws:iam::{ACCOUNT}:role/teamA/billing-worker"], SESSION, True),  # path not compared
            ([f"arn:aws:iam::{ACCOUNT}:role/billing-*"], SESSION, True),
            (
                [f"arn:aws:iam::{ACCOUNT}:role/billing-*"],
                f"arn:aws:sts::{ACCOUNT}:assumed-role/payments-admin/x",
                False,
            ),
            ([f"arn:aws:iam::{ACCOUNT}:role/billing-*"], f"arn:aws:sts::{ACCOUNT}:assumed-role/billing/x", False),
            (
                [f"arn:aws:iam::{ACCOUNT}:role/billing-worker"],
                "arn:aws:sts::999999999999:assumed-role/billing-worker/x",
                False,
            ),
            ([f"arn:aws:iam::{ACCOUNT}:user/ci"], f"arn:aws:iam::{ACCOUNT}:user/deploy/ci", True),
            ([f"arn:aws:iam::{ACCOUNT}:user/ci"], f"arn:aws:sts::{ACCOUNT}:assumed-role/ci/ci", False),
            ([f"arn:aws:iam::{ACCOUNT}:role/ci"], f"arn:aws:iam::{ACCOUNT}:user/ci", False),
            ([f"arn:aws:iam::{ACCOUNT}:role/*"], f"arn:aws:iam::{ACCOUNT}:root", False),
            ([f"arn:aws:iam::{ACCOUNT}:role/*"], f"arn:aws:sts::{ACCOUNT}:federated-user/bob", False),
            ([f"arn:aws:iam::{ACCOUNT}:role/billing-worker"], SESSION + "/extra", False),
            ([], SESSION, False),
        ],
    )
    def test_on_verified_arns(self, entries: list[str], caller: str, admitted: bool) -> None:
        rules = tuple(parse_caller_rule(entry) for entry in entries)
        assert caller_admitted(rules, principal_of(caller)) is admitted


class TestSamePrincipal:
    """API Gateway's claimed caller against the proof's verified one: role sessions as their role."""

    @pytest.mark.parametrize(
        ("claimed", "verified", "same"),
        [
            (SESSION, SESSION, True),
            (f"arn:aws:sts::{ACCOUNT}:assumed-role/billing-worker/other-session", SESSION, True),
            (f"arn:aws:sts::{ACCOUNT}:assumed-role/billing-worker-2/billing-fn", SESSION, False),
            ("arn:aws:sts::999999999999:assumed-role/billing-worker/billing-fn", SESSION, False),
            (f"arn:aws:iam::{ACCOUNT}:user/billing-worker", SESSION, False),
            (f"arn:aws:iam::{ACCOUNT}:user/ci", f"arn:aws:iam::{ACCOUNT}:user/deploy/ci", True),
            (f"arn:aws:iam::{ACCOUNT}:root", f"arn:aws:iam::{ACCOUNT}:root", True),
            (f"arn:aws:iam::{ACCOUNT}:root", SESSION, False),
            ("", SESSION, False),
            (["arn"], SESSION, False),
            ({"userArn": SESSION}, SESSION, False),
        ],
    )
    def test_is_the_same_arn_or_the_same_role(self, claimed: object, verified: str, same: bool) -> None:
        assert same_principal(claimed, principal_of(verified)) is same


class TestCallerProof:
    def test_a_well_formed_fresh_proof_is_accepted(self) -> None:
        proof = parse_caller_proof(GOOD_PROOF, "us-east-1", SIGNED_AT + 10)
        assert proof.accepted_until == SIGNED_AT + 300
        assert "FwoGZXIvYXdz" not in repr(proof)

    def test_long_term_credentials_sign_without_a_token(self) -> None:
        document = {k: v for k, v in GOOD_PROOF.items() if k != "security_token"}
        document["signed_headers"] = SIGNED_HEADERS_LONG_TERM
        assert parse_caller_proof(document, "us-east-1", SIGNED_AT).security_token is None

    @pytest.mark.parametrize("seconds", [-61, 301, 86_400])
    def test_outside_one_minute_before_to_five_minutes_after_it_is_stale(self, seconds: int) -> None:
        with pytest.raises(AccessDenied, match="stale"):
            parse_caller_proof(GOOD_PROOF, "us-east-1", SIGNED_AT + seconds)

    @pytest.mark.parametrize("seconds", [-60, 0, 300])
    def test_the_window_includes_its_edges(self, seconds: int) -> None:
        parse_caller_proof(GOOD_PROOF, "us-east-1", SIGNED_AT + seconds)

    @pytest.mark.parametrize(
        ("change", "named"),
        [
            ({"v": 2}, "v"),
            ({"v": True}, "v"),
            ({"v": "1"}, "v"),
            ({"extra": "x"}, "fields"),
            ({"role_arn": "arn:aws:iam::1:role/admin"}, "fields"),
            ({"credential": "ASIAEXAMPLEEXAMPLE12/20261129/eu-west-1/sts/aws4_request"}, "region"),
            ({"credential": "ASIAEXAMPLEEXAMPLE12/20261129/us-east-1/iam/aws4_request"}, "credential"),
            ({"credential": "ASIAEXAMPLEEXAMPLE12/20261128/us-east-1/sts/aws4_request"}, "amz_date"),
            ({"credential": "asia/20261129/us-east-1/sts/aws4_request"}, "credential"),
            ({"amz_date": "2026-11-29T05:00:13Z"}, "amz_date"),
            ({"amz_date": "20261129T250013Z"}, "amz_date"),
            ({"signed_headers": "host;x-amz-date"}, "sign exactly"),
            ({"signed_headers": SIGNED_HEADERS_LONG_TERM}, "sign exactly"),
            ({"signature": "0123456789ABCDEF" * 4}, "signature"),
            ({"signature": "00" * 31}, "signature"),
            ({"signature": 12}, "signature"),
            ({"security_token": "abc\r\nX-Amz-Target: evil"}, "security_token"),
            ({"security_token": "abcdefghijklmnop\n"}, "security_token"),
            ({"security_token": ["x"]}, "security_token"),
            ({"security_token": "a" * 9000}, "security_token"),
        ],
    )
    def test_each_malformed_field_is_refused_by_name(self, change: dict[str, Any], named: str) -> None:
        with pytest.raises(AccessDenied, match=named) as raised:
            parse_caller_proof({**GOOD_PROOF, **change}, "us-east-1", SIGNED_AT)
        assert "EXAMPLE" not in raised.value.description

    @pytest.mark.parametrize("value", [None, "proof", [GOOD_PROOF], 1])
    def test_a_missing_or_non_object_proof_is_refused(self, value: object) -> None:
        with pytest.raises(AccessDenied):
            parse_caller_proof(value, "us-east-1", time.time())

    def test_the_sts_request_is_rebuilt_from_constants(self) -> None:
        proof = parse_caller_proof(GOOD_PROOF, "us-east-1", SIGNED_AT)
        audience = parse_audience("arn:aws:lambda:us-east-1:123456789012:function:token-broker")

        headers = sts_request_headers(proof, audience, "sts.us-east-1.amazonaws.com")

        assert headers["Host"] == "sts.us-east-1.amazonaws.com"
        assert headers["X-Token-Broker-Audience"] == audience.arn
        assert headers["Content-Type"] == "application/x-www-form-urlencoded; charset=utf-8"
        assert headers["Authorization"] == (
            "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLEEXAMPLE12/20261129/us-east-1/sts/aws4_request, "
            f"SignedHeaders={SIGNED_HEADERS_SESSION}, Signature={GOOD_PROOF['signature']}"
        )


class TestAudience:
    @pytest.mark.parametrize(
        ("invoked", "audience"),
        [
            (
                "arn:aws:lambda:us-east-1:123456789012:function:broker",
                Audience("arn:aws:lambda:us-east-1:123456789012:function:broker", "aws", "us-east-1"),
            ),
            (
                "arn:aws:lambda:us-east-1:123456789012:function:broker:live",
                Audience("arn:aws:lambda:us-east-1:123456789012:function:broker", "aws", "us-east-1"),
            ),
            (
                "arn:aws-cn:lambda:cn-north-1:123456789012:function:b:7",
                Audience("arn:aws-cn:lambda:cn-north-1:123456789012:function:b", "aws-cn", "cn-north-1"),
            ),
        ],
    )
    def test_without_broker_audience_is_the_invoked_functions_unqualified_arn(
        self, invoked: str, audience: Audience
    ) -> None:
        assert invoked_audience(invoked) == audience

    def test_an_unexpected_invoked_arn_is_an_internal_error(self) -> None:
        with pytest.raises(InternalError):
            invoked_audience("token-broker")

    @pytest.mark.parametrize(
        "value",
        [
            "arn:aws:lambda:us-east-1:123456789012:function:broker:live",  # qualified
            "arn:aws:lambda:us-east-1:123456789012:function:broker:$LATEST",
            "token-broker",
            "arn:aws:iam::123456789012:role/broker",
        ],
    )
    def test_broker_audience_is_only_an_unqualified_function_arn(self, value: str) -> None:
        with pytest.raises(ValueError, match="unqualified"):
            parse_audience(value)


class StsStandIn:
    """Answers every proof as one caller's and counts what it is asked (a unit test has no STS)."""

    def __init__(self) -> None:
        self.asked = 0

    def caller(self, proof: object, audience: Audience, deadline: float) -> Principal:
        self.asked += 1
        return principal_of(SESSION)


class TestRememberedIdentities:
    """A verified proof is remembered for its window; only that very proof is answered from memory."""

    FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:token-broker"

    def identity(self, sts: StsStandIn, now: float = SIGNED_AT + 1) -> CallerIdentity:
        return CallerIdentity(cast(Sts, sts), "us-east-1", enforce=True, clock=lambda: now)

    def verify(self, identity: CallerIdentity, proof: dict[str, Any]) -> str | None:
        return identity.verify(Door.DIRECT, proof, self.FUNCTION, SIGNED_AT + 10).arn

    def test_a_proof_goes_to_sts_once(self) -> None:
        sts = StsStandIn()
        identity = self.identity(sts)

        answers = [self.verify(identity, dict(GOOD_PROOF)) for _ in range(3)]

        assert answers == [SESSION] * 3
        assert sts.asked == 1

    @pytest.mark.parametrize(
        "change",
        [
            {"credential": "ASIAEXAMPLEEXAMPLE13/20261129/us-east-1/sts/aws4_request"},
            {"amz_date": "20261129T050014Z"},
            {"security_token": GOOD_PROOF["security_token"] + "A"},
            {"signed_headers": SIGNED_HEADERS_SESSION.replace("content-type;", "")},
        ],
    )
    def test_a_proof_with_a_remembered_signature_but_another_field_changed_is_not_answered_from_memory(
        self, change: dict[str, str]
    ) -> None:
        sts = StsStandIn()
        identity = self.identity(sts)
        self.verify(identity, dict(GOOD_PROOF))

        try:
            self.verify(identity, GOOD_PROOF | change)
        except AccessDenied:
            assert sts.asked == 1  # refused before STS
        else:
            assert sts.asked == 2  # STS was asked about it

    def test_a_remembered_proof_past_its_window_is_refused_not_remembered(self) -> None:
        sts = StsStandIn()
        now = [SIGNED_AT + 1.0]
        identity = CallerIdentity(cast(Sts, sts), "us-east-1", enforce=True, clock=lambda: now[0])
        self.verify(identity, dict(GOOD_PROOF))
        now[0] = SIGNED_AT + 5 * 60 + 1

        with pytest.raises(AccessDenied):
            self.verify(identity, dict(GOOD_PROOF))
        assert sts.asked == 1

    def test_when_full_the_oldest_proof_is_forgotten_first(self) -> None:
        sts = StsStandIn()
        identity = self.identity(sts)
        proofs = [{**GOOD_PROOF, "signature": f"{number:064x}"} for number in range(IDENTITIES_MAX + 1)]
        for proof in proofs:
            self.verify(identity, proof)

        self.verify(identity, proofs[-1])
        assert sts.asked == IDENTITIES_MAX + 1  # the newest is remembered
        self.verify(identity, proofs[0])
        assert sts.asked == IDENTITIES_MAX + 2  # the oldest was forgotten to make room
