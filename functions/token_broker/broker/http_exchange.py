"""One HTTP POST with a deadline on the whole exchange: connecting, sending, headers and body.

urllib3's timeouts bound each socket operation, so a server that trickles its answer a byte at
a time is never abandoned by them. Here a watchdog shuts the exchange's socket at the deadline,
which ends any blocked read at once.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import Timeout


class ExchangeTimeout(Exception):
    """The deadline passed before the whole answer was read."""


class ExchangeFailed(Exception):
    """The connection failed; the message is the failure's class name, nothing the server sent."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: urllib3.HTTPHeaderDict
    body: bytes  # at most max_bytes + 1: one byte more tells that the answer was too long
    complete: bool  # the whole body was read: it was no longer than max_bytes

    def json_object(self) -> dict[str, object] | None:
        """The body as a JSON object; None when it was too long, is not JSON, or is not an object."""
        if not self.complete:
            return None
        try:
            document = json.loads(self.body)
        except (ValueError, RecursionError):
            return None
        return document if isinstance(document, dict) else None


class _Exchange:
    """The connection an exchange runs on, then its response, so that the watchdog thread can
    shut the socket under either (http.client hands a close-delimited answer's socket over to
    the response, leaving the connection without one)."""

    __slots__ = ("connection", "expired", "response")

    def __init__(self) -> None:
        self.connection: HTTPConnection | None = None
        self.response: urllib3.BaseHTTPResponse | None = None
        self.expired = False

    def expire(self) -> None:
        self.expired = True
        if self.response is not None:
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                self.response.shutdown()
        sock = getattr(self.connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


_current = threading.local()


class _WatchedHTTPConnection(HTTPConnection):
    """Tells the exchange under way on this thread which connection it runs on."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        exchange = getattr(_current, "exchange", None)
        if exchange is not None:
            exchange.connection = self
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def pool_manager(**settings: Any) -> urllib3.PoolManager:
    """A pool whose connections the watchdog can shut. Certificates are verified (urllib3's
    default, CERT_REQUIRED) and never otherwise; redirects and retries are never followed."""
    manager = urllib3.PoolManager(retries=False, **settings)
    manager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
    return manager


@dataclass(frozen=True, slots=True)
class Limits:
    """What one exchange may take: `deadline` (epoch seconds) bounds the whole of it; the
    timeouts bound each socket operation; at most `max_bytes` of the answer are read."""

    deadline: float
    connect_timeout: float
    read_timeout: float
    max_bytes: int


def post(pool: urllib3.PoolManager, url: str, body: str, headers: dict[str, str], limits: Limits) -> Answer:
    """POSTs `body` and reads at most `max_bytes` + 1 of the answer, all before the deadline.
    Raises `ExchangeTimeout` or `ExchangeFailed`."""
    deadline, max_bytes = limits.deadline, limits.max_bytes
    left = deadline - time.time()
    if left <= 0:
        raise ExchangeTimeout
    exchange = _Exchange()
    _current.exchange = exchange
    watchdog = threading.Timer(left, exchange.expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        response = pool.request(
            "POST",
            url,
            body=body,
            headers=headers,
            timeout=Timeout(connect=min(limits.connect_timeout, left), read=min(limits.read_timeout, left)),
            redirect=False,
            preload_content=False,
        )
        exchange.response = response
        try:
            if exchange.expired:  # the deadline passed as the headers arrived
                raise ExchangeTimeout
            payload = response.read(max_bytes + 1)
        finally:
            if exchange.expired:
                response.close()  # a connection cut mid-answer is never reused
            response.release_conn()
    except (urllib3.exceptions.HTTPError, OSError) as failure:
        if exchange.expired:
            raise ExchangeTimeout from None
        raise ExchangeFailed(type(failure).__name__) from None
    finally:
        watchdog.cancel()
        _current.exchange = None
    if exchange.expired:  # the cut may read as the end of a body without a length
        raise ExchangeTimeout
    return Answer(response.status, response.headers, payload, complete=len(payload) <= max_bytes)
