"""End to end: a use case whose review policy holds every output, released by a reviewer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from aerodrome.audit import trail
from tests.gateway.helpers import assert_error
from tests.harness import Gateway, base_config, run_gateway
from tests.upstream.fixtures import UpstreamServer

LETTERS = """\
id: letters
title: Letters to employees
departments: [hr]
risk_tier: low
inputs:
  topic: {type: string, required: true, max_length: 200}
prompt: "Write a short letter about {{ topic }}."
model: chat-small
review: {when: [always]}
"""


@pytest.fixture
def ugw(upstream: UpstreamServer, tmp_path: Path, db_url: str) -> Iterator[Gateway]:
    folder = tmp_path / "usecases"
    folder.mkdir()
    (folder / "letters.yaml").write_text(LETTERS, encoding="utf-8")
    cfg = base_config(upstream.url, db_url=db_url)
    cfg["usecases"] = {"dir": "usecases", "reload_s": 0.2}
    with run_gateway(cfg, tmp_path) as gw:
        yield gw


def test_a_held_use_case_run_is_released_by_a_reviewer(ugw: Gateway) -> None:
    caller = ugw.make_key("hr", "user", name="carl")
    anna = ugw.make_key("hr", "reviewer", name="anna")
    with ugw.client(caller) as c:
        r = c.post("/v1/usecases/letters/run", json={"inputs": {"topic": "the new leave policy"}})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["review_status"] == "pending" and body["output"] is None
        run_id, review_id = body["run_id"], body["review_id"]
        seen = c.get(f"/v1/runs/{run_id}").json()  # asked at once: the record may not be written yet
        assert seen["review_status"] == "pending" and seen["review_id"] == review_id
        assert seen["output"] is None and seen["use_case_id"] == "letters" and seen["spec_version"] == 1

    with ugw.client(anna) as c:
        item = c.post("/api/reviews/next", params={"usecase_id": "letters"}).json()["item"]
        assert item["id"] == review_id and item["reasons"] == ["always"]
        assert item["draft"]["inputs"]["topic"] == "the new leave policy"
        draft = item["draft"]["output"]
        assert isinstance(draft, str) and draft
        r = c.post(f"/api/reviews/{review_id}/edit", json={"output": draft + "\n\nHR team", "note": "signed"})
        assert r.status_code == 200, r.text

    with ugw.client(caller) as c:
        seen = c.get(f"/v1/runs/{run_id}").json()
        assert seen["review_status"] == "edited" and seen["output"] == draft + "\n\nHR team"
        assert seen["status"] == "ok" and seen["model"] == "chat-small"
        r = c.post("/v1/feedback", json={"run_id": run_id, "rating": 4, "comment": "good after the edit"})
        assert r.status_code == 201, r.text
        assert_error(c.post(f"/api/reviews/{review_id}/approve"), 403, "permission_denied")

    with ugw.client(anna) as c:
        r = c.get("/api/feedback/export", params={"usecase_id": "letters"})
        lines = [orjson.loads(x) for x in r.text.splitlines()]
    assert [(x["author_role"], x["usecase_id"], x["spec_version"]) for x in lines] == [
        ("reviewer", "letters", 1),
        ("caller", "letters", 1),
    ]
    assert all(x["review"]["status"] == "edited" for x in lines)
    assert lines[1]["preferred_output"] == draft + "\n\nHR team"
    assert trail.verify(ugw.runtime.engine).ok
