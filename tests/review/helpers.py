"""Shared by the review and feedback tests: a gateway on SQLite and PostgreSQL, runs, held runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aerodrome.review.queue import Hold
from tests.harness import Gateway, base_config, run_gateway
from tests.upstream.fixtures import UpstreamServer


@pytest.fixture
def gw(upstream: UpstreamServer, db_url: str, tmp_path: Path) -> Iterator[Gateway]:
    """A running gateway in front of the mock upstream, on each database (see the db_url fixture)."""
    with run_gateway(base_config(upstream.url, db_url=db_url), tmp_path) as g:
        yield g


def chat(gw: Gateway, key: str, content: str = "what is the leave policy?", model: str = "chat-small") -> str:
    """One normal gateway call; returns its run id."""
    with gw.client(key) as c:
        r = c.post(
            "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": content}]}
        )
        assert r.status_code == 200, r.text
        return r.headers["x-aerodrome-run-id"]


def run_record(gw: Gateway, run_id: str) -> dict[str, Any]:
    gw.flush()
    with gw.client(gw.admin_key) as c:
        r = c.get(f"/api/runs/{run_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())


def hold(
    gw: Gateway,
    run_id: str,
    *,
    output: str | dict[str, Any] = "Draft: 25 days of leave [1]",
    reasons: list[str] | None = None,
    usecase_id: str | None = "hr-policy",
    spec_version: int | None = 3,
) -> str:
    """Hold a run's output for review, as the use-case runner does; returns the review id."""
    rec = run_record(gw, run_id)
    return gw.runtime.reviews.hold(
        Hold(
            run_id=run_id,
            usecase_id=usecase_id,
            spec_version=spec_version,
            department_id=rec["department_id"],
            requester=rec["principal"],
            key_id=rec["key_id"],
            user_id=rec["user_id"],
            reasons=reasons or ["always"],
            draft={
                "output": output,
                "citations": [{"id": 1, "document_id": "hr/leave.md"}],
                "inputs": {"question": "what is the leave policy?"},
            },
        )
    )


def actor(name: str, key: str) -> str:
    """The principal name of a service key made with ``name`` (decided_by, audit actor)."""
    return f"key:{name}/{key[3:13]}"
