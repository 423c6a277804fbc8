"""One Lambda container in its own process: reads events as JSON lines, answers each in turn.

Run as `python -m devstack.container` with the broker's environment set. Each answer is a
line `ANSWER {"answer": ..., "metrics": [...], "milliseconds": ...}` on stdout; everything
else on stdout and stderr is what the function logged.
"""

from __future__ import annotations

import json
import sys
import time

from devstack.lambda_host import invoke, load_handler_module

ANSWER_PREFIX = "ANSWER "


def main() -> None:
    started = time.perf_counter()
    app = load_handler_module()
    print(ANSWER_PREFIX + json.dumps({"ready_ms": (time.perf_counter() - started) * 1000}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        invocation = invoke(app, request["event"], request.get("timeout_seconds", 15.0))
        print(ANSWER_PREFIX + json.dumps(invocation.__dict__), flush=True)


if __name__ == "__main__":
    main()
