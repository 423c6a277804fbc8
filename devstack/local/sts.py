"""A strict STS stand-in on loopback, for caller proofs.

moto answers `GetCallerIdentity` without checking any signature, so it cannot show that a forged,
stale or re-targeted proof fails. This server issues credentials of its own and answers
`GetCallerIdentity` only as AWS STS would: a SigV4 signature it verifies itself (canonical
request, credential scope, signing key), a date within 15 minutes, `host` and `x-amz-date`
signed, the session token that belongs to the key. It can also fail on command.

`verify` is the same check for any service's SigV4 request: the local HTTP route uses it as API
Gateway's IAM authorizer, for `execute-api`.

It also answers `GetWebIdentityToken` as outbound identity federation does: a JWT signed with
its own keys (RS256 or ES384) naming the caller's role as `sub`, its account's issuer URL (this
server) as `iss`, and the requested audience; with OIDC discovery and JWKS on loopback, so an
authorization server that trusts the issuer can verify it.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, parse_qsl, quote

from botocore.credentials import ReadOnlyCredentials
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey
from werkzeug.wrappers import Request, Response

from devstack.local.authserver import Fault, Faults
from devstack.local.lambda_host import FUNCTION_ARN
from devstack.local.loopback import LoopbackServer
from token_client.caller_proof import Broker, sign_caller_proof

ACCOUNT = "123456789012"
ACTIONS = ("GetCallerIdentity", "GetWebIdentityToken", "AssumeRole")
PROFILE_TAG = "token-broker-profile"
MAX_SKEW_SECONDS = 15 * 60  # STS's own window
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key_id>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r" ?SignedHeaders=(?P<signed_headers>[a-z0-9;-]+), ?Signature=(?P<signature>[0-9a-f]{64})"
)


@dataclass(frozen=True)
class Issued:
    """Credentials this server issued and the identity `GetCallerIdentity` answers for them."""

    arn: str
    user_id: str
    credentials: ReadOnlyCredentials
    role_arn: str | None = None  # an assumed role's own ARN, its path included


@dataclass(frozen=True)
class Trust:
    """A profile role's trust policy, as the runbook writes it: the broker's roles may assume it
    (and tag the session) only with `token-broker-profile` = `profile`."""

    profile: str
    principals: tuple[str, ...]  # the names of the roles whose sessions it trusts


class LocalSts:
    def __init__(self, region: str = "us-east-1", port: int = 0) -> None:
        self.region = region
        self.caller_identity_requests = 0
        self.web_identity_requests: list[tuple[str, str]] = []  # (audience, algorithm) of each
        self.web_identity_tokens: list[str] = []  # every JWT it issued
        self.outbound_federation = True  # the account's feature, on or off
        self.trusts: dict[str, Trust] = {}  # role ARN -> its trust policy
        self.assume_role_requests: list[tuple[str, str, str]] = []  # (role ARN, session name, profile tag)
        # an IAM policy's sts:IdentityTokenAudience for every role: None allows any audience
        self.allowed_audiences: set[str] | None = None
        self._issued: dict[str, Issued] = {}
        self._signing_keys: dict[str, RSAKey | ECKey] = {
            "RS256": RSAKey.generate_key(2048, parameters={"kid": "local-rs256", "use": "sig", "alg": "RS256"}),
            "ES384": ECKey.generate_key("P-384", parameters={"kid": "local-es384", "use": "sig", "alg": "ES384"}),
        }
        self.faults = Faults()
        self._lock = threading.Lock()
        self._server = LoopbackServer(self._wsgi, "local-sts", port)

    @property
    def issuer(self) -> str:
        """The account's issuer URL, as outbound identity federation gives one per account."""
        return self.url

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> LocalSts:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def assume_role(self, role_name: str, session_name: str, account: str = ACCOUNT, path: str = "/") -> Issued:
        """Session credentials for `arn:aws:sts::<account>:assumed-role/<role_name>/<session_name>`."""
        return self._issue(
            "ASIA",
            f"arn:aws:sts::{account}:assumed-role/{role_name}/{session_name}",
            f"AROA{secrets.token_hex(8).upper()}:{session_name}",
            session_token=secrets.token_urlsafe(96).replace("-", "+").replace("_", "/"),
            role_arn=f"arn:aws:iam::{account}:role{path}{role_name}",
        )

    def trust(self, role_arn: str, profile: str, *principals: str) -> None:
        """Makes `role_arn` assumable by sessions of the roles named `principals`, with the
        session tag `token-broker-profile` = `profile` only."""
        self.trusts[role_arn] = Trust(profile, principals)

    def user(self, user_name: str, account: str = ACCOUNT) -> Issued:
        """Long-term credentials (no session token) of `arn:aws:iam::<account>:user/<user_name>`."""
        return self._issue("AKIA", f"arn:aws:iam::{account}:user/{user_name}", f"AIDA{secrets.token_hex(8).upper()}")

    def issued_secrets(self) -> set[str]:
        """Every secret key and session token this server issued (role sessions included)."""
        with self._lock:
            issued = list(self._issued.values())
        return {str(i.credentials.secret_key) for i in issued} | {str(i.credentials.token or "") for i in issued}

    def fail_next(self, *faults: Fault) -> None:
        """The next requests get these answers, one each, in order."""
        self.faults.add(*faults)

    def reset(self) -> None:
        self.faults.clear()
        with self._lock:
            self.caller_identity_requests = 0
            self.web_identity_requests.clear()
            self.assume_role_requests.clear()
        self.outbound_federation, self.allowed_audiences = True, None

    def _issue(
        self, prefix: str, arn: str, user_id: str, session_token: str | None = None, role_arn: str | None = None
    ) -> Issued:
        key_id = prefix + secrets.token_hex(8).upper()
        secret = secrets.token_urlsafe(30).replace("-", "+").replace("_", "/")
        issued = Issued(arn, user_id, ReadOnlyCredentials(key_id, secret, session_token), role_arn)
        self._issued[key_id] = issued
        return issued

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if request.method == "GET":  # the issuer's OIDC discovery and keys, never faulted
            return self._discovery(request)(environ, start_response)
        fault = self.faults.next()
        response = fault.response() if fault is not None else self._answer(request)
        return response(environ, start_response)

    def _discovery(self, request: Request) -> Response:
        if request.path == "/.well-known/openid-configuration":
            document = {
                "issuer": self.issuer,
                "jwks_uri": f"{self.issuer}/.well-known/jwks.json",
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": list(self._signing_keys),
            }
            return Response(json.dumps(document), 200, content_type="application/json")
        if request.path == "/.well-known/jwks.json":
            keys = KeySet(list(self._signing_keys.values())).as_dict(private=False)
            return Response(json.dumps(keys), 200, content_type="application/json")
        return Response("not found", 404)

    def _answer(self, request: Request) -> Response:
        body = request.get_data()
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        action = form.get("Action", [""])[0]
        if request.method != "POST" or request.path != "/" or action not in ACTIONS:
            return _error(request, 400, "InvalidAction", f"only POST / with {', '.join(ACTIONS)}")
        with self._lock:
            if action == "GetCallerIdentity":
                self.caller_identity_requests += 1
        issued, problem = self.verify(request, body, "sts")
        if issued is None:
            return _error(request, 403, *problem)
        if action == "GetWebIdentityToken":
            return self._web_identity_token(request, issued, form)
        if action == "AssumeRole":
            return self._assume_role(request, issued, form)
        result = {"Arn": issued.arn, "UserId": issued.user_id, "Account": issued.arn.split(":")[4]}
        if "application/json" in request.headers.get("Accept", ""):
            document = {
                "GetCallerIdentityResponse": {
                    "GetCallerIdentityResult": result,
                    "ResponseMetadata": {"RequestId": secrets.token_hex(16)},
                }
            }
            return Response(json.dumps(document), 200, content_type="application/json")
        fields = "".join(f"<{name}>{value}</{name}>" for name, value in result.items())
        result_xml = f"<GetCallerIdentityResult>{fields}</GetCallerIdentityResult>"
        xml = f"<GetCallerIdentityResponse>{result_xml}</GetCallerIdentityResponse>"
        return Response(xml, 200, content_type="text/xml")

    def _web_identity_token(self, request: Request, caller: Issued, form: dict[str, list[str]]) -> Response:
        audiences = [values[0] for name, values in sorted(form.items()) if name.startswith("Audience.member.")]
        algorithm = form.get("SigningAlgorithm", [""])[0]
        duration = int(form.get("DurationSeconds", ["300"])[0])
        with self._lock:
            self.web_identity_requests.extend((audience, algorithm) for audience in audiences)
        if not self.outbound_federation:
            message = "outbound web identity federation is disabled for this account"
            return _error(request, 403, "OutboundWebIdentityFederationDisabledException", message)
        if self.allowed_audiences is not None and not set(audiences) <= self.allowed_audiences:
            return _error(request, 403, "AccessDenied", "not authorized to perform sts:GetWebIdentityToken")
        if algorithm not in self._signing_keys or not audiences or not 60 <= duration <= 3600:
            return _error(request, 400, "ValidationError", "a parameter is invalid")
        now = int(time.time())
        account = caller.arn.split(":")[4]
        claims = {
            "iss": self.issuer,
            "sub": caller.role_arn or caller.arn,
            "aud": audiences[0] if len(audiences) == 1 else audiences,
            "iat": now,
            "nbf": now,
            "exp": now + duration,
            "jti": secrets.token_hex(16),
            "https://sts.amazonaws.com/": {"aws_account": account, "principal_id": caller.arn},
        }
        key = self._signing_keys[algorithm]
        token = jwt.encode({"alg": algorithm, "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=[algorithm])
        with self._lock:
            self.web_identity_tokens.append(token)
        expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + duration))
        result = f"<WebIdentityToken>{token}</WebIdentityToken><Expiration>{expiration}</Expiration>"
        xml = (
            '<GetWebIdentityTokenResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<GetWebIdentityTokenResult>{result}</GetWebIdentityTokenResult>"
            f"<ResponseMetadata><RequestId>{secrets.token_hex(16)}</RequestId></ResponseMetadata>"
            "</GetWebIdentityTokenResponse>"
        )
        return Response(xml, 200, content_type="text/xml")

    def _assume_role(self, request: Request, caller: Issued, form: dict[str, list[str]]) -> Response:
        """AssumeRole as IAM evaluates a role's trust policy: the caller's role must be trusted,
        and the session tag must be the one profile the role serves."""
        role_arn = form.get("RoleArn", [""])[0]
        session_name = form.get("RoleSessionName", [""])[0]
        tags = {
            form[f"Tags.member.{n}.Key"][0]: form.get(f"Tags.member.{n}.Value", [""])[0]
            for n in range(1, 51)
            if f"Tags.member.{n}.Key" in form
        }
        duration = int(form.get("DurationSeconds", ["3600"])[0])
        with self._lock:
            self.assume_role_requests.append((role_arn, session_name, tags.get(PROFILE_TAG, "")))
        if not re.fullmatch(r"[\w+=,.@-]{2,64}", session_name) or not 900 <= duration <= 43200:
            return _error(request, 400, "ValidationError", "a parameter is invalid")
        trust = self.trusts.get(role_arn)
        caller_role = (caller.role_arn or "").rsplit("/", 1)[-1]
        if trust is None or caller_role not in trust.principals or tags.get(PROFILE_TAG) != trust.profile:
            message = f"User: {caller.arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
            return _error(request, 403, "AccessDenied", message)
        path, _, role_name = role_arn.split(":role/", 1)[1].rpartition("/")
        session = self.assume_role(role_name, session_name, role_arn.split(":")[4], f"/{path}/" if path else "/")
        credentials = session.credentials
        expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + duration))
        xml = (
            '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>'
            f"<Credentials><AccessKeyId>{credentials.access_key}</AccessKeyId>"
            f"<SecretAccessKey>{credentials.secret_key}</SecretAccessKey>"
            f"<SessionToken>{credentials.token}</SessionToken><Expiration>{expiration}</Expiration></Credentials>"
            f"<AssumedRoleUser><AssumedRoleId>{session.user_id}</AssumedRoleId><Arn>{session.arn}</Arn>"
            "</AssumedRoleUser></AssumeRoleResult>"
            f"<ResponseMetadata><RequestId>{secrets.token_hex(16)}</RequestId></ResponseMetadata></AssumeRoleResponse>"
        )
        return Response(xml, 200, content_type="text/xml")

    def verify(self, request: Request, body: bytes, service: str) -> tuple[Issued | None, tuple[str, str]]:
        """Who signed `request` (SigV4, for `service` in this server's region) with credentials
        this server issued; else None and the error code and message AWS would give."""
        authorization = _AUTHORIZATION.fullmatch(request.headers.get("Authorization", ""))
        if authorization is None:
            return None, ("IncompleteSignature", "the Authorization header is not SigV4")
        issued = self._issued.get(authorization["key_id"])
        if issued is None:
            return None, ("InvalidClientTokenId", "the security token included in the request is invalid")
        amz_date = request.headers.get("X-Amz-Date", "")
        signed = authorization["signed_headers"].split(";")
        if authorization["service"] != service or authorization["region"] != self.region:
            return None, ("SignatureDoesNotMatch", "credential scope names another service or region")
        if not {"host", "x-amz-date"} <= set(signed) or amz_date[:8] != authorization["date"]:
            return None, ("SignatureDoesNotMatch", "host and x-amz-date must be signed")
        try:
            signed_at = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
        except ValueError:
            return None, ("IncompleteSignature", "X-Amz-Date is not a date")
        if abs(time.time() - signed_at) > MAX_SKEW_SECONDS:
            return None, ("SignatureDoesNotMatch", "Signature expired")
        token = issued.credentials.token
        if token is not None and not hmac.compare_digest(request.headers.get("X-Amz-Security-Token", ""), token):
            return None, ("InvalidClientTokenId", "the security token included in the request is invalid")
        canonical_headers = "".join(f"{name}:{' '.join(request.headers.get(name, '').split())}\n" for name in signed)
        canonical_request = "\n".join(
            [
                request.method,
                # the path as sent, encoded once more: AWS's canonical URI for every service but S3
                quote(request.environ.get("RAW_URI", request.path).split("?")[0], safe="/-_.~"),
                _canonical_query(request.query_string.decode()),
                canonical_headers,
                authorization["signed_headers"],
                hashlib.sha256(body).hexdigest(),
            ]
        )
        scope = f"{authorization['date']}/{self.region}/{service}/aws4_request"
        string_to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
        )
        key = f"AWS4{issued.credentials.secret_key}".encode()
        for part in (authorization["date"], self.region, service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, authorization["signature"]):
            return None, ("SignatureDoesNotMatch", "the request signature does not match")
        return issued, ("", "")


