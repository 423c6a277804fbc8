"""Local doors to the broker's real handlers, no Docker: the Lambda Invoke API (as
`sam local start-lambda` serves it, but strict as Lambda is: an Invoke must be SigV4-signed for
`lambda` with credentials the local STS issued) and `POST /token` as an HTTP API with an IAM
authorizer passes it on: the request must be SigV4-signed for `execute-api` the same way, and
the event names the signer as API Gateway would.

Each function is one warm container: its invocations run one at a time. The broker's direct
function runs in this process (tests look into it); the renewal function in a process of its
own, started at its first invocation, as a container of another function is. An `Event`
invocation is answered 202 at once and queued, as Lambda queues it, and runs after.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from devstack.local.container import ContainerProcess
from devstack.local.lambda_host import FUNCTION_ARN, RENEWAL_FUNCTION_ARN, ClientContext, LambdaContext
from devstack.local.loopback import LoopbackServer
from devstack.local.sts import LocalSts

# What Lambda calls the refusals of a signature that the local STS names as STS does.
LAMBDA_REFUSALS = {
    "IncompleteSignature": "IncompleteSignatureException",
    "InvalidClientTokenId": "UnrecognizedClientException",
    "SignatureDoesNotMatch": "InvalidSignatureException",
}


@dataclass(frozen=True)
class LocalFunction:
    """A function this API serves: its ARN, the handler it runs, and whether in a process of its own."""

    arn: str
    handler: str
    own_process: bool = False


BROKER_FUNCTIONS = (
    LocalFunction(FUNCTION_ARN, "lambda_handler"),
    LocalFunction(RENEWAL_FUNCTION_ARN, "renewal_handler", own_process=True),
)


@dataclass
class _Function:
    """One function's warm container: a lock for its invocations, and its queue of events."""

    arn: str
    handler: str
    own_process: bool
    invocations: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    events: queue.Queue[Any] = field(default_factory=queue.Queue)
    failures: list[str] = field(default_factory=list)  # unhandled errors of queued events
    container: ContainerProcess | None = None

    @property
    def name(self) -> str:
        return self.arn.split(":")[6]

    def answers_to(self, name: str) -> bool:
        """A name, or an ARN (qualified or not), as Lambda's Invoke API takes them."""
        return name in (self.name, self.arn) or name.startswith(self.arn + ":")


