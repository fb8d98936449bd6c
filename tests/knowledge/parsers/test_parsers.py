"""Parsers per media type, and what each does with bad input (corrupt, encrypted, mis-encoded)."""

from __future__ import annotations

import pytest

from aerodrome.hookspecs import Registry
from aerodrome.knowledge.documents import DocumentError, ParsedDocument, Section, SourceDocument
from aerodrome.knowledge.parsers import PARSERS_GROUP, parse, parser_registry
from aerodrome.knowledge.parsers import media_types as mt
from tests.knowledge.parsers.samples import docx_bytes, pdf_bytes


def doc(
    media_type: str, content: bytes | None = None, text: str | None = None, **kw: object
) -> SourceDocument:
    return SourceDocument(source_id="docs/sample.x", uri="file:///docs/sample.x", media_type=media_type,
                          content=content, text=text, **kw)  # type: ignore[arg-type]  # fmt: skip


# ---------------------------------------------------------------- PDF


def test_pdf_sections_carry_page_numbers_and_title() -> None:
    parsed = parse(
        doc(mt.PDF, pdf_bytes(["Leave policy\nTwenty days.", "", "Expenses (travel)"], title="HR"))
    )
    assert parsed.title == "HR"
    assert [(s.page, s.text) for s in parsed.sections] == [
        (1, "Leave policy\nTwenty days."),
        (3, "Expenses (travel)"),
    ]
    assert parsed.warnings == ["1 page(s) without text: 2"]


def test_pdf_without_text_is_a_warning_not_an_error() -> None:
    parsed = parse(doc(mt.PDF, pdf_bytes(["", ""])))
    assert parsed.sections == []
    assert any("no extractable text" in w for w in parsed.warnings)


def test_encrypted_pdf_is_a_clear_error() -> None:
    with pytest.raises(DocumentError, match="encrypted PDF"):
        parse(doc(mt.PDF, pdf_bytes(["top secret"], password="hunter2")))