def credentials_environment(issued: Issued, region: str = "us-east-1") -> dict[str, str]:
    """The variables a process (a Lambda function, say) gets `issued`'s credentials from."""
    credentials = issued.credentials
    return {
        "AWS_ACCESS_KEY_ID": str(credentials.access_key),
        "AWS_SECRET_ACCESS_KEY": str(credentials.secret_key),
        "AWS_SESSION_TOKEN": credentials.token or "",
        "AWS_DEFAULT_REGION": region,
    }


def _canonical_query(query: str) -> str:
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    return "&".join(f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}" for name, value in pairs)


def _error(request: Request, status: int, code: str, message: str) -> Response:
    if "application/json" in request.headers.get("Accept", ""):
        document = {"Error": {"Code": code, "Message": message, "Type": "Sender"}, "RequestId": secrets.token_hex(16)}
        return Response(json.dumps(document), status, content_type="application/json")
    error = f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
    xml = f"<ErrorResponse>{error}</ErrorResponse>"
    return Response(xml, status, content_type="text/xml")


def with_proof(event: Any, caller: Issued, function_arn: str = FUNCTION_ARN) -> Any:
    """`event` with a caller proof signed by `caller` (as token_client makes them), unless it is
    not an object or already carries one."""
    if not isinstance(event, dict) or "caller_proof" in event:
        return event
    return {**event, "caller_proof": sign_caller_proof(caller.credentials, Broker(function_arn))}
