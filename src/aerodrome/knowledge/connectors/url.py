"""The URL connector: pages and sitemaps over HTTP, within limits, never into private networks.

Start from ``urls`` and from the pages listed by ``sitemap`` (a sitemap index is
followed to its sitemaps, gzip included). With ``max_depth`` > 0, links of HTML pages
are followed to the same origin (scheme, host, port), breadth first, up to
``max_pages`` documents in all. A page's ``source_id`` is the URL asked for (without
fragment), its ``uri`` the URL finally served. Each failure (refused address,
unreachable host, HTTP error, too large, too slow, unsupported content type) is an
error document for that URL; an unusable sitemap is a source error.
"""

from __future__ import annotations

import gzip
import html
import re
import zlib
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Literal
from urllib.parse import urldefrag, urljoin, urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator
from selectolax.lexbor import LexborHTMLParser

from aerodrome.knowledge.connectors.address_policy import AddressPolicy
from aerodrome.knowledge.connectors.base import error_document
from aerodrome.knowledge.connectors.fetch import Fetcher, FetchLimits, same_origin
from aerodrome.knowledge.documents import DocumentError, SourceDocument
from aerodrome.knowledge.parsers import media_types
from aerodrome.knowledge.parsers.decoding import decode_text, looks_binary

MAX_SITEMAPS = 50
_LOC = re.compile(
    r"<(?:\w+:)?loc>\s*(?:<!\[CDATA\[)?(.*?)(?:\]\]>)?\s*</(?:\w+:)?loc>", re.DOTALL | re.IGNORECASE
)


