"""How every local server here runs: a WSGI app on a loopback port, served by a daemon thread."""

from __future__ import annotations

import threading
from typing import Any

from werkzeug.serving import make_server


class LoopbackServer:
    def __init__(self, app: Any, name: str, port: int = 0, request_handler: Any = None) -> None:
        extra = {"request_handler": request_handler} if request_handler is not None else {}
        self._http = make_server("127.0.0.1", port, app, threaded=True, **extra)
        # a short poll: stop() waits for the loop to notice, and tests stop servers by the dozen
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
