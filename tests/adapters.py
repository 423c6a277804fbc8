"""One GET through each of token_client's HTTP adapters, as a consumer's code makes it."""

from __future__ import annotations

import httpx
import requests
import urllib3

from token_client import TokenClient
from token_client.httpx_auth import TokenAuth as HttpxAuth
from token_client.requests_auth import TokenAuth as RequestsAuth
from token_client.urllib3_auth import request as urllib3_request

ADAPTERS = ["requests", "httpx", "urllib3"]


def get_with(adapter: str, client: TokenClient, profile: str, url: str) -> int:
    """One GET through `adapter`, following redirects as each library does by default."""
    if adapter == "requests":
        with requests.Session() as session:
            session.auth = RequestsAuth(client, profile)
            return session.get(url, timeout=10).status_code
    if adapter == "httpx":
        with httpx.Client(auth=HttpxAuth(client, profile), follow_redirects=True) as http:
            return http.get(url).status_code
    return urllib3_request(client, profile, "GET", url, pool=urllib3.PoolManager()).status