class UrlSource(BaseModel):
    """Web pages and sitemaps."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["url"] = "url"
    urls: list[str] = Field(default_factory=list)
    sitemap: str | None = Field(default=None, description="URL of a sitemap.xml or sitemap index")
    max_depth: int = Field(
        default=0, ge=0, le=10, description="link levels followed from each start page, same origin"
    )
    max_pages: int = Field(default=100, gt=0, description="documents fetched in all (errors included)")
    max_bytes: int = Field(default=10 * 1024 * 1024, gt=0, description="per response, after decompression")
    timeout_s: float = Field(default=10.0, gt=0, description="per URL, redirects and body included")
    allow_private: list[str] = Field(
        default_factory=list, description="CIDRs, addresses or host names that may be private or loopback"
    )
    user_agent: str = "Aerodrome/0.1 (knowledge connector)"

    @model_validator(mode="after")
    def _has_start(self) -> UrlSource:
        if not self.urls and not self.sitemap:
            raise ValueError("a url source needs 'urls' or a 'sitemap'")
        return self


def extract_links(content: bytes, base_url: str) -> list[str]:
    """Absolute http(s) links of an HTML page, without fragments, in page order, de-duplicated."""
    text, _ = decode_text(content)
    tree = LexborHTMLParser(text)
    base = tree.css_first("base[href]")
    if base is not None:
        base_url = urljoin(base_url, base.attributes.get("href") or "")
    out: list[str] = []
    for anchor in tree.css("a[href]"):
        href = (anchor.attributes.get("href") or "").strip()
        if not href or href.startswith(("#", "mailto:", "javascript:", "tel:", "data:")):
            continue
        link = urldefrag(urljoin(base_url, href)).url
        if urlsplit(link).scheme in ("http", "https") and link not in out:
            out.append(link)
    return out


def sitemap_locations(content: bytes, max_bytes: int) -> tuple[bool, list[str]]:
    """(is a sitemap index, the <loc> URLs) of a sitemap, gzipped or not (read with a regex, no XML entities)."""
    if content[:2] == b"\x1f\x8b":
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        content = inflater.decompress(content, max_bytes)
        if inflater.unconsumed_tail:
            raise DocumentError(f"sitemap too large once decompressed (more than {max_bytes} bytes)")
    text, _ = decode_text(content)
    if "<urlset" not in text and "<sitemapindex" not in text:
        raise DocumentError("not a sitemap (no <urlset> or <sitemapindex>)")
    locations = [html.unescape(m.group(1).strip()) for m in _LOC.finditer(text)]
    return "<sitemapindex" in text, [u for u in locations if u]


class UrlConnector:
    """Yields web pages as documents (raw bytes, parsed later by media type)."""

    config_type: ClassVar[type[BaseModel]] = UrlSource

    def __init__(self, config: UrlSource | Mapping[str, Any]) -> None:
        self.config = config if isinstance(config, UrlSource) else UrlSource.model_validate(config)
        self.policy = AddressPolicy.from_allow_list(self.config.allow_private)
        self.limits = FetchLimits(self.config.max_bytes, self.config.timeout_s, self.config.user_agent)

    def documents(self) -> Iterator[SourceDocument]:
        """Fetch the start pages, the sitemap's pages and (with max_depth) linked pages."""
        with Fetcher.new_client(self.limits) as client:
            fetcher = Fetcher(client, self.policy, self.limits)
            starts = [urldefrag(u.strip()).url for u in self.config.urls if u.strip()]
            if self.config.sitemap:
                pages: list[str] = []
                yield from self._sitemap(fetcher, self.config.sitemap, pages)
                starts.extend(pages)
            yield from self._crawl(fetcher, starts)

    def _sitemap(self, fetcher: Fetcher, root: str, pages: list[str]) -> Iterator[SourceDocument]:
        """Collect page URLs from a sitemap and the sitemaps it lists; yield an error per unusable sitemap."""
        queue, seen = deque([root]), {root}
        while queue and len(pages) < self.config.max_pages:
            url = queue.popleft()
            try:
                fetched = fetcher.get(url)
                is_index, locations = sitemap_locations(fetched.content, self.config.max_bytes)
            except (DocumentError, zlib.error, gzip.BadGzipFile, EOFError) as exc:
                reason = exc.message if isinstance(exc, DocumentError) else f"corrupt gzip ({exc})"
                yield error_document(url, url, f"sitemap: {reason}", source_error=True)
                continue
            for location in locations:
                if is_index:
                    if location not in seen and len(seen) < MAX_SITEMAPS:
                        seen.add(location)
                        queue.append(location)
                elif location not in pages:
                    pages.append(urldefrag(location).url)

    def _crawl(self, fetcher: Fetcher, starts: list[str]) -> Iterator[SourceDocument]:
        queue: deque[tuple[str, int, str]] = deque((url, 0, url) for url in starts)
        visited: set[str] = set()
        fetched_count = 0
        while queue and fetched_count < self.config.max_pages:
            url, depth, origin = queue.popleft()
            if url in visited:
                continue
            visited.add(url)
            fetched_count += 1
            doc = self._page(fetcher, url)
            yield doc
            if doc.error or depth >= self.config.max_depth or doc.media_type != media_types.HTML:
                continue
            for link in extract_links(doc.content or b"", doc.uri):
                if link not in visited and same_origin(link, origin):
                    queue.append((link, depth + 1, origin))

    def _page(self, fetcher: Fetcher, url: str) -> SourceDocument:
        try:
            fetched = fetcher.get(url)
        except DocumentError as exc:
            return error_document(url, url, exc.message)
        media_type, charset = media_types.for_content_type(fetched.content_type, urlsplit(fetched.url).path)
        if media_type is None:
            return error_document(url, fetched.url, f"unsupported content type {fetched.content_type!r}")
        if media_type in media_types.TEXTUAL and looks_binary(fetched.content[:8192]):
            return error_document(url, fetched.url, "binary content", media_type=media_type)
        metadata: dict[str, Any] = {"final_url": fetched.url, "size": len(fetched.content)}
        if charset:
            metadata["charset"] = charset
        return SourceDocument(
            source_id=url,
            uri=fetched.url,
            media_type=media_type,
            content=fetched.content,
            modified_at=fetched.modified_at,
            metadata=metadata,
        )
