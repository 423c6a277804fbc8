"""URLs the broker connects to, read exactly as urllib3 reads them: what is checked is what is dialled.

`urllib.parse` and urllib3 disagree on some URLs (`http://192.0.2.2:80\\@127.0.0.1/` is a
loopback URL to one and a connection to 192.0.2.2 to the other), so a check made with one and a
connection made with the other would let a URL pass for loopback that is not. A backslash or
userinfo, which no endpoint needs, is refused outright.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url


class BadEndpoint(ValueError):
    """A URL the broker will not connect to; the message says why, never quoting the URL."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    scheme: str  # "http" or "https"
    host: str  # as urllib3 connects to it; IPv6 without brackets
    url: str  # as urllib3 renders what it parsed

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def parse_endpoint(url: str) -> Endpoint:
    """An absolute http or https URL with a host, no userinfo, no backslash and no fragment."""
    if "\\" in url:
        raise BadEndpoint("a backslash is not allowed in a URL")
    try:
        parsed = parse_url(url)
    except LocationParseError:
        raise BadEndpoint("not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise BadEndpoint("an absolute http or https URL with a host is required")
    if parsed.auth is not None:
        raise BadEndpoint("credentials in a URL are not allowed")
    if parsed.fragment is not None:
        raise BadEndpoint("a fragment is not allowed in a URL")
    return Endpoint(parsed.scheme, parsed.host.strip("[]"), parsed.url)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or `localhost`."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
