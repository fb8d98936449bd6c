"""Collections end to end through the real server: sync jobs, access control, incremental re-sync, quality."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import Gateway, base_config, run_gateway
from tests.upstream.fixtures import UpstreamServer

HR_DOCS = {
    "leave.md": "# Leave\n\n## Parental leave\n\nBirth parents receive 16 weeks of parental leave at full pay.\n\n"
    "## Sick leave\n\nEmployees receive 10 days of paid sick leave per year.\n",
    "salaries.md": "# Salaries\n\nSalary bands are reviewed every April by the compensation committee.\n",
    "copy-of-salaries.md": "# Salaries\n\nSalary bands are reviewed every April by the compensation committee.\n",
    "empty.txt": "\n",
}
IT_DOCS = {
    "vpn.md": "# VPN\n\nInstall the VPN client from the Software Centre and sign in with your company email.\n",
    "printer.md": "# Printers\n\nPrinters on every floor accept badge release printing.\n",
}


def _write(folder: Path, docs: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")


@pytest.fixture
def kgw(upstream: UpstreamServer, tmp_path: Path) -> Iterator[Gateway]:
    _write(tmp_path / "hr", HR_DOCS)
    _write(tmp_path / "it", IT_DOCS)
    cfg = base_config(upstream.url, db_url=f"sqlite:///{tmp_path}/k.db")
    cfg["collections"] = [
        {
            "name": "hr-policies",
            "data_class": "internal",
            "readers": {"departments": ["hr"]},
            "sources": [{"kind": "folder", "path": "hr"}],
            "embedding": "embed-small",
            "quality": {"quarantine": ["exact_duplicate"]},
        },
        {
            "name": "it-help",
            "data_class": "internal",
            "readers": {"departments": ["*"]},
            "sources": [{"kind": "folder", "path": "it"}],
            "embedding": "embed-small",
        },
    ]
    with run_gateway(cfg, tmp_path) as gw:
        yield gw


def _sync(gw: Gateway, name: str) -> dict[str, Any]:
    with gw.client(gw.admin_key) as c:
        r = c.post(f"/api/collections/{name}/sync")
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            job = c.get(f"/api/jobs/{job_id}").json()
            if job["status"] in ("succeeded", "failed"):
                assert job["status"] == "succeeded", job
                return dict(job["result"])
            time.sleep(0.05)
    raise AssertionError("sync job did not finish")


def _retrieve(c: httpx.Client, **body: Any) -> httpx.Response:
    return c.post("/v1/retrieve", json=body)


def test_sync_retrieve_and_department_isolation(kgw: Gateway) -> None:
    first = _sync(kgw, "hr-policies")
    assert first["added"] == 4 and first["errors"] == 0
    _sync(kgw, "it-help")
    hr_key, finance_key = kgw.make_key("hr"), kgw.make_key("finance")

    with kgw.client(hr_key) as c:
        r = _retrieve(c, collections=["hr-policies"], query="parental leave weeks full pay", top_k=3)
        assert r.status_code == 200, r.text
        top = r.json()["results"][0]
        assert top["document_id"] == "leave.md"
        assert "16 weeks" in top["text"]
        assert top["source"]["collection"] == "hr-policies"

    with kgw.client(finance_key) as c:
        denied = _retrieve(c, collections=["hr-policies"], query="parental leave")
        assert denied.status_code == 403
        assert denied.json()["error"]["code"] == "collection_not_permitted"
        # Without naming collections, finance searches what it may read: never HR's chunks,
        # even for a query that only HR documents answer.
        r = _retrieve(c, query="parental leave weeks full pay", top_k=10)
        assert r.status_code == 200
        assert r.json()["results"], "it-help is readable by every department"
        assert {x["source"]["collection"] for x in r.json()["results"]} == {"it-help"}

    with kgw.client(hr_key) as c:
        assert _retrieve(c, collections=["nope"], query="x").status_code == 404
        assert _retrieve(c, collections=["hr-policies"], query="").status_code == 400


def test_resync_is_incremental(kgw: Gateway, tmp_path: Path, upstream: UpstreamServer) -> None:
    first = _sync(kgw, "it-help")
    assert first["added"] == 2
    embedded = len(upstream.requests("/v1/embeddings"))
    again = _sync(kgw, "it-help")
    assert again["unchanged"] == 2 and again["added"] == 0 and again["chunks_embedded"] == 0
    assert len(upstream.requests("/v1/embeddings")) == embedded, "unchanged documents must not be re-embedded"
    (tmp_path / "it" / "printer.md").write_text(
        "# Printers\n\nPrinters now release jobs with the mobile app.\n"
    )
    (tmp_path / "it" / "vpn.md").unlink()
    changed = _sync(kgw, "it-help")
    assert changed["updated"] == 1 and changed["removed"] == 1 and changed["unchanged"] == 0
    with kgw.client(kgw.make_key("hr")) as c:
        r = _retrieve(c, collections=["it-help"], query="how do printers release jobs", top_k=5)
        results = r.json()["results"]
    assert "mobile app" in results[0]["text"]
    assert "vpn.md" not in {x["document_id"] for x in results}


def test_failed_source_keeps_documents(kgw: Gateway, tmp_path: Path) -> None:
    _sync(kgw, "it-help")
    (tmp_path / "it").rename(tmp_path / "it-moved")
    result = _sync(kgw, "it-help")
    assert result["source_failed"] is True and result["removed"] == 0
    with kgw.client(kgw.make_key("hr")) as c:
        assert _retrieve(c, collections=["it-help"], query="VPN client", top_k=1).json()["results"]


def test_quality_report_and_quarantine(kgw: Gateway) -> None:
    _sync(kgw, "hr-policies")
    with kgw.client(kgw.admin_key) as c:
        report = c.get("/api/collections/hr-policies/quality").json()["report"]
        docs = c.get("/api/collections/hr-policies/documents").json()["data"]
    summary = report["summary"]
    assert summary["exact_duplicate"] >= 1
    assert summary["empty"] >= 1
    quarantined = [d["document_id"] for d in docs if d["status"] == "quarantined"]
    assert len(quarantined) == 1 and quarantined[0] in ("salaries.md", "copy-of-salaries.md")
    with kgw.client(kgw.make_key("hr")) as c:
        r = _retrieve(c, collections=["hr-policies"], query="salary bands reviewed April", top_k=10)
        ids = [x["document_id"] for x in r.json()["results"]]
    assert quarantined[0] not in ids


def test_collection_management_permissions(kgw: Gateway) -> None:
    spec = {"name": "finance-docs", "readers": {"departments": ["finance"]}, "sources": []}
    with kgw.client(kgw.make_key("hr", role="department_admin")) as c:
        assert c.post("/api/collections", json=spec).status_code == 403
        listed = {x["name"] for x in c.get("/api/collections").json()["data"]}
        assert listed == {"hr-policies", "it-help"}
    with kgw.client(kgw.make_key("finance", role="department_admin")) as c:
        assert c.post("/api/collections", json=spec).status_code == 201
        assert c.delete("/api/collections/finance-docs").status_code == 200
    with kgw.client(kgw.make_key("hr", role="user")) as c:
        assert c.post("/api/collections", json=spec).status_code == 403


def test_changing_the_embedding_re_embeds(kgw: Gateway, tmp_path: Path, upstream: UpstreamServer) -> None:
    spec = {
        "name": "it-copy",
        "readers": {"departments": ["*"]},
        "sources": [{"kind": "folder", "path": str(tmp_path / "it")}],
        "embedding": "embed-small",
    }
    with kgw.client(kgw.admin_key) as c:
        assert c.post("/api/collections", json=spec).status_code == 201
    first = _sync(kgw, "it-copy")
    assert first["added"] == 2
    # same documents, another embeddings alias: every document is embedded again, with the new model
    with kgw.client(kgw.admin_key) as c:
        put = c.put(
            "/api/catalog/deployments/mock-embed-b",
            json={"provider": "mock", "model": "embed-mock-b", "kind": "embeddings"},
        )
        assert put.status_code == 200, put.text
        assert (
            c.put("/api/catalog/aliases/embed-b", json={"deployments": ["mock-embed-b"]}).status_code == 200
        )
        assert c.post("/api/collections", json={**spec, "embedding": "embed-b"}).status_code == 201
    second = _sync(kgw, "it-copy")
    assert second["updated"] == 2 and second["unchanged"] == 0 and second["chunks_embedded"] >= 2
    sent = [r["body"]["model"] for r in upstream.requests("/v1/embeddings")]
    assert sent[-1] == "embed-mock-b"
    with kgw.client(kgw.admin_key) as c:
        assert c.get("/api/collections/it-copy").json()["embedding_model"] == "openai:embed-mock-b"
