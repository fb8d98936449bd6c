"""The demo's knowledge base: HR policies, IT help and a product FAQ, in several formats.

Markdown, HTML, TXT, CSV and JSONL files ship with the package; a DOCX and a PDF are
written here (the PDF by hand, so that no PDF writer is needed). Two problems are left
in on purpose so that the quality report has something to say: an outdated near-copy
of the leave policy and an empty draft.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

DATA = Path(__file__).parent / "demo_data"
USECASES = Path(__file__).parent / "demo_usecases"

CODE_OF_CONDUCT = [
    ("Code of conduct", 1),
    ("We treat colleagues, customers and partners with respect, and we do not tolerate harassment.", 0),
    ("Gifts and hospitality", 2),
    ("Gifts worth more than 50 euros must be declared to the compliance team within 5 working days.", 0),
    ("Speaking up", 2),
    ("Report concerns to your manager, to HR, or anonymously through the ethics hotline.", 0),
]

SECURITY_PDF_LINES = [
    "Information security guidelines",
    "Lock your screen whenever you leave your desk.",
    "Report lost or stolen laptops and phones to the IT service desk within one hour.",
    "Never share your password, not even with the IT service desk.",
    "Suspicious emails are reported with the Report Phishing button in the mail client.",
]


def _pdf(lines: list[str]) -> bytes:
    """A one-page PDF with one line of Helvetica text per entry."""

    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    body = "BT /F1 12 Tf 72 720 Td 16 TL " + " ".join(f"({esc(t)}) Tj T*" for t in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> "
        "/Contents 5 0 R >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Length {len(body)} >>\nstream\n{body}\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{obj}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def _docx(path: Path) -> None:
    from docx import Document

    doc = Document()
    for text, level in CODE_OF_CONDUCT:
        if level:
            doc.add_heading(text, level=level)
        else:
            doc.add_paragraph(text)
    doc.save(str(path))


def write_knowledge(root: Path) -> Path:
    """Write the demo files under ``root/knowledge`` (kept if they exist) and return that folder."""
    target = root / "knowledge"
    if not target.exists():
        shutil.copytree(DATA, target)
        _docx(target / "hr" / "code-of-conduct.docx")
        (target / "it" / "security-guidelines.pdf").write_bytes(_pdf(SECURITY_PDF_LINES))
        outdated = datetime(2024, 3, 1, tzinfo=UTC).timestamp()  # the superseded copy is old, and looks it
        os.utime(target / "hr" / "leave-policy-2024.md", (outdated, outdated))
    return target


def write_usecases(root: Path) -> Path:
    """Write the demo's use-case specs under ``root/usecases`` (kept if the folder exists)."""
    target = root / "usecases"
    if not target.exists():
        shutil.copytree(USECASES, target)
    return target


COLLECTIONS_YAML = """\
knowledge:
  index: sqlite                  # <database>.knowledge.db beside the database; postgres (pgvector) when scaled

collections:
  - name: hr-policies
    description: Leave, remote work, expenses and conduct policies
    data_class: internal
    readers: {departments: [hr, platform], roles: [auditor]}
    sources: [{kind: folder, path: knowledge/hr}]
    quality: {freshness_days: 730, near_duplicate_threshold: 0.8,
              quarantine: [unparseable, empty, exact_duplicate, near_duplicate]}
  - name: it-help
    description: IT help centre articles
    data_class: internal
    readers: {departments: ["*"]}
    sources: [{kind: folder, path: knowledge/it}]
  - name: product-faq
    description: Aerolite product FAQ and release notes
    data_class: public
    readers: {departments: [support, finance, platform]}
    sources: [{kind: folder, path: knowledge/product}]

usecases:
  dir: usecases                  # one spec file per use case; edits make new versions (docs/usecases.md)
"""
