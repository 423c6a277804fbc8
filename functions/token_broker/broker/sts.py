"""STS, at the endpoint of the broker's own region (never the global one):
- checks a caller proof by sending the `GetCallerIdentity` request it signs, rebuilt, and reads
  the caller's ARN from STS's answer;
- asks `GetWebIdentityToken` for a JWT that says who the broker's own role is, signed with the
  broker's credentials. Sent as a plain query request (botocore's signer, no service model), it
  needs no botocore that knows the operation: the Lambda runtime's serves.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from broker import observability
from broker.caller_proof import BODY, CONTENT_TYPE, Audience, CallerProof, sts_request_headers
from broker.callers import PARTITION, Principal, principal_of
from broker.errors import AccessDenied, AuthenticationUnavailable, ProfileMisconfigured, UpstreamUnavailable
from broker.http_exchange import Answer, ExchangeFailed, ExchangeTimeout, Limits, pool_manager, post
from broker.sensitive import Sensitive

PARTITION_SUFFIXES = {
    "aws": "amazonaws.com",
    "aws-us-gov": "amazonaws.com",
    "aws-cn": "amazonaws.com.cn",
    "aws-iso": "c2s.ic.gov",
    "aws-iso-b": "sc2s.sgov.gov",
    "aws-iso-e": "cloud.adc-e.uk",
    "aws-iso-f": "csp.hci.ic.gov",
    "aws-eusc": "amazonaws.eu",
}
# Regions outside the `aws` partition, by their names' prefixes.
REGION_PARTITIONS = (
    ("cn-", "aws-cn"),
    ("us-gov-", "aws-us-gov"),
    ("us-isob-", "aws-iso-b"),
    ("us-isof-", "aws-iso-f"),
    ("us-iso-", "aws-iso"),
    ("eu-isoe-", "aws-iso-e"),
    ("eusc-", "aws-eusc"),
)
# GetWebIdentityToken's JWTs live this long (STS's default): a credential, kept short.
WEB_IDENTITY_SECONDS = 300
# A profile's role session lives STS's shortest time; its name is the profile's, cut to STS's limit.
ROLE_SESSION_SECONDS = 900
MAX_SESSION_NAME = 64
# The session tag that names the profile a role session serves; role trust policies test it.
PROFILE_TAG = "token-broker-profile"
_JWS_PART = rb"[A-Za-z0-9_\-]+"
_WEB_IDENTITY_TOKEN = re.compile(rb"<WebIdentityToken>(%s\.%s\.%s)</WebIdentityToken>" % ((_JWS_PART,) * 3))
# What a refusal of GetWebIdentityToken means for the operator, by STS's code.
WEB_IDENTITY_REFUSALS = {
    "OutboundWebIdentityFederationDisabledException": (
        "outbound identity federation is not enabled in this account (aws iam enable-outbound-web-identity-federation)"
    ),
    "AccessDenied": (
        "the profile's web_identity_role may not call sts:GetWebIdentityToken for this assertion_audience "
        "and assertion_algorithm (its AssertionAudience in docs/profile-role.yaml)"
    ),
}
# STS answers in tens of milliseconds; a caller waits at most this long for it.
BUDGET_SECONDS = 3.0
CONNECT_TIMEOUT_SECONDS = 1.0
READ_TIMEOUT_SECONDS = 2.0
MAX_ANSWER_BYTES = 16 * 1024
RETRY_AFTER_SECONDS = 1
# STS says "try again" with these codes (HTTP 400 for throttling), and with any 5xx.
UNAVAILABLE_CODES = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded", "ServiceUnavailable"})
_ERROR_CODE = re.compile(r"[A-Za-z.]{1,64}")
_XML_ERROR_CODE = re.compile(rb"<Code>([A-Za-z.]{1,64})</Code>")
_IDENTITY_ARN = re.compile(rf"arn:(?P<partition>{PARTITION}):(?:sts|iam)::(?P<account>\d{{12}}):[\x21-\x7e]{{1,2000}}")

_ROLE_CREDENTIALS = re.compile(
    rb"<AccessKeyId>(?P<key>[A-Z0-9]{16,128})</AccessKeyId>\s*"
    rb"<SecretAccessKey>(?P<secret>[A-Za-z0-9/+=]{16,128})</SecretAccessKey>\s*"
    rb"<SessionToken>(?P<token>[A-Za-z0-9/+=]{16,8192})</SessionToken>\s*"
    rb"<Expiration>(?P<expiration>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)</Expiration>"
)

POOL = pool_manager(num_pools=2, maxsize=2)


@dataclass(frozen=True, slots=True)
class RoleSession:
    """A profile role's session: botocore's frozen credentials, and when they expire (epoch)."""

    credentials: Any = field(repr=False)
    expires_at: float


class Sts:
    def __init__(
        self,
        region: str,
        endpoint_override: str | None = None,
        pool: object = POOL,
        credentials: Callable[[], Any] | None = None,
    ) -> None:
        """`endpoint_override` is the loopback STS of the local stack and tests, never another.
        `credentials` gives the credentials the broker's own requests are signed with (botocore's)."""
        self._region = region
        self._override = endpoint_override
        self._pool = pool
        self._credentials = credentials

    def assume_role(self, role: str, profile: str, deadline: float) -> RoleSession:
        """Session credentials of `role` for `profile`, asked with the broker's own credentials:
        the session is tagged `token-broker-profile` = the profile's name (the role's trust policy
        admits that value alone) and named after it. A refusal is `ProfileMisconfigured`, logged
        with the role that refused; an outage or throttling is `UpstreamUnavailable`."""
        params = {
            "Action": "AssumeRole",
            "Version": "2011-06-15",
            "RoleArn": role,
            "RoleSessionName": profile[:MAX_SESSION_NAME],
            "DurationSeconds": str(ROLE_SESSION_SECONDS),
            "Tags.member.1.Key": PROFILE_TAG,
            "Tags.member.1.Value": profile,
        }
        answer = self._signed_query(self._own_credentials(profile), params, deadline)
        session = _role_session(answer.body) if answer is not None and answer.status == 200 else None
        if session is not None:
            return session
        self._refused("AssumeRole", answer, profile, {"role": role})
        raise ProfileMisconfigured(
            f"profile {profile}: STS refused AssumeRole of web_identity_role {role}: its trust policy must admit "
            f"the broker's roles with the session tag {PROFILE_TAG}={profile} (docs/RUNBOOK.md, Entra ID)"
        )

    def web_identity_token(
        self, credentials: Any, audience: str, algorithm: str, profile: str, deadline: float
    ) -> Sensitive:
        """A JWT from `GetWebIdentityToken` for `audience`, signed with `algorithm`, naming the
        principal whose `credentials` (botocore's frozen credentials, or `None` for the broker's
        own) sign the request. A refusal (the feature off, no permission) is `ProfileMisconfigured`,
        logged with what to do; an outage or throttling is `UpstreamUnavailable`."""
        params = {
            "Action": "GetWebIdentityToken",
            "Version": "2011-06-15",
            "Audience.member.1": audience,
            "SigningAlgorithm": algorithm,
            "DurationSeconds": str(WEB_IDENTITY_SECONDS),
        }
        answer = self._signed_query(credentials or self._own_credentials(profile), params, deadline)
        token = _WEB_IDENTITY_TOKEN.search(answer.body[:MAX_ANSWER_BYTES]) if answer and answer.status == 200 else None
        if token is not None:
            return Sensitive(token.group(1).decode())
        code = self._refused("GetWebIdentityToken", answer, profile, {})
        hint = WEB_IDENTITY_REFUSALS.get(code, "see STS's error code")
        raise ProfileMisconfigured(f"profile {profile}: STS refused GetWebIdentityToken ({code}): {hint}")

    def _own_credentials(self, profile: str) -> Any:
        if self._credentials is None or (credentials := self._credentials()) is None:
            raise ProfileMisconfigured(f"profile {profile}: the broker has no AWS credentials to ask STS with")
        return credentials.get_frozen_credentials()

    def _signed_query(self, credentials: Any, params: dict[str, str], deadline: float) -> Answer | None:
        """A query action of STS, signed with `credentials` (SigV4, no service model needed) and
        sent to this region's endpoint; None when STS could not be reached."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        host = f"sts.{self._region}.{PARTITION_SUFFIXES[partition_of(self._region)]}"
        body = urlencode(params)
        request = AWSRequest(
            "POST", f"https://{host}/", data=body, headers={"Content-Type": CONTENT_TYPE, "Host": host}
        )
        SigV4Auth(credentials, "sts", self._region).add_auth(request)
        return self._ask(host, body, dict(request.headers.items()), deadline)

    def _refused(self, action: str, answer: Answer | None, profile: str, about: dict[str, str]) -> str:
        """STS's error code for an answer that holds no result, logged; raises `UpstreamUnavailable`
        when STS is down, throttling, or answered what it never answers."""
        code = _error_code(answer) if answer is not None else "unreachable"
        status = answer.status if answer is not None else None
        observability.logger.warning(
            f"STS refused {action}", extra={"profile": profile, "status": status, "code": code, **about}
        )
        if answer is None or answer.status == 200 or _try_again(answer, code):
            raise UpstreamUnavailable(f"STS could not answer {action} now", retry_after=RETRY_AFTER_SECONDS)
        return code

    def caller(self, proof: CallerProof, audience: Audience, deadline: float) -> Principal:
        """The caller, as STS's answer states its ARN, parsed once here; raises `AccessDenied`
        when STS refuses the proof and `AuthenticationUnavailable` when it cannot be asked."""
        partition = audience.partition
        suffix = PARTITION_SUFFIXES.get(partition)
        if suffix is None:
            raise AccessDenied("the broker's partition has no known STS endpoint")
        host = f"sts.{self._region}.{suffix}"
        unverified = AuthenticationUnavailable(
            "the caller proof could not be verified now", retry_after=RETRY_AFTER_SECONDS
        )
        answer = self._ask(host, BODY, sts_request_headers(proof, audience, host), deadline)
        if answer is None:
            raise unverified
        if answer.status == 200:
            return principal_of(_identity(answer, partition))
        code = _error_code(answer)
        observability.logger.warning("STS refused the caller proof", extra={"status": answer.status, "code": code})
        if _try_again(answer, code):
            raise unverified
        raise AccessDenied("STS did not accept the caller proof")

    def _ask(self, host: str, body: str, headers: dict[str, str], deadline: float) -> Answer | None:
        """STS's answer at `host` (or the loopback endpoint that replaces it); None, logged, when
        STS could not be reached before `deadline`."""
        try:
            limits = Limits(deadline, CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS, MAX_ANSWER_BYTES)
            return post(self._pool, self._override or f"https://{host}/", body, headers, limits)  # type: ignore[arg-type]
        except (ExchangeTimeout, ExchangeFailed) as failure:
            observability.logger.warning("STS unreachable", extra={"failure": type(failure).__name__})
            return None


