"""PDF → one section per page with text (1-based page numbers), with pypdf.

Corrupt and password-protected PDFs raise :class:`DocumentError` with a clear reason;
a PDF opened with the empty user password (restrictions only) is read. Pages without
extractable text (scans) become warnings, not errors.
"""

from __future__ import annotations

import io
import logging

from pypdf import PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError, PyPdfError

from aerodrome.knowledge.documents import DocumentError, ParsedDocument, Section, SourceDocument
from aerodrome.knowledge.parsers.plain import normalize

log = logging.getLogger(__name__)


def _open(doc: SourceDocument) -> PdfReader:
    if doc.content is None:
        raise DocumentError(f"{doc.source_id}: no content to parse")
    if not doc.content.lstrip()[:5] == b"%PDF-":
        raise DocumentError(f"{doc.source_id}: corrupt PDF (no %PDF header)")
    try:
        reader = PdfReader(io.BytesIO(doc.content))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except DependencyError as exc:
                raise DocumentError(
                    f"{doc.source_id}: encrypted PDF needs the 'cryptography' package ({exc})"
                ) from exc
            if not opened:
                raise DocumentError(f"{doc.source_id}: encrypted PDF (a password is required)")
        len(reader.pages)  # forces the page tree: a truncated file fails here, not later
    except DocumentError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        raise DocumentError(f"{doc.source_id}: corrupt PDF ({type(exc).__name__}: {exc})") from exc
    return reader


def _title(reader: PdfReader) -> str | None:
    try:
        meta = reader.metadata
        title = meta.title if meta is not None else None
    except (PyPdfError, ValueError, KeyError, TypeError) as exc:
        log.debug("unreadable PDF metadata: %s", exc)
        return None
    return str(title).strip() or None if title else None


def parse(doc: SourceDocument) -> ParsedDocument:
    """Parse a PDF: a section per page with text, warnings for empty or unreadable pages."""
    reader = _open(doc)
    sections: list[Section] = []
    warnings: list[str] = []
    empty_pages: list[int] = []
    try:
        pages = list(reader.pages)
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise DocumentError(f"{doc.source_id}: corrupt PDF ({type(exc).__name__}: {exc})") from exc
    for number, page in enumerate(pages, start=1):
        try:
            text = page.extract_text() or ""
        except (FileNotDecryptedError, PdfReadError) as exc:
            raise DocumentError(f"{doc.source_id}: corrupt PDF on page {number} ({exc})") from exc
        except Exception as exc:  # boundary: pypdf raises many kinds on odd content streams
            log.warning("PDF %s page %d: text extraction failed: %s", doc.source_id, number, exc)
            warnings.append(f"page {number}: text extraction failed ({type(exc).__name__})")
            continue
        text = normalize(text.replace("\x00", ""))
        if text:
            sections.append(Section(text=text, page=number))
        else:
            empty_pages.append(number)
    if not sections:
        warnings.append("no extractable text (a scanned PDF needs OCR)" if pages else "PDF has no pages")
    elif empty_pages:
        shown = ", ".join(str(n) for n in empty_pages[:10]) + (" ..." if len(empty_pages) > 10 else "")
        warnings.append(f"{len(empty_pages)} page(s) without text: {shown}")
    return ParsedDocument(title=_title(reader) or doc.title, sections=sections, warnings=warnings)
