"""`aerodrome collections|ingest|quality|search` on a folder with good and bad documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pypdf import PdfWriter
from typer.testing import CliRunner

from aerodrome.cli import app
from tests.harness import base_config
from tests.upstream.fixtures import UpstreamServer

runner = CliRunner()


def cli(*args: str) -> Any:
    return runner.invoke(app, list(args), env={"AERODROME_CONFIG": None, "COLUMNS": "200"})  # type: ignore[dict-item]


def _blank_pdf(path: Path, *, password: str | None = None) -> None:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    if password:
        writer.encrypt(password)
    with path.open("wb") as fh:
        writer.write(fh)


@pytest.fixture
def workspace(tmp_path: Path, upstream: UpstreamServer) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "leave.md").write_text(
        "# Leave\n\nBirth parents receive 16 weeks of parental leave at full pay.\n"
    )
    (docs / "vpn.txt").write_text(
        "Install the VPN client from the Software Centre and sign in with your email.\n"
    )
    (docs / "binary.txt").write_bytes(bytes(range(256)) * 8)
    (docs / "latin1.txt").write_bytes(
        "Caf\xe9 opening hours are 8 to 17 on weekdays, closed on weekends.".encode("latin-1")
    )
    _blank_pdf(docs / "encrypted.pdf", password="secret")
    (docs / "corrupt.pdf").write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog")
    (docs / "rows.jsonl").write_text(
        '{"_id": "r1", "title": "Row one", "text": "Expense claims are due within 30 days."}\n{not json\n'
    )
    cfg = base_config(upstream.url, db_url=f"sqlite:///{tmp_path}/k.db")
    path = tmp_path / "aerodrome.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def test_add_ingest_quality_search_remove(workspace: Path) -> None:
    cfg = str(workspace)
    docs = str(workspace.parent / "docs")
    r = cli(
        "collections",
        "add",
        "kb",
        "--source",
        docs,
        "--readers",
        "hr",
        "--embedding",
        "embed-small",
        "--config",
        cfg,
    )
    assert r.exit_code == 0, r.output
    r = cli("ingest", "kb", "--config", cfg)
    assert r.exit_code == 0, r.output
    # every bad document is named with its reason; the good ones are in
    for bad in ("binary.txt", "encrypted.pdf", "corrupt.pdf", "rows.jsonl#L2"):
        assert bad in r.output, (bad, r.output)
    assert "4 added" in r.output or "added" in r.output

    r = cli("search", "kb", "parental leave full pay", "--json", "--config", cfg)
    assert r.exit_code == 0, r.output
    results = json.loads(r.stdout)["results"]
    assert results[0]["document_id"] == "leave.md"
    ids = {
        x["document_id"]
        for x in json.loads(
            cli("search", "kb", "expense claims", "--json", "-k", "10", "--config", cfg).stdout
        )["results"]
    }
    assert "r1" in ids and "binary.txt" not in ids

    r = cli("quality", "kb", "--json", "--config", cfg)
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["summary"]["unparseable"] >= 4
    assert report["summary"]["encoding"] >= 1  # latin-1 bytes are not UTF-8

    again = cli("ingest", "kb", "--config", cfg)
    assert "0 added" in again.output and "unchanged" in again.output

    listed = cli("collections", "list", "--config", cfg)
    assert "kb" in listed.output and "ok" in listed.output
    assert cli("collections", "remove", "kb", "--config", cfg).exit_code == 0
    assert cli("search", "kb", "leave", "--config", cfg).exit_code != 0


def test_bad_collection_input_is_refused(workspace: Path) -> None:
    cfg = str(workspace)
    r = cli("collections", "add", "Bad Name", "--source", str(workspace.parent), "--config", cfg)
    assert r.exit_code != 0
    r = cli("collections", "add", "kb", "--source", "/nonexistent/folder", "--config", cfg)
    assert r.exit_code != 0 and "neither a folder" in r.output
    r = cli("ingest", "missing", "--config", cfg)
    assert r.exit_code != 0 and "missing" in r.output
