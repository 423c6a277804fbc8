"""Caller proofs: how a direct caller shows the broker who it is.

The caller signs, with its own credentials and botocore's SigV4 signer, an `sts:GetCallerIdentity`
request that it never sends; the broker sends it to STS and learns the caller's ARN from the
answer. The audience header names the broker, so a proof made for one broker fails at another.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

PROOF_VERSION = 1
BODY = "Action=GetCallerIdentity&Version=2011-06-15"
CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
AUDIENCE_HEADER = "X-Token-Broker-Audience"
# The broker accepts a proof for 5 minutes after it was signed; a new one is made after 4.
PROOF_REUSE_SECONDS = 240.0
# STS's domain in each partition (the broker checks proofs against the same).
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
_FUNCTION_ARN = re.compile(
    r"(?P<audience>arn:(?P<partition>aws(?:-[a-z]+)*):lambda:(?P<region>[a-z0-9-]+):\d{12}:function:[\w-]{1,64})"
    r"(?::[\w$-]{1,128})?"
)
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<credential>[^,]+), SignedHeaders=(?P<signed_headers>[^,]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})"
)


class Broker:
    """What a proof is made for: the broker's audience (its direct function's unqualified ARN),
    region and partition. A function ARN qualified by an alias or version names the same broker."""

    def __init__(self, function_arn: str) -> None:
        match = _FUNCTION_ARN.fullmatch(function_arn)
        if match is None or match["partition"] not in PARTITION_SUFFIXES:
            raise ValueError(
                "name the broker by its function ARN (the stack output TokenBrokerAliasArn), "
                "not by its name: caller proofs are made for that ARN"
            )
        self.audience: str = match["audience"]
        self.region: str = match["region"]
        self.partition: str = match["partition"]
        self.domain = PARTITION_SUFFIXES[self.partition]  # AWS's endpoints' domain in that partition
        self.sts_host = f"sts.{self.region}.{self.domain}"


class Prover:
    """Caller proofs for one broker, signed with a session's current credentials: one proof is
    reused for up to 4 minutes (the broker accepts it for 5), a new one made as soon as the
    credentials change. Thread-safe."""

    def __init__(self, broker: Broker, session: Callable[[], Any], clock: Callable[[], float] = time.time) -> None:
        self._broker = broker
        self._session = session
        self._clock = clock
        self._lock = threading.Lock()
        self._proof: _Proof | None = None

    def proof(self) -> dict[str, Any]:
        credentials = self._session().get_credentials()
        if credentials is None:
            raise NoCredentials("no AWS credentials to sign a caller proof with")
        frozen = credentials.get_frozen_credentials()
        identity = (frozen.access_key, frozen.token)
        now = self._clock()
        with self._lock:
            proof = self._proof
            if proof is not None and proof.credentials == identity and now - proof.signed_at < PROOF_REUSE_SECONDS:
                return proof.fields
        proof = _Proof(sign_caller_proof(frozen, self._broker), identity, now)
        with self._lock:
            self._proof = proof
        return proof.fields


class NoCredentials(Exception):
    """The session has no credentials to sign with."""


@dataclass
class _Proof:
    fields: dict[str, Any]
    credentials: tuple[str, str | None]  # access key id and session token it was signed with
    signed_at: float

    def __repr__(self) -> str:  # the proof holds a session token
        return f"_Proof(signed_at={self.signed_at})"


def sign_caller_proof(credentials: Any, broker: Broker) -> dict[str, Any]:
    """A proof signed with `credentials` (botocore's, frozen: access_key, secret_key, token)."""
    request = AWSRequest(
        method="POST",
        url=f"https://{broker.sts_host}/",
        data=BODY,
        headers={"Content-Type": CONTENT_TYPE, "Host": broker.sts_host, AUDIENCE_HEADER: broker.audience},
    )
    SigV4Auth(credentials, "sts", broker.region).add_auth(request)
    signed = _AUTHORIZATION.fullmatch(request.headers["Authorization"])
    if signed is None:  # botocore changed its header's shape
        raise RuntimeError("botocore's SigV4 signer produced an unexpected Authorization header")
    proof: dict[str, Any] = {
        "v": PROOF_VERSION,
        "credential": signed["credential"],
        "amz_date": request.headers["X-Amz-Date"],
        "signed_headers": signed["signed_headers"],
        "signature": signed["signature"],
    }
    if credentials.token:
        proof["security_token"] = credentials.token
    return proof
