"""Run in a fresh environment where token_client was pip-installed: gets a token through each
transport and each adapter, and prints what happened as one JSON object.

argv: the broker's function ARN, its HTTP route's URL, a profile, and the resource server's URL.
"""

import asyncio
import importlib.metadata
import json
import sys

import token_client
from token_client import TokenClient

function_arn, route_url, profile, api = sys.argv[1:5]
core_imports = sorted(name for name in ("requests", "httpx") if name in sys.modules)

direct = TokenClient(function_arn)
over_http = TokenClient(url=route_url, audience=function_arn, region="us-east-1")
results = {
    "core_imports": core_imports,
    "location": token_client.__file__,
    "version": [token_client.__version__, importlib.metadata.version("token-client")],
    "lambda": direct.token(profile).expires_in() > 60,
    "http": over_http.token(profile).scope,
}


import requests  # noqa: E402

from token_client.requests_auth import TokenAuth as RequestsAuth  # noqa: E402

with requests.Session() as session:
    session.auth = RequestsAuth(direct, profile)
    answer = session.get(f"{api}/requests")
    results["requests"] = [answer.status_code, len(answer.history)]

import httpx  # noqa: E402

from token_client.httpx_auth import TokenAuth as HttpxAuth  # noqa: E402

with httpx.Client(auth=HttpxAuth(over_http, profile)) as client:
    results["httpx"] = client.get(f"{api}/httpx").status_code


async def asynchronously():
    async with httpx.AsyncClient(auth=HttpxAuth(direct, profile)) as client:
        return (await client.get(f"{api}/httpx-async")).status_code


results["httpx_async"] = asyncio.run(asynchronously())

from token_client.urllib3_auth import request  # noqa: E402

results["urllib3"] = request(direct, profile, "GET", f"{api}/urllib3").status
print(json.dumps(results))
