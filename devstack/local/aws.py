"""Local AWS: moto's server over real HTTP, and the broker's table and profiles on it."""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import boto3
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

from devstack.local.loopback import LoopbackServer
from devstack.template import table_definition, ttl_attribute

REGION = "us-east-1"
# moto accepts any credentials; these keep boto3 from looking for real ones.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}


DYNAMODB = "DynamoDB_20120810."
THROTTLED = json.dumps(
    {
        "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "message": "The level of configured provisioned throughput for the table was exceeded.",
    }
).encode()


class KeyThrottle:
    """DynamoDB's limit per partition, scaled down: at most `per_second` requests of one kind
    (reads, or writes) on one item in any one second of the clock; the rest are refused as
    DynamoDB refuses them. Counts what it let through and what it refused, per second."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self.accepted: Counter[tuple[str, str, int]] = Counter()  # (kind, key, second) -> requests
        self.refused: Counter[tuple[str, str, int]] = Counter()

    def admit(self, target: str, body: bytes) -> bool:
        try:
            key = json.loads(body)["Key"]["cache_key"]["S"]
        except (ValueError, KeyError, TypeError):
            return True  # not a request on one item
        kind = "read" if target.endswith("GetItem") else "write"
        second = (kind, key, int(time.time()))
        if self.accepted[second] >= self.per_second:
            self.refused[second] += 1
            return False
        self.accepted[second] += 1
        return True

    def peak(self, kind: str, counts: Counter[tuple[str, str, int]] | None = None) -> int:
        """The most requests of `kind` on one item in one second (accepted, unless told)."""
        counts = self.accepted if counts is None else counts
        return max((count for (k, _, _), count in counts.items() if k == kind), default=0)


class _Serialised:
    """Answers one request at a time: DynamoDB's conditional writes are atomic, moto's are not.

    Also counts the calls by their JSON API target (`DynamoDB_20120810.GetItem`,
    `TrentService.Decrypt`, ...), so tests and the benchmark can count AWS calls; and, while a
    `throttle` is set, refuses DynamoDB requests beyond it before moto sees them."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.throttle: KeyThrottle | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "other")
        throttle = self.throttle
        if throttle is not None and target.startswith(DYNAMODB):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            with self._lock:
                admitted = throttle.admit(target, body)
            if not admitted:
                start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.0")])
                return [THROTTLED]
        with self._lock:
            self.calls[target] += 1
            return list(self._app(environ, start_response))


class LocalAws:
    """moto's server on a loopback port, in a thread of this process."""

    def __init__(self, port: int = 0) -> None:
        self._app = _Serialised(DomainDispatcherApplication(create_backend_app))
        self._server = LoopbackServer(self._app, "moto", port, request_handler=MotoRequestHandler)

    @property
    def endpoint_url(self) -> str:
        return self._server.url

    def start(self) -> LocalAws:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    @contextlib.contextmanager
    def throttled(self, per_second: int) -> Iterator[KeyThrottle]:
        """DynamoDB requests beyond `per_second` per item and second are refused meanwhile."""
        throttle = self._app.throttle = KeyThrottle(per_second)
        try:
            yield throttle
        finally:
            self._app.throttle = None

    def calls(self, target: str) -> int:
        """How many calls this server answered for an API target such as `TrentService.Decrypt`."""
        return self._app.calls[target]

    def create_kms_key(self) -> str:
        """A symmetric key, as the template's cache key; returns its ARN."""
        arn: str = self.client("kms").create_key(Description="token cache (local)")["KeyMetadata"]["Arn"]
        return arn

    def environment(self) -> dict[str, str]:
        """What a process needs to reach this server with any boto3 client."""
        return {
            **CREDENTIALS,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }

    def client(self, service: str) -> Any:
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def create_token_table(self, name: str | None = None) -> str:
        """Creates the cache table exactly as `template.yaml` defines it; returns its name."""
        name = name or f"tokens-{uuid.uuid4().hex[:8]}"
        dynamodb = self.client("dynamodb")
        dynamodb.create_table(TableName=name, **table_definition())
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": ttl_attribute(), "Enabled": True}
        )
        return name

    def put_profile(self, secret_name: str, document: dict[str, Any] | str) -> None:
        """Creates or updates a profile's secret; a string is stored as it is."""
        secret_string = document if isinstance(document, str) else json.dumps(document)
        secrets = self.client("secretsmanager")
        try:
            secrets.create_secret(Name=secret_name, SecretString=secret_string)
        except secrets.exceptions.ResourceExistsException:
            secrets.put_secret_value(SecretId=secret_name, SecretString=secret_string)
