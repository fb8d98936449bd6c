"""One HTTP GET under the connector's rules: checked addresses, pinned connections, size and time limits.

Redirects are followed by hand (at most :data:`MAX_REDIRECTS`) so that every hop is
checked by the :class:`AddressPolicy` before it is contacted. The body is streamed
and abandoned as soon as it passes ``max_bytes`` (decompressed size, so a gzip bomb
stops too); the whole fetch, redirects included, must finish within ``timeout_s``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import httpx

from aerodrome.knowledge.connectors.address_policy import AddressPolicy
from aerodrome.knowledge.documents import DocumentError

MAX_REDIRECTS = 5


@dataclass(slots=True)
class Fetched:
    """A successful response."""

    url: str  # the final URL, after redirects
    content: bytes
    content_type: str | None
    modified_at: datetime | None


@dataclass(frozen=True, slots=True)
class FetchLimits:
    max_bytes: int
    timeout_s: float
    user_agent: str


def _pinned_request(url: str, ip: str, user_agent: str) -> httpx.Request:
    """A GET to the checked address, keeping the host name for the Host header and TLS (SNI, certificate)."""
    target = httpx.URL(url).copy_with(fragment=None)
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    headers = {"Host": target.netloc.decode("ascii"), "User-Agent": user_agent, "Accept": "*/*"}
    return httpx.Request("GET", target.copy_with(host=ip), headers=headers, extensions=extensions)


def _modified(header: str | None) -> datetime | None:
    if not header:
        return None
    try:
        return parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return None


class Fetcher:
    """Fetches URLs with one client, under one address policy and one set of limits."""

    def __init__(self, client: httpx.Client, policy: AddressPolicy, limits: FetchLimits) -> None:
        self.client = client
        self.policy = policy
        self.limits = limits

    @staticmethod
    def new_client(limits: FetchLimits) -> httpx.Client:
        """A client that never follows redirects itself, ignores proxy variables and keeps no connection alive
        (a pooled TLS connection must not be reused for another host name on the same address)."""
        return httpx.Client(
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(limits.timeout_s),
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    def get(self, url: str) -> Fetched:
        """The body of a URL, or :class:`DocumentError` saying why not (refused, unreachable, too large...)."""
        deadline = time.monotonic() + self.limits.timeout_s
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            addresses = self.policy.resolve(current)
            request = _pinned_request(current, str(addresses[0]), self.limits.user_agent)
            try:
                response = self.client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                raise DocumentError(f"timed out after {self.limits.timeout_s:g} s ({current})") from exc
            except httpx.HTTPError as exc:
                raise DocumentError(f"unreachable: {current} ({type(exc).__name__}: {exc})") from exc
            try:
                if response.is_redirect:
                    location = response.headers.get("location", "")
                    if not location:
                        raise DocumentError(
                            f"HTTP {response.status_code} redirect without Location ({current})"
                        )
                    current = urljoin(current, location)
                    continue
                if response.status_code >= 400:
                    raise DocumentError(f"HTTP {response.status_code} {response.reason_phrase} ({current})")
                content = self._body(response, current, deadline)
                return Fetched(
                    url=current,
                    content=content,
                    content_type=response.headers.get("content-type"),
                    modified_at=_modified(response.headers.get("last-modified")),
                )
            finally:
                response.close()
        raise DocumentError(f"more than {MAX_REDIRECTS} redirects ({url})")

    def _body(self, response: httpx.Response, url: str, deadline: float) -> bytes:
        limit = self.limits.max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit and "content-encoding" not in response.headers:
            raise DocumentError(f"response too large ({declared} bytes; the limit is {limit}) ({url})")
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise DocumentError(f"response too large (more than {limit} bytes) ({url})")
                if time.monotonic() > deadline:
                    raise DocumentError(f"timed out after {self.limits.timeout_s:g} s reading {url}")
                chunks.append(chunk)
        except httpx.TimeoutException as exc:
            raise DocumentError(f"timed out after {self.limits.timeout_s:g} s reading {url}") from exc
        except httpx.HTTPError as exc:
            raise DocumentError(f"unreadable response from {url} ({type(exc).__name__}: {exc})") from exc
        return b"".join(chunks)


def same_origin(a: str, b: str) -> bool:
    """Same scheme, host and port."""
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)
