"""Local doors to the broker's real handler, no Docker: the Lambda Invoke API (as
`sam local start-lambda` serves it) and `POST /token` as an HTTP API with an IAM authorizer
passes it on: the request must be SigV4-signed for `execute-api` with credentials the local STS
issued, and the event names the signer as API Gateway would. Invocations run one at a time,
like one warm container."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from types import ModuleType
from typing import Any

from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from devstack.lambda_host import FUNCTION_ARN, ClientContext, LambdaContext
from devstack.loopback import LoopbackServer
from devstack.sts import LocalSts


class LocalLambdaApi:
    def __init__(self, app: ModuleType, sts: LocalSts, function_arn: str = FUNCTION_ARN, port: int = 0):
        self.function_arn = function_arn
        self._sts = sts
        self.function_name = function_arn.split(":")[6]
        self.invocations: list[Any] = []  # every event the handler received, in order
        self._app = app
        self._container = threading.Lock()
        self._routes = Map(
            [
                Rule("/2015-03-31/functions/<name>/invocations", endpoint="invoke", methods=["POST"]),
                Rule("/token", endpoint="http"),
            ]
        )
        self._server = LoopbackServer(self._wsgi, "local-lambda", port)

    @property
    def endpoint_url(self) -> str:
        return self._server.url

    def start(self) -> LocalLambdaApi:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

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
        # a name, or an ARN (qualified or not), as Lambda's Invoke API takes them
        if name not in (self.function_name, self.function_arn) and not name.startswith(self.function_arn + ":"):
            body = {"Type": "User", "Message": f"Function not found: {name}"}
            return Response(json.dumps(body), 404, {"x-amzn-errortype": "ResourceNotFoundException"})
        invoked_arn = name if name.startswith("arn:") else self.function_arn
        try:
            event = json.loads(request.get_data() or b"{}")
        except ValueError:
            body = {"Type": "User", "Message": "Could not parse request body into json"}
            return Response(json.dumps(body), 400, {"x-amzn-errortype": "InvalidRequestContentException"})
        headers = {"X-Amz-Executed-Version": "$LATEST", "Content-Type": "application/json"}
        try:
            client_context = ClientContext.from_header(request.headers.get("X-Amz-Client-Context"))
            answer = self._run("lambda_handler", event, invoked_arn, client_context)
        except Exception as error:  # what Lambda reports as an unhandled function error
            headers["X-Amz-Function-Error"] = "Unhandled"
            answer = {"errorMessage": str(error), "errorType": type(error).__name__}
        return Response(json.dumps(answer), 200, headers)

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
        answer = self._run("http_handler", event, self.function_arn)
        return Response(answer.get("body", ""), answer.get("statusCode", 502), answer.get("headers", {}))

    def _run(
        self, handler: str, event: Any, invoked_arn: str, client_context: ClientContext | None = None
    ) -> dict[str, Any]:
        context = LambdaContext(
            function_name=self.function_name, invoked_function_arn=invoked_arn, client_context=client_context
        )
        with self._container:
            self.invocations.append(event)
            result: dict[str, Any] = getattr(self._app, handler)(event, context)
            return result
