"""X-Ray: a subsegment around a rare, slow step, sent to the X-Ray daemon by hand.

Lambda's active tracing records every invocation and its init for free. The X-Ray SDK would
add 150-270 ms to each cold start (Powertools' Tracer imports and patches it), and it brings
its own botocore into the layer; a subsegment is one UDP datagram of JSON to the daemon
(the documented segment format), so the broker sends that itself, and only for token requests.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from collections.abc import Iterator

from broker.failures import is_refusal

DAEMON_ADDRESS_ENV = "AWS_XRAY_DAEMON_ADDRESS"
TRACE_HEADER_ENV = "_X_AMZN_TRACE_ID"  # set by Lambda for each invocation
HEADER = b'{"format": "json", "version": 1}\n'


def tracing_enabled() -> bool:
    """As Powertools decides: inside Lambda, not under SAM local, not POWERTOOLS_TRACE_DISABLED."""
    disabled = os.environ.get("POWERTOOLS_TRACE_DISABLED", "false").lower() in ("1", "true", "yes", "on")
    return bool(os.environ.get("LAMBDA_TASK_ROOT")) and not os.environ.get("AWS_SAM_LOCAL") and not disabled


@contextlib.contextmanager
def subsegment(name: str, annotations: dict[str, str]) -> Iterator[None]:
    """Records the block as a subsegment of this invocation's segment, if it is sampled.

    Annotations must hold nothing secret: they are indexed and shown in the X-Ray console."""
    parent = _sampled_parent() if tracing_enabled() else None
    document: dict[str, object] = {
        "type": "subsegment",
        "id": secrets.token_hex(8),
        "name": name,
        "start_time": time.time(),
        "annotations": annotations,
    }
    try:
        yield
    except Exception as failure:
        # X-Ray's classes: `error` for a 4xx (the server refused), `fault` for the rest
        document["error" if is_refusal(failure) else "fault"] = True
        document["metadata"] = {"default": {"failure": type(failure).__name__}}
        raise
    finally:
        if parent is not None:
            document |= {"trace_id": parent[0], "parent_id": parent[1], "end_time": time.time()}
            _send(document)


def _sampled_parent() -> tuple[str, str] | None:
    """(trace id, parent id) from Lambda's trace header, when this invocation is sampled."""
    fields = dict(part.split("=", 1) for part in os.environ.get(TRACE_HEADER_ENV, "").split(";") if "=" in part)
    if fields.get("Sampled") != "1" or "Root" not in fields or "Parent" not in fields:
        return None
    return fields["Root"], fields["Parent"]


def _send(document: dict[str, object]) -> None:
    host, _, port = os.environ.get(DAEMON_ADDRESS_ENV, "127.0.0.1:2000").rpartition(":")
    # Tracing must never fail a request: a datagram that cannot be sent is dropped.
    with contextlib.suppress(OSError, ValueError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(HEADER + json.dumps(document).encode(), (host, int(port)))
