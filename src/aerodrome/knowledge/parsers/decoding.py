"""Bytes → text, loudly: BOMs honoured, invalid UTF-8 replaced and counted, NUL bytes stripped.

Every repair becomes a warning on the parsed document; the quality report counts
them as encoding problems (see :func:`is_encoding_warning`).
"""

from __future__ import annotations

import codecs
import re

from aerodrome.knowledge.documents import DocumentError, SourceDocument

_SURROGATE_ESCAPES = re.compile("[\udc80-\udcff]")
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_BINARY_MAGIC = (
    b"%PDF-",
    b"PK\x03\x04",
    b"\x89PNG",
    b"GIF8",
    b"\xff\xd8\xff",
    b"\x7fELF",
    b"\x1f\x8b",
    b"BZh",
    b"\xfd7zXZ",
    b"MZ",
    b"\xd0\xcf\x11\xe0",  # OLE (old .doc/.xls)
    b"SQLite format 3",
)
_ALLOWED_CONTROLS = frozenset(b"\t\n\r\f\b\x1b")
ENCODING_MARKERS = ("invalid UTF-8", "NUL byte", "undecodable", "encoding")


def is_encoding_warning(warning: str) -> bool:
    """True for the warnings this module (or a parser using it) writes about text encoding."""
    return any(marker in warning for marker in ENCODING_MARKERS)


def looks_binary(sample: bytes) -> bool:
    """Whether bytes that should be text are in fact binary (a PNG renamed .txt, an executable...).

    Text in an unexpected encoding (Latin-1) or with a few NUL bytes still counts as text:
    it is decoded with replacements and warnings. Binary means a known binary signature,
    or more than 30% of the sample being control bytes or invalid UTF-8.
    """
    if not sample or any(sample.startswith(bom) for bom, _ in _BOMS):
        return False
    if sample.startswith(_BINARY_MAGIC):
        return True
    decoded = sample.decode("utf-8", "surrogateescape")
    invalid = len(_SURROGATE_ESCAPES.findall(decoded))
    controls = sum(1 for b in sample if (b < 32 and b not in _ALLOWED_CONTROLS) or b == 127)
    return (invalid + controls) / len(sample) > 0.3


def decode_text(data: bytes, declared: str | None = None) -> tuple[str, list[str]]:
    """Decode bytes to text, returning the text and the warnings about what was repaired.

    A BOM wins; then a declared charset (HTTP header, HTML meta) when Python knows it;
    otherwise UTF-8. Invalid UTF-8 bytes become U+FFFD, one per byte, with the warning
    ``invalid UTF-8 (N bytes replaced)``. NUL characters are removed with a warning.
    """
    warnings: list[str] = []
    encoding = "utf-8"
    for bom, name in _BOMS:
        if data.startswith(bom):
            data, encoding = data[len(bom) :], name
            break
    else:
        if declared:
            try:
                encoding = codecs.lookup(declared).name
            except LookupError:
                warnings.append(f"unknown declared encoding {declared!r}; decoded as UTF-8")
    if encoding in ("utf-8", "utf_8"):
        text = data.decode("utf-8", "surrogateescape")
        bad = len(_SURROGATE_ESCAPES.findall(text))
        if bad:
            text = _SURROGATE_ESCAPES.sub("\ufffd", text)
            warnings.append(f"invalid UTF-8 ({bad} bytes replaced)")
    else:
        text = data.decode(encoding, "replace")
        bad = text.count("\ufffd")
        if bad:
            warnings.append(f"undecodable {encoding} ({bad} characters replaced)")
    text, nul_warning = strip_nul(text)
    if nul_warning:
        warnings.append(nul_warning)
    return text, warnings


def strip_nul(text: str) -> tuple[str, str | None]:
    """Remove NUL characters (databases and tokenizers choke on them); return a warning if any were."""
    count = text.count("\x00")
    if not count:
        return text, None
    return text.replace("\x00", ""), f"{count} NUL byte{'s' if count > 1 else ''} removed"


def clean_text(text: str) -> tuple[str, list[str]]:
    """Repair text that arrived as ``str`` (rows): lone surrogates and NUL characters."""
    warnings: list[str] = []
    bad = len(_SURROGATE_ESCAPES.findall(text))
    if bad:
        text = _SURROGATE_ESCAPES.sub("\ufffd", text)
        warnings.append(f"invalid UTF-8 ({bad} bytes replaced)")
    text, nul_warning = strip_nul(text)
    if nul_warning:
        warnings.append(nul_warning)
    return text, warnings


def source_text(doc: SourceDocument) -> tuple[str, list[str]]:
    """The text of a document, whether it came as text (rows) or as bytes (files, pages)."""
    if doc.text is not None:
        return clean_text(doc.text)
    if doc.content is None:
        raise DocumentError(f"{doc.source_id}: no content to parse")
    charset = doc.metadata.get("charset")
    return decode_text(doc.content, charset if isinstance(charset, str) else None)
