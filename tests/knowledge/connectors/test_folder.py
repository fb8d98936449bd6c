"""The folder connector: every format, rows as documents, and bad files reported one by one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aerodrome.errors import ConfigError
from aerodrome.knowledge.connectors import (
    CONNECTORS_GROUP,
    FolderConnector,
    FolderSource,
    connector_registry,
    make_connector,
)
from aerodrome.knowledge.documents import DocumentError, SourceDocument
from aerodrome.knowledge.parsers import parse
from tests.knowledge.parsers.samples import docx_bytes, pdf_bytes

SCIFACT = Path(__file__).resolve().parents[4] / "shared" / "data" / "scifact" / "corpus.jsonl"


def read(folder: Path, **config: object) -> dict[str, SourceDocument]:
    docs = list(make_connector({"kind": "folder", "path": str(folder), **config}).documents())
    by_id = {d.source_id: d for d in docs}
    assert len(by_id) == len(docs), "source ids are unique"
    return by_id


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """Good files of every format next to every kind of bad one."""
    (tmp_path / "hr").mkdir()
    (tmp_path / "hr" / "leave.md").write_text("# Leave\n\nTwenty days a year.\n")
    (tmp_path / "notes.txt").write_text("Plain notes.\n\nSecond paragraph.\n")
    (tmp_path / "vpn.html").write_text("<title>VPN</title><h1>VPN</h1><p>Use the client.</p>")
    (tmp_path / "handbook.pdf").write_bytes(pdf_bytes(["Handbook page one."]))
    (tmp_path / "policy.docx").write_bytes(docx_bytes([("h1", "Policy"), ("p", "Be kind.")]))
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 cr\xe8me".encode("latin-1"))
    good_pdf = pdf_bytes(["Truncated soon."] * 3)
    (tmp_path / "corrupt.pdf").write_bytes(good_pdf[: len(good_pdf) // 2])
    (tmp_path / "encrypted.pdf").write_bytes(pdf_bytes(["secret"], password="pw"))
    (tmp_path / "huge.txt").write_bytes(b"big " * 30_000)
    (tmp_path / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    (tmp_path / "random.md").write_bytes(bytes((i * 7919) % 256 for i in range(4096)))
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / ".hidden.md").write_text("# hidden")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD.txt").write_text("ref")
    return tmp_path


def test_one_bad_file_never_stops_the_rest(mixed: Path) -> None:
    docs = read(mixed, max_file_bytes=100_000)
    assert sorted(docs) == sorted(
        ["hr/leave.md", "notes.txt", "vpn.html", "handbook.pdf", "policy.docx", "latin1.txt",
         "corrupt.pdf", "encrypted.pdf", "huge.txt", "binary.txt", "random.md"]
    )  # fmt: skip
    errors = {k: d.error for k, d in docs.items() if d.error}
    assert errors == {
        "huge.txt": "file too large (120000 bytes; the limit is 100000)",
        "binary.txt": "binary content",
        "random.md": "binary content",
    }
    parsed, failed = {}, {}
    for source_id, doc in docs.items():
        try:
            parsed[source_id] = parse(doc)
        except DocumentError as exc:
            failed[source_id] = exc.message
    assert set(parsed) == {
        "hr/leave.md",
        "notes.txt",
        "vpn.html",
        "handbook.pdf",
        "policy.docx",
        "latin1.txt",
    }
    assert "corrupt PDF" in failed["corrupt.pdf"] and "encrypted PDF" in failed["encrypted.pdf"]
    assert parsed["hr/leave.md"].sections[0].heading == "Leave"
    assert parsed["handbook.pdf"].sections[0].page == 1
    assert parsed["policy.docx"].text == "Be kind."
    assert parsed["latin1.txt"].warnings == ["invalid UTF-8 (2 bytes replaced)"]


def test_file_documents_carry_path_uri_type_and_time(mixed: Path) -> None:
    doc = read(mixed)["hr/leave.md"]
    assert doc.uri == (mixed / "hr" / "leave.md").as_uri()
    assert doc.media_type == "text/markdown" and doc.content == b"# Leave\n\nTwenty days a year.\n"
    assert doc.modified_at is not None and doc.modified_at.tzinfo is not None
    assert len(doc.content_hash) == 64


def test_globs_select_files(mixed: Path) -> None:
    assert sorted(read(mixed, include=["**/*.md"], exclude=["random.md"])) == ["hr/leave.md"]
    assert sorted(read(mixed, include=["*.pdf"], exclude=["*corrupt*", "enc*"])) == ["handbook.pdf"]


def test_empty_folder_yields_nothing_and_missing_folder_is_a_source_error(tmp_path: Path) -> None:
    assert read(tmp_path) == {}
    docs = list(FolderConnector({"path": str(tmp_path / "nope")}).documents())
    assert len(docs) == 1 and docs[0].error == "folder not found" and docs[0].metadata["source_error"] is True


def test_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    (tmp_path / "kb").mkdir()
    os.symlink(outside, tmp_path / "kb" / "link.txt")
    docs = read(tmp_path / "kb")
    assert docs["link.txt"].error == "symbolic link points outside the folder"


def test_jsonl_rows_are_documents_and_bad_rows_are_reported(tmp_path: Path) -> None:
    lines = [
        b'{"_id": "d1", "title": "One", "text": "First.", "year": 2020}',
        b"",
        b'{"id": 7, "text": "Seven."}',
        b'{"title": "No id", "text": "Anonymous."}',
        b'{"_id": "d2", "title": "No text"}',
        b'{"_id": "d3", "text": ',
        b"[1, 2]",
        b'{"_id": "d4", "text": "bad \xff byte"}',
        b'{"_id": "d1", "text": "Duplicate."}',
        b'{"_id": "d5", "text": "Last one still read."}',
    ]
    (tmp_path / "rows.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    all_docs = list(make_connector({"kind": "folder", "path": str(tmp_path)}).documents())
    docs = {d.source_id: d for d in all_docs}
    assert docs["rows.jsonl#L9"].error == "duplicate id 'd1' (first in rows.jsonl)"  # its own id, not d1
    assert docs["d1"].text == "First." and docs["d1"].title == "One"
    assert docs["d1"].metadata["fields"] == {"year": 2020} and docs["d1"].uri.endswith("rows.jsonl#L1")
    assert docs["7"].text == "Seven."
    assert docs["rows.jsonl#L4"].text == "Anonymous."
    assert docs["d2"].error == "row on line 5 has no 'text' field"
    assert docs["rows.jsonl#L6"].error is not None and docs["rows.jsonl#L6"].error.startswith(
        "invalid JSON on line 6"
    )
    assert docs["rows.jsonl#L7"].error == "line 7 is not a JSON object"
    assert parse(docs["d4"]).warnings == ["invalid UTF-8 (1 bytes replaced)"]
    assert docs["d5"].text == "Last one still read."
    assert len(all_docs) == len(docs) == 9  # every non-blank line, each under its own id


def test_csv_rows_with_configured_fields(tmp_path: Path) -> None:
    (tmp_path / "faq.csv").write_bytes(
        "\ufeffdoc_id,question,answer,updated\nq1,Reset password?,Use the portal.,2024-01-02\n"
        'q2,"Quoted, title","Line one\nline two",2024-02-03T10:00:00Z\nq3,Empty answer,,\n'.encode()
    )
    docs = read(
        tmp_path, id_field="doc_id", title_field="question", text_field="answer", modified_field="updated"
    )
    assert docs["q1"].title == "Reset password?" and docs["q1"].text == "Use the portal."
    assert docs["q2"].text == "Line one\nline two" and docs["q2"].modified_at is not None
    assert docs["q2"].modified_at.isoformat() == "2024-02-03T10:00:00+00:00"
    assert docs["q3"].text == ""


@pytest.mark.skipif(not SCIFACT.exists(), reason="the shared SciFact corpus is not on this machine")
def test_scifact_corpus_loads_as_is() -> None:
    docs = list(FolderConnector(FolderSource(path=SCIFACT.parent, include=["corpus.jsonl"])).documents())
    assert len(docs) == 5183 and not [d for d in docs if d.error]
    assert (
        docs[0].source_id == "4983"
        and docs[0].title is not None
        and docs[0].title.startswith("Microstructural")
    )


def test_registry_and_config_validation(tmp_path: Path) -> None:
    registry = connector_registry()
    assert registry.group == CONNECTORS_GROUP == "aerodrome.connectors"
    assert {"folder", "url", "sql"} <= set(registry.names())
    with pytest.raises(ConfigError, match="unknown connector kind 'ftp'"):
        make_connector({"kind": "ftp"})
    with pytest.raises(ConfigError, match="invalid folder source"):
        make_connector({"kind": "folder", "path": str(tmp_path), "max_file_bytes": 0})
    with pytest.raises(ConfigError, match="needs a 'kind'"):
        make_connector({"path": str(tmp_path)})
    assert isinstance(make_connector(FolderSource(path=tmp_path)), FolderConnector)
