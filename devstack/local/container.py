"""One Lambda container in its own process: reads events as JSON lines, answers each in turn.

Run as `python -m devstack.local.container` with the broker's environment set. Each answer is a
line `ANSWER {"answer": ..., "metrics": [...], "milliseconds": ...}` on stdout; everything
else on stdout and stderr is what the function logged.
"""

from __future__ import annotations

import json
import os

# subprocess starts this very module under our own interpreter, with fixed arguments and no shell
import subprocess  # nosec B404
import sys
import time
from typing import Any

from devstack.local.lambda_host import invoke, load_handler_module
from devstack.local.sts import Issued, with_proof
from devstack.template import ROOT

ANSWER_PREFIX = "ANSWER "


def main() -> None:
    started = time.perf_counter()
    app = load_handler_module()
    print(ANSWER_PREFIX + json.dumps({"ready_ms": (time.perf_counter() - started) * 1000}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        handler = request.get("handler", "lambda_handler")
        invocation = invoke(app, request["event"], request.get("timeout_seconds", 15.0), handler, request.get("arn"))
        sys.stdout.write(invocation.emitted)  # what Lambda's log stream would hold
        print(ANSWER_PREFIX + json.dumps(invocation.__dict__), flush=True)


class ContainerProcess:
    """A broker container in its own OS process, driven from another; `output` collects its logs
    and error answers (the tests search them for leaks)."""

    def __init__(self, process: subprocess.Popen[str], output: list[str], caller: Issued | None) -> None:
        self.process = process
        self.output = output
        self.caller = caller
        self.ready_ms = 0.0

    @classmethod
    def start(
        cls, environment: dict[str, str], output: list[str] | None = None, caller: Issued | None = None
    ) -> ContainerProcess:
        """`caller`, when given, signs a caller proof into every event sent that lacks one."""
        process = subprocess.Popen(  # nosec B603
            [sys.executable, "-m", "devstack.local.container"],
            cwd=ROOT,
            env={**os.environ, **environment},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        return cls(process, output if output is not None else [], caller)

    def wait_ready(self) -> None:
        self.ready_ms = float(self._next_answer()["ready_ms"])

    def send(
        self, event: Any, timeout_seconds: float = 15.0, handler: str = "lambda_handler", arn: str | None = None
    ) -> None:
        """`arn` is the ARN the function is invoked as (default: the local broker's)."""
        if self.process.stdin is None:
            raise RuntimeError("the container was started without a pipe to its stdin")
        if self.caller is not None:
            event = with_proof(event, self.caller)
        request = {"event": event, "timeout_seconds": timeout_seconds, "handler": handler, "arn": arn}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()

    def receive(self) -> dict[str, Any]:
        return self._next_answer()

    def invoke(self, event: Any, timeout_seconds: float = 15.0) -> dict[str, Any]:
        self.send(event, timeout_seconds)
        return self.receive()

    def close(self) -> None:
        """Ends the process (if it is still running) and keeps the rest of its output."""
        if self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.close()
        self.output.extend(self.process.stdout or [])
        self.process.wait(timeout=10)

    def _next_answer(self) -> dict[str, Any]:
        for line in self.process.stdout or []:
            if line.startswith(ANSWER_PREFIX):
                result: dict[str, Any] = json.loads(line[len(ANSWER_PREFIX) :])
                answer = result.get("answer")
                if isinstance(answer, dict) and "error" in answer:
                    self.output.append(json.dumps(answer))
                return result
            self.output.append(line)
        raise RuntimeError("the container process ended:\n" + "".join(self.output[-20:]))


if __name__ == "__main__":
    main()