def partition_of(region: str) -> str:
    """The partition a region belongs to, by its name."""
    return next((partition for prefix, partition in REGION_PARTITIONS if region.startswith(prefix)), "aws")


def _identity(answer: Answer, partition: str) -> str:
    """The ARN of a well-formed `GetCallerIdentityResult`, in the broker's partition, whose
    account is the ARN's own; anything else is a refusal."""
    document = answer.json_object()
    response = document.get("GetCallerIdentityResponse") if document else None
    result = response.get("GetCallerIdentityResult") if isinstance(response, dict) else None
    arn = result.get("Arn") if isinstance(result, dict) else None
    match = _IDENTITY_ARN.fullmatch(arn) if isinstance(arn, str) else None
    if (
        match is None
        or not isinstance(result, dict)
        or match["partition"] != partition
        or result.get("Account") != match["account"]
    ):
        observability.logger.warning("STS answered without a well-formed GetCallerIdentityResult")
        raise AccessDenied("the caller's identity could not be established")
    return match.group(0)


def _role_session(body: bytes) -> RoleSession | None:
    """The credentials of an `AssumeRoleResult`, or None when the answer does not hold them."""
    from botocore.credentials import ReadOnlyCredentials

    match = _ROLE_CREDENTIALS.search(body[:MAX_ANSWER_BYTES])
    if match is None:
        return None
    expiration = match["expiration"].decode()
    expires_at = calendar.timegm(time.strptime(expiration.split(".")[0].removesuffix("Z"), "%Y-%m-%dT%H:%M:%S"))
    credentials = ReadOnlyCredentials(match["key"].decode(), match["secret"].decode(), match["token"].decode())
    return RoleSession(credentials, float(expires_at))


def _try_again(answer: Answer, code: str) -> bool:
    """STS is down or throttling (a 5xx, a 429, or a throttling code with HTTP 400)."""
    return answer.status >= 500 or answer.status == 429 or code in UNAVAILABLE_CODES


def _error_code(answer: Answer) -> str:
    """STS's error code from a JSON or XML error answer, or "unknown"; only a name, never text."""
    document = answer.json_object()
    error = document.get("Error") if document else None
    code = error.get("Code") if isinstance(error, dict) else None
    if isinstance(code, str) and _ERROR_CODE.fullmatch(code):
        return code
    xml = _XML_ERROR_CODE.search(answer.body[:MAX_ANSWER_BYTES])
    return xml.group(1).decode() if xml else "unknown"