class LocalLambdaApi:
    def __init__(
        self,
        app: ModuleType | None,
        sts: LocalSts,
        functions: tuple[LocalFunction, ...] = BROKER_FUNCTIONS,
        port: int = 0,
        output: list[str] | None = None,
    ) -> None:
        """`functions` are served from `app` (the first is `function_arn`), which may be given
        once the API's address is known (`endpoint_url`), before `start`: the handler module
        reads its environment when it is imported. A function in a process of its own gets this
        process's environment when it starts; what it writes is kept in `output`."""
        self._functions = [_Function(f.arn, f.handler, f.own_process) for f in functions]
        self.output = output if output is not None else []
        # while set, every Event invocation gets this answer (status, Lambda's error type)
        self.event_refusal: tuple[int, str] | None = None
        self.function_arn = self._functions[0].arn
        self.function_name = self._functions[0].name
        self.app = app
        self._sts = sts
        self._routes = Map(
            [
                Rule("/2015-03-31/functions/<name>/invocations", endpoint="invoke", methods=["POST"]),
                Rule("/token", endpoint="http"),
            ]
        )
        self._server = LoopbackServer(self._wsgi, "local-lambda", port)
        self._workers = [
            threading.Thread(target=self._run_events, args=(function,), name=f"events-{function.name}", daemon=True)
            for function in self._functions
        ]

    @property
    def endpoint_url(self) -> str:
        return self._server.url

    @property
    def invocations(self) -> list[Any]:
        """Every event the first function received, in order."""
        return self._functions[0].invocations

    def invocations_of(self, function_arn: str) -> list[Any]:
        (function,) = [function for function in self._functions if function.arn == function_arn]
        return function.invocations

    def start(self) -> LocalLambdaApi:
        for worker in self._workers:
            worker.start()
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
        for function in self._functions:
            function.events.put(None)
            if function.container is not None:
                function.container.close()

    def drain(self, timeout: float = 15.0) -> None:
        """Waits until every queued event has run."""
        until = time.monotonic() + timeout
        for function in self._functions:
            while function.events.unfinished_tasks:
                if time.monotonic() > until:
                    raise TimeoutError(f"{function.name} still has queued events")
                time.sleep(0.01)

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        adapter = self._routes.bind_to_environ(environ)
        try:
            endpoint, arguments = adapter.match()
        except Exception:  # werkzeug's NotFound and MethodNotAllowed on unknown routes
            response = Response(json.dumps({"message": "Not Found"}), 404, content_type="application/json")
        else:
            response = self._invoke(request, **arguments) if endpoint == "invoke" else self._http_route(request)
        return response(environ, start_response)

    def _invoke(self, request: Request, name: str) -> Response:
        signer, (code, message) = self._sts.verify(request, request.get_data(), "lambda")
        if signer is None:  # Lambda refuses a request not signed by credentials STS issued, in its words
            return Response(json.dumps({"message": message}), 403, {"x-amzn-errortype": LAMBDA_REFUSALS[code]})
        function = next((function for function in self._functions if function.answers_to(name)), None)
        if function is None:
            body = {"Type": "User", "Message": f"Function not found: {name}"}
            return Response(json.dumps(body), 404, {"x-amzn-errortype": "ResourceNotFoundException"})
        invoked_arn = name if name.startswith("arn:") else function.arn
        try:
            event = json.loads(request.get_data() or b"{}")
        except ValueError:
            body = {"Type": "User", "Message": "Could not parse request body into json"}
            return Response(json.dumps(body), 400, {"x-amzn-errortype": "InvalidRequestContentException"})
        client_context = ClientContext.from_header(request.headers.get("X-Amz-Client-Context"))
        invocation_type = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type == "Event":
            if self.event_refusal is not None:  # Lambda throttling or refusing the event
                status, code = self.event_refusal
                return Response(json.dumps({"Type": "User", "Message": code}), status, {"x-amzn-errortype": code})
            function.events.put((event, invoked_arn, client_context))
            return Response(b"", 202, {"X-Amz-Executed-Version": "$LATEST"})
        if invocation_type == "DryRun":
            return Response(b"", 204)
        headers = {"X-Amz-Executed-Version": "$LATEST", "Content-Type": "application/json"}
        try:
            answer = self._run(function, event, invoked_arn, client_context)
        except Exception as error:  # what Lambda reports as an unhandled function error
            headers["X-Amz-Function-Error"] = "Unhandled"
            answer = {"errorMessage": str(error), "errorType": type(error).__name__}
        return Response(json.dumps(answer), 200, headers)

    def _run_events(self, function: _Function) -> None:
        while True:
            queued = function.events.get()
            try:
                if queued is None:
                    return
                self._run(function, *queued)
            except Exception as error:  # Lambda would log it and retry; here it is kept for tests
                function.failures.append(f"{type(error).__name__}: {error}")
            finally:
                function.events.task_done()

    def _http_route(self, request: Request) -> Response:
        raw = request.get_data()
        signer, (code, message) = self._sts.verify(request, raw, "execute-api")
        if signer is None:  # API Gateway's IAM authorizer answers this way, without invoking anything
            return Response(json.dumps({"message": message}), 403, {"x-amzn-errortype": code})
        now = time.time()
        event = {
            "version": "2.0",
            "routeKey": "POST /token",
            "rawPath": request.path,
            "rawQueryString": request.query_string.decode(),
            "headers": {key.lower(): value for key, value in request.headers.items()},
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "local",
                "authorizer": {
                    "iam": {
                        "accessKey": signer.credentials.access_key,
                        "accountId": signer.arn.split(":")[4],
                        "callerId": signer.user_id,
                        "cognitoIdentity": None,
                        "principalOrgId": None,
                        "userArn": signer.arn,
                        "userId": signer.user_id,
                    }
                },
                "http": {
                    "method": request.method,
                    "path": request.path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "127.0.0.1",
                },
                "requestId": uuid.uuid4().hex,
                "routeKey": "POST /token",
                "stage": "$default",
                "timeEpoch": int(now * 1000),
            },
            "body": base64.b64encode(raw).decode(),
            "isBase64Encoded": True,
        }
        answer = self._run(self._functions[0], event, self.function_arn, handler="http_handler")
        return Response(answer.get("body", ""), answer.get("statusCode", 502), answer.get("headers", {}))

    def _run(
        self,
        function: _Function,
        event: Any,
        invoked_arn: str,
        client_context: ClientContext | None = None,
        handler: str | None = None,
    ) -> Any:
        with function.lock:
            function.invocations.append(event)
            if function.own_process:
                return self._in_its_process(function, event, invoked_arn)
            if self.app is None:
                raise RuntimeError("the local Lambda API serves no handler module yet")
            context = LambdaContext(
                function_name=function.name, invoked_function_arn=invoked_arn, client_context=client_context
            )
            run: Callable[[Any, LambdaContext], Any] = getattr(self.app, handler or function.handler)
            return run(event, context)

    def _in_its_process(self, function: _Function, event: Any, invoked_arn: str) -> Any:
        """One invocation in the function's own container process, started at the first."""
        if function.container is None:
            function.container = ContainerProcess.start(dict(os.environ), self.output)
            function.container.wait_ready()
        function.container.send(event, handler=function.handler, arn=invoked_arn)
        return function.container.receive()["answer"]
