"""The URL connector against a local site: crawling, sitemaps, limits, and SSRF refusals."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from aerodrome.knowledge.connectors import UrlConnector, make_connector
from aerodrome.knowledge.connectors.address_policy import AddressPolicy, BlockedAddress
from aerodrome.knowledge.documents import SourceDocument
from aerodrome.knowledge.parsers import parse
from tests.knowledge.connectors.site import Site, serve

LOCAL = ["127.0.0.1"]


@pytest.fixture
def site() -> Iterator[Site]:
    with serve() as s:
        yield s


def fetch(**config: Any) -> dict[str, SourceDocument]:
    config.setdefault("allow_private", LOCAL)
    config.setdefault("timeout_s", 3)
    return {d.source_id: d for d in make_connector({"kind": "url", **config}).documents()}


def test_depth_one_follows_same_origin_links_only(site: Site) -> None:
    docs = fetch(urls=[f"{site.base}/index.html"], max_depth=1)
    assert list(docs) == [f"{site.base}/index.html", f"{site.base}/a.html", f"{site.base}/b.txt"]
    assert all(d.error is None for d in docs.values())
    assert parse(docs[f"{site.base}/index.html"]).title == "Home"
    bee = docs[f"{site.base}/b.txt"]
    assert bee.media_type == "text/plain" and bee.content == b"Bee."
    assert bee.modified_at is not None and bee.modified_at.year == 2024
    assert "/c.html" not in site.hits  # depth 2


def test_depth_zero_and_page_limit(site: Site) -> None:
    assert list(fetch(urls=[f"{site.base}/index.html"])) == [f"{site.base}/index.html"]
    assert len(fetch(urls=[f"{site.base}/index.html"], max_depth=3, max_pages=2)) == 2


def test_redirect_is_followed_and_recorded(site: Site) -> None:
    doc = fetch(urls=[f"{site.base}/redirect"])[f"{site.base}/redirect"]
    assert doc.error is None and doc.uri == f"{site.base}/a.html"
    assert parse(doc).title == "A"


def test_each_failure_is_an_error_document_and_the_rest_is_fetched(site: Site) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{closed.getsockname()[1]}/"
    closed.close()
    urls = [f"{site.base}/{p}" for p in ("missing", "image.png", "binary.txt", "big", "big-declared", "loop",
                                         "to-private", "slow")]  # fmt: skip
    docs = fetch(urls=[dead, *urls, f"{site.base}/c.html"], max_bytes=100_000, timeout_s=0.5)
    errors = {k.rsplit("/", 1)[-1] or "dead": d.error or "" for k, d in docs.items()}
    assert errors["dead"].startswith("unreachable")
    assert errors["missing"].startswith("HTTP 404")
    assert errors["image.png"] == "unsupported content type 'image/png'"
    assert errors["binary.txt"] == "binary content"
    assert errors["big"].startswith("response too large (more than 100000 bytes)")
    assert errors["big-declared"].startswith("response too large (50000000 bytes")
    assert errors["loop"].startswith("more than 5 redirects")
    assert errors["to-private"].startswith("refused: 10.0.0.1 resolves to 10.0.0.1, a private address")
    assert errors["slow"].startswith("timed out")
    assert errors["c.html"] == ""  # the good page after all the bad ones


def test_sitemap_index_nested_and_gzipped(site: Site) -> None:
    docs = fetch(sitemap=f"{site.base}/sitemap-index.xml")
    assert [k for k, d in docs.items() if not d.error] == [
        f"{site.base}/a.html",
        f"{site.base}/b.txt?x=1&y=2",
        f"{site.base}/c.html",
    ]
    broken = docs[f"{site.base}/missing.xml"]
    assert broken.error == f"sitemap: HTTP 404 Not Found ({site.base}/missing.xml)"
    assert broken.metadata["source_error"] is True
    bad = fetch(sitemap=f"{site.base}/not-a-sitemap.xml")
    assert (
        bad[f"{site.base}/not-a-sitemap.xml"].error
        == "sitemap: not a sitemap (no <urlset> or <sitemapindex>)"
    )


def test_loopback_is_refused_unless_allow_listed(site: Site) -> None:
    docs = fetch(urls=[f"{site.base}/a.html"], allow_private=[])
    error = docs[f"{site.base}/a.html"].error or ""
    assert error.startswith("refused: 127.0.0.1 resolves to 127.0.0.1, a loopback address")
    assert site.hits == []  # nothing reached the server
    assert (
        fetch(urls=[f"{site.base}/a.html"], allow_private=["127.0.0.0/8"])[f"{site.base}/a.html"].error
        is None
    )


def test_private_addresses_are_refused_without_any_traffic(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> Any:
        raise AssertionError("the connector touched the network")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    urls = ["http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/", "http://[::1]:8080/",
            "https://[::ffff:127.0.0.1]/", "http://0.0.0.0/", "http://100.64.0.1/", "http://224.0.0.1/"]  # fmt: skip
    docs = list(UrlConnector({"urls": urls}).documents())
    reasons = [d.error for d in docs]
    assert reasons == [
        "refused: 10.0.0.1 resolves to 10.0.0.1, a private address (add it to allow_private to permit it)",
        "refused: 169.254.169.254 resolves to 169.254.169.254, a link-local address "
        "(add it to allow_private to permit it)",
        "refused: ::1 resolves to ::1, a loopback address (add it to allow_private to permit it)",
        "refused: ::ffff:127.0.0.1 resolves to ::ffff:7f00:1, an IPv6 address embedding a loopback IPv4 "
        "address (127.0.0.1) (add it to allow_private to permit it)",
        "refused: 0.0.0.0 resolves to 0.0.0.0, an unspecified address (add it to allow_private to permit it)",
        "refused: 100.64.0.1 resolves to 100.64.0.1, a non-public address (add it to allow_private to permit it)",
        "refused: 224.0.0.1 resolves to 224.0.0.1, a multicast address (add it to allow_private to permit it)",
    ]


def test_host_names_are_judged_by_every_address_they_resolve_to(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {"intranet.example": ["93.184.216.34", "10.1.2.3"], "www.example": ["93.184.216.34"]}

    def fake_getaddrinfo(host: str, port: int, *args: object, **kwargs: object) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in answers[host]]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    policy = AddressPolicy.from_allow_list([])
    assert policy.resolve("https://www.example/x") == [ipaddress.ip_address("93.184.216.34")]
    with pytest.raises(BlockedAddress, match=r"intranet\.example resolves to 10\.1\.2\.3, a private address"):
        policy.resolve("http://intranet.example/")
    assert len(AddressPolicy.from_allow_list(["intranet.example"]).resolve("http://intranet.example/")) == 2
    assert len(AddressPolicy.from_allow_list(["10.0.0.0/8"]).resolve("http://intranet.example/")) == 2


@pytest.mark.parametrize(
    ("address", "allowed"),
    [("8.8.8.8", True), ("2606:4700::1111", True), ("192.168.1.1", False), ("fe80::1", False),
     ("fc00::1", False), ("64:ff9b::a00:1", False), ("2002:7f00:1::", False), ("::", False)],
)  # fmt: skip
def test_address_policy(address: str, allowed: bool) -> None:
    assert AddressPolicy().allows(ipaddress.ip_address(address)) is allowed


def test_only_http_and_https() -> None:
    docs = list(UrlConnector({"urls": ["file:///etc/passwd", "ftp://example.com/x"]}).documents())
    assert [d.error for d in docs] == [
        "unsupported URL scheme 'file' (http and https only)",
        "unsupported URL scheme 'ftp' (http and https only)",
    ]
