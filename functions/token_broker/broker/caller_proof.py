"""A direct caller's proof of identity: the parts of a SigV4-signed `sts:GetCallerIdentity`
request that the caller made but did not send, validated field by field.

Nothing of the caller's is forwarded as it came: the request to STS is rebuilt from the
constants here and the validated fields (CVE-2020-16250 let a client pick host, action and
headers; CVE-2022-2385 read the identity from the request instead of STS's answer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from broker.callers import PARTITION
from broker.errors import AccessDenied
from broker.sensitive import Sensitive

PROOF_VERSION = 1
FIELDS = frozenset({"v", "credential", "amz_date", "signed_headers", "signature", "security_token"})
BODY = "Action=GetCallerIdentity&Version=2011-06-15"
CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
AUDIENCE_HEADER = "X-Token-Broker-Audience"
SIGNED_HEADERS_SESSION = "content-type;host;x-amz-date;x-amz-security-token;x-token-broker-audience"
SIGNED_HEADERS_LONG_TERM = "content-type;host;x-amz-date;x-token-broker-audience"
# A proof is good from a minute before its date (clock skew) to five minutes after it.
ACCEPTED_BEFORE_SECONDS = 60
ACCEPTED_FOR_SECONDS = 300

_FUNCTION_ARN = re.compile(
    rf"(?P<unqualified>arn:(?P<partition>{PARTITION}):lambda:(?P<region>[a-z0-9-]+):\d{{12}}:function:[\w-]{{1,64}})"
    r"(?P<qualifier>:[\w$-]{1,128})?"
)
_CREDENTIAL = re.compile(r"(?P<key_id>[A-Z0-9]{16,128})/(?P<date>\d{8})/(?P<region>[a-z0-9-]{1,32})/sts/aws4_request")
_AMZ_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
# Session tokens are base64: nothing that could end a header or start another one.
_SECURITY_TOKEN = re.compile(r"[A-Za-z0-9+/=]{16,8192}")


@dataclass(frozen=True, slots=True)
class Audience:
    """The broker that proofs are made for: the direct function's unqualified ARN, as the proof's
    `X-Token-Broker-Audience` header names it, with the partition and region it lives in."""

    arn: str
    partition: str
    region: str


def parse_audience(function_arn: str, *, qualified: bool = False) -> Audience:
    """A Lambda function ARN as an `Audience`; with `qualified`, a version or alias qualifier is
    allowed and dropped. Raises `ValueError` for anything else."""
    match = _FUNCTION_ARN.fullmatch(function_arn)
    if match is None or (match["qualifier"] and not qualified):
        raise ValueError("not an unqualified Lambda function ARN")
    return Audience(match["unqualified"], match["partition"], match["region"])


@dataclass(frozen=True, slots=True)
class CallerProof:
    """A proof that passed every check that needs no STS call; `signed_at` is epoch seconds."""

    credential: str
    amz_date: str
    signed_at: int
    signed_headers: str
    signature: Sensitive
    security_token: Sensitive | None

    @property
    def accepted_until(self) -> int:
        return self.signed_at + ACCEPTED_FOR_SECONDS


def parse_caller_proof(value: object, region: str, now: float) -> CallerProof:
    """Raises `AccessDenied` saying what is wrong (never quoting a value) for a missing,
    malformed, stale or early proof, or one signed for another region or service."""
    if value is None:
        raise AccessDenied("a caller_proof is required: sign one with token_client (see the README)")
    if not isinstance(value, dict):
        raise AccessDenied("the caller_proof must be an object")
    unknown = set(value) - FIELDS
    if unknown:
        raise AccessDenied("the caller_proof has fields other than " + ", ".join(sorted(FIELDS)))
    version = value.get("v")
    if type(version) is not int or version != PROOF_VERSION:
        raise AccessDenied(f"the caller_proof's v must be {PROOF_VERSION}")
    credential, amz_date = _text(value, "credential"), _text(value, "amz_date")
    scope = _CREDENTIAL.fullmatch(credential)
    if scope is None:
        raise AccessDenied("the caller_proof's credential is not an STS SigV4 credential scope")
    if scope["region"] != region:
        raise AccessDenied(f"the caller_proof must be signed for the broker's region, {region}")
    date = _AMZ_DATE.fullmatch(amz_date)
    if date is None or amz_date[:8] != scope["date"]:
        raise AccessDenied("the caller_proof's amz_date is not the credential's date as YYYYMMDDTHHMMSSZ")
    try:
        # datetime, not strptime: its first call imports _strptime and locale, 7 ms of a cold start
        year, month, day, hour, minute, second = map(int, date.groups())
        signed_at = int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp())
    except ValueError:
        raise AccessDenied("the caller_proof's amz_date is not a valid date") from None
    if not signed_at - ACCEPTED_BEFORE_SECONDS <= now <= signed_at + ACCEPTED_FOR_SECONDS:
        raise AccessDenied("the caller_proof is stale or from the future: sign a new one")
    security_token = value.get("security_token")
    if security_token is not None and (
        not isinstance(security_token, str) or not _SECURITY_TOKEN.fullmatch(security_token)
    ):
        raise AccessDenied("the caller_proof's security_token is not a session token")
    expected_headers = SIGNED_HEADERS_LONG_TERM if security_token is None else SIGNED_HEADERS_SESSION
    if _text(value, "signed_headers") != expected_headers:
        raise AccessDenied(f"the caller_proof must sign exactly {expected_headers}")
    signature = _text(value, "signature")
    if not _SIGNATURE.fullmatch(signature):
        raise AccessDenied("the caller_proof's signature must be 64 lower-case hex digits")
    return CallerProof(
        credential=credential,
        amz_date=amz_date,
        signed_at=signed_at,
        signed_headers=expected_headers,
        signature=Sensitive(signature),
        security_token=Sensitive(security_token) if security_token is not None else None,
    )


def sts_request_headers(proof: CallerProof, audience: Audience, host: str) -> dict[str, str]:
    """The headers of the signed request, rebuilt: the caller chose none of their names and
    only the validated fields of their values."""
    headers = {
        "Host": host,
        "Content-Type": CONTENT_TYPE,
        "X-Amz-Date": proof.amz_date,
        AUDIENCE_HEADER: audience.arn,
        "Accept": "application/json",  # unsigned: asks STS for JSON instead of XML
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential={proof.credential}, SignedHeaders={proof.signed_headers}, "
            f"Signature={proof.signature.reveal()}"
        ),
    }
    if proof.security_token is not None:
        headers["X-Amz-Security-Token"] = proof.security_token.reveal()
    return headers


def _text(value: dict[str, object], field: str) -> str:
    text = value.get(field)
    if not isinstance(text, str):
        raise AccessDenied(f"the caller_proof's {field} must be a string")
    return text
