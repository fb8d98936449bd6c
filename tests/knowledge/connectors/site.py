"""A small web site on 127.0.0.1 for the URL connector tests (pages, redirects, sitemaps, slow and big answers)."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Site:
    base: str
    hits: list[str] = field(default_factory=list)


def _routes(base: str) -> dict[str, tuple[int, dict[str, str], bytes]]:
    html = {"Content-Type": "text/html; charset=utf-8"}
    urlset = (
        f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<url><loc>{base}/a.html</loc></url><url><loc>{base}/b.txt?x=1&amp;y=2</loc></url></urlset>"
    ).encode()
    index = (
        f'<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<sitemap><loc>{base}/sitemap.xml</loc></sitemap><sitemap><loc>{base}/more.xml.gz</loc></sitemap>"
        f"<sitemap><loc>{base}/missing.xml</loc></sitemap></sitemapindex>"
    ).encode()
    more = f"<urlset><url><loc>{base}/c.html</loc></url></urlset>".encode()
    return {
        "/index.html": (200, html, (
            b"<title>Home</title><h1>Home</h1><p>Welcome.</p><a href='/a.html'>A</a> <a href='b.txt#top'>B</a>"
            b" <a href='http://example.invalid/x'>out</a> <a href='mailto:x@example.com'>m</a>"
        )),
        "/a.html": (200, html, b"<title>A</title><p>Page A.</p><a href='/c.html'>C</a>"),
        "/b.txt": (200, {"Content-Type": "text/plain", "Last-Modified": "Tue, 02 Jan 2024 10:00:00 GMT"}, b"Bee."),
        "/c.html": (200, html, b"<p>Page C.</p>"),
        "/redirect": (302, {"Location": "/a.html"}, b""),
        "/to-private": (302, {"Location": "http://10.0.0.1/admin"}, b""),
        "/loop": (302, {"Location": "/loop"}, b""),
        "/image.png": (200, {"Content-Type": "image/png"}, b"\x89PNG\r\n\x1a\n"),
        "/binary.txt": (200, {"Content-Type": "text/plain"}, bytes(range(256)) * 4),
        "/sitemap.xml": (200, {"Content-Type": "application/xml"}, urlset),
        "/sitemap-index.xml": (200, {"Content-Type": "application/xml"}, index),
        "/more.xml.gz": (200, {"Content-Type": "application/gzip"}, gzip.compress(more)),
        "/not-a-sitemap.xml": (200, {"Content-Type": "text/html"}, b"<html>hello</html>"),
    }  # fmt: skip


@contextmanager
def serve() -> Iterator[Site]:
    """Serve the site on an ephemeral 127.0.0.1 port for the duration of the block."""
    site = Site(base="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            site.hits.append(path)
            if path == "/slow":
                time.sleep(1.0)
            if path in ("/big", "/slow"):
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()  # no Content-Length: the client must stop reading by itself
                try:
                    for _ in range(64):
                        self.wfile.write(b"x" * 4096)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                return
            if path == "/big-declared":
                self.send_response(200)
                self.send_header("Content-Length", str(50_000_000))
                self.end_headers()
                return
            status, headers, body = routes.get(path, (404, {"Content-Type": "text/plain"}, b"not found"))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.block_on_close = False
    site.base = f"http://127.0.0.1:{server.server_address[1]}"
    routes = _routes(site.base)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