def test_truncated_pdf_is_a_clear_error() -> None:
    whole = pdf_bytes(["some text on page one"] * 3)
    with pytest.raises(DocumentError, match="corrupt PDF"):
        parse(doc(mt.PDF, whole[: len(whole) // 2]))


def test_garbage_with_pdf_type_is_a_clear_error() -> None:
    with pytest.raises(DocumentError, match="corrupt PDF"):
        parse(doc(mt.PDF, b"this is not a PDF at all"))


# ---------------------------------------------------------------- DOCX


def test_docx_heading_styles_become_heading_paths() -> None:
    content = docx_bytes(
        [("title", "Staff handbook"), ("h1", "Leave"), ("p", "Everyone gets leave."),
         ("h2", "Parental leave"), ("p", "Sixteen weeks."), ("table", "Grade,Days;A,20"),
         ("h1", "Expenses"), ("p", "Keep receipts.")]
    )  # fmt: skip
    parsed = parse(doc(mt.DOCX, content))
    assert parsed.title == "Staff handbook"
    assert [(s.heading, s.text) for s in parsed.sections] == [
        ("Leave", "Everyone gets leave."),
        ("Leave > Parental leave", "Sixteen weeks.\n\nGrade | Days\nA | 20"),
        ("Expenses", "Keep receipts."),
    ]


def test_corrupt_docx_is_a_clear_error() -> None:
    content = docx_bytes([("p", "hello")])
    with pytest.raises(DocumentError, match="corrupt DOCX"):
        parse(doc(mt.DOCX, content[:200]))


# ---------------------------------------------------------------- HTML


def test_html_drops_boilerplate_and_keeps_headings() -> None:
    page = b"""<!doctype html><html><head><title>VPN help</title><style>p{color:red}</style>
    <script>var tracking = 1;</script></head><body>
    <nav><a href="/">Home</a> menu</nav>
    <h1>Connecting</h1><p>Open the <b>VPN</b> client.<br>Sign in.</p>
    <div><h2>Troubleshooting</h2><ul><li>Restart</li><li>Call IT</li></ul></div>
    <footer>Copyright</footer></body></html>"""
    parsed = parse(doc(mt.HTML, page))
    assert parsed.title == "VPN help"
    assert [(s.heading, s.text) for s in parsed.sections] == [
        ("Connecting", "Open the VPN client.\nSign in."),
        ("Connecting > Troubleshooting", "Restart\n\nCall IT"),
    ]
    assert all(word not in parsed.text for word in ("tracking", "menu", "Copyright", "color"))


def test_html_title_falls_back_to_h1_and_honours_meta_charset() -> None:
    page = '<meta charset="iso-8859-1"><h1>Café menu</h1><p>Crème brûlée</p>'.encode("latin-1")
    parsed = parse(doc(mt.HTML, page))
    assert parsed.title == "Café menu"
    assert parsed.text == "Crème brûlée"
    assert parsed.warnings == []


def test_deeply_nested_html_does_not_overflow() -> None:
    page = ("<div>" * 5000 + "deep text" + "</div>" * 5000).encode()
    assert parse(doc(mt.HTML, page)).text == "deep text"


# ---------------------------------------------------------------- Markdown and text


def test_markdown_heading_paths_fences_and_front_matter() -> None:
    text = (
        "---\ntitle: 'Leave policy'\nowner: hr\n---\nPreamble.\n\n# Leave\nIntro.\n\n## Parental\n"
        "Sixteen weeks.\n\n```\n# not a heading\n```\n\n### Adoption\nSame.\n\n# Expenses\nReceipts.\n"
        "Travel\n------\nEconomy class.\n"
    )
    parsed = parse(doc(mt.MARKDOWN, text.encode()))
    assert parsed.title == "Leave policy"
    assert [(s.heading, s.text) for s in parsed.sections] == [
        (None, "Preamble."),
        ("Leave", "Intro."),
        ("Leave > Parental", "Sixteen weeks.\n\n```\n# not a heading\n```"),
        ("Leave > Parental > Adoption", "Same."),
        ("Expenses", "Receipts."),
        ("Expenses > Travel", "Economy class."),
    ]


def test_markdown_title_is_first_h1_without_front_matter() -> None:
    assert parse(doc(mt.MARKDOWN, b"# Remote work\n\nAllowed two days.")).title == "Remote work"


def test_plain_text_keeps_paragraphs_and_title_falls_back_to_file_name() -> None:
    parsed = parse(doc(mt.TEXT, b"First para\r\nline two.   \r\n\r\n\r\n\r\nSecond para.\n"))
    assert parsed.sections == [Section(text="First para\nline two.\n\nSecond para.")]
    assert parsed.title == "sample"


def test_rows_with_text_set_become_one_section() -> None:
    parsed = parse(doc(mt.TEXT, text="A row's text.", title="Row title"))
    assert parsed == ParsedDocument(title="Row title", sections=[Section(text="A row's text.")], warnings=[])


# ---------------------------------------------------------------- encodings


def test_invalid_utf8_is_replaced_and_counted() -> None:
    parsed = parse(doc(mt.TEXT, b"caf\xe9 and \xff\xfe bytes"))
    assert parsed.text == "caf\ufffd and \ufffd\ufffd bytes"
    assert parsed.warnings == ["invalid UTF-8 (3 bytes replaced)"]


def test_nul_bytes_are_stripped_with_a_warning() -> None:
    parsed = parse(doc(mt.TEXT, b"nul\x00 in\x00 text"))
    assert parsed.text == "nul in text"
    assert parsed.warnings == ["2 NUL bytes removed"]


def test_bom_is_honoured() -> None:
    assert parse(doc(mt.TEXT, b"\xef\xbb\xbfhello")).text == "hello"
    assert parse(doc(mt.TEXT, "h\u00e9llo".encode("utf-16"))).text == "h\u00e9llo"


def test_connector_warnings_come_first() -> None:
    parsed = parse(doc(mt.TEXT, text="x\x00y", metadata={"warnings": ["invalid UTF-8 (1 bytes replaced)"]}))
    assert parsed.text == "xy"
    assert parsed.warnings == ["invalid UTF-8 (1 bytes replaced)", "1 NUL byte removed"]


# ---------------------------------------------------------------- dispatch and registry


def test_connector_error_and_unknown_media_type_raise_document_error() -> None:
    with pytest.raises(DocumentError, match="file too large"):
        parse(doc(mt.TEXT, b"x", error="file too large"))
    with pytest.raises(DocumentError, match="no parser for media type 'image/png'"):
        parse(doc("image/png", b"\x89PNG"))


def test_registry_holds_builtins_and_accepts_new_media_types() -> None:
    registry = parser_registry()
    assert isinstance(registry, Registry) and registry.group == PARSERS_GROUP == "aerodrome.parsers"
    assert {mt.PDF, mt.DOCX, mt.HTML, mt.MARKDOWN, mt.TEXT} <= set(registry.names())
    registry.register("text/x-shout", lambda d: ParsedDocument(title=None, sections=[Section(text="LOUD")]))
    assert parse(doc("text/x-shout; charset=utf-8", b"quiet"), registry).text == "LOUD"
