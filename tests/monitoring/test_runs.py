"""Run records: one per request, tokens, cost, latency, content logging, shutdown flush, PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, inspect, select

from aerodrome.monitoring.run_log import RunWriter
from aerodrome.storage.engine import make_engine
from aerodrome.storage.migrate import ensure_current
from aerodrome.storage.tables import run_contents
from aerodrome.storage.tables import runs as runs_table
from tests.gateway.helpers import assert_error, chat_body, gateway_with, one_run, sse_events
from tests.harness import Gateway, base_config, postgres_available, postgres_database, run_gateway
from tests.upstream.fixtures import UpstreamServer

URL = "/v1/chat/completions"


def test_exactly_one_run_per_request_whatever_the_outcome(gateway: Gateway, upstream: UpstreamServer) -> None:
    key = gateway.make_key("hr", rpm=3)
    answers: list[httpx.Response] = []
    with gateway.client(key) as c:
        answers.append(c.post(URL, json=chat_body()))  # ok
        answers.append(c.post(URL, json=chat_body(stream=True)))  # ok, streamed
        upstream.fault(status=500, times=2)
        answers.append(c.post(URL, json=chat_body()))  # upstream failure (2 attempts)
        answers.append(c.post(URL, json=chat_body("no-such-model")))  # rejected: 404
        answers.append(c.post(URL, json={"model": "chat-small", "messages": "x"}))  # rejected: 400
        answers.append(c.post(URL, content=b"{nope"))  # rejected: invalid JSON
        answers.append(
            c.post(URL, json=chat_body())
        )  # rejected: 429 (rpm=3; refusals before admission do not count)
    with gateway.client() as anonymous:
        answers.append(anonymous.post(URL, json=chat_body()))  # rejected: 401
    assert [r.status_code for r in answers] == [200, 200, 502, 404, 400, 400, 429, 401]
    ids = [r.headers["x-aerodrome-run-id"] for r in answers]
    assert len(set(ids)) == len(ids)
    runs = gateway.runs()
    assert sorted(r["id"] for r in runs) == sorted(ids)  # exactly one each, nothing else
    by_id = {r["id"]: r for r in runs}
    assert [by_id[i]["status"] for i in ids] == [
        "ok",
        "ok",
        "error",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
    ]
    assert [by_id[i]["http_status"] for i in ids] == [r.status_code for r in answers]
    assert by_id[ids[2]]["error_code"] == "upstream_500" and by_id[ids[2]]["attempts"] == 2
    assert by_id[ids[3]]["error_code"] == "model_not_found" and by_id[ids[3]]["alias"] == "no-such-model"
    assert by_id[ids[6]]["error_code"] == "rate_limited"
    for i in ids[:7]:  # the caller is known once the key was checked, even when the body is bad
        assert by_id[i]["department_id"] == "hr" and by_id[i]["key_id"] is not None
    assert by_id[ids[7]]["principal"] == "anonymous"


def test_tokens_cost_and_latency_come_from_the_upstream(gateway: Gateway) -> None:
    key = gateway.make_key("hr")
    with gateway.client(key) as c:
        r = c.post(URL, json=chat_body(content="three little words"))
    usage = r.json()["usage"]
    run = one_run(gateway, r)
    assert run["prompt_tokens"] == usage["prompt_tokens"] == 3
    assert run["completion_tokens"] == usage["completion_tokens"] == 4  # "Echo: three little words"
    assert run["tokens_estimated"] is False
    assert run["cost_usd"] == pytest.approx((3 * 1.0 + 4 * 2.0) / 1e6)  # mock-a: $1 / $2 per million
    assert run["latency_ms"] > 0 and run["ttft_ms"] is None
    assert run["alias"] == "chat-small" and run["deployment"] == "mock-a" and run["provider"] == "mock"
    assert run["upstream_model"] == "gpt-mock" and run["endpoint"] == "chat" and run["stream"] is False
    assert run["principal"].startswith("key:") and run["department_id"] == "hr"
    created = datetime.fromisoformat(run["created_at"])
    assert (
        created.tzinfo is not None
        or abs((created - datetime.now(UTC).replace(tzinfo=None)).total_seconds()) < 60
    )


def test_tokens_are_estimated_and_marked_when_the_upstream_omits_usage(
    gateway: Gateway, upstream: UpstreamServer
) -> None:
    upstream.fault(omit_usage=True, times=2)
    key = gateway.make_key("hr")
    with gateway.client(key) as c:
        chat = c.post(URL, json=chat_body(content="three little words"))
        emb = c.post("/v1/embeddings", json={"model": "embed-small", "input": ["some text to embed"]})
    assert chat.status_code == 200 and "usage" not in chat.json()
    run = one_run(gateway, chat)
    assert run["tokens_estimated"] is True
    assert run["prompt_tokens"] > 0 and run["completion_tokens"] > 0
    assert run["cost_usd"] == pytest.approx((run["prompt_tokens"] + 2 * run["completion_tokens"]) / 1e6)
    run = one_run(gateway, emb)
    assert run["tokens_estimated"] is True and run["prompt_tokens"] > 0 and run["endpoint"] == "embeddings"


def test_streams_record_usage_and_time_to_first_token(gateway: Gateway, upstream: UpstreamServer) -> None:
    upstream.fault(slow_stream_s=0.05)
    key = gateway.make_key("hr")
    with (
        gateway.client(key) as c,
        c.stream("POST", URL, json=chat_body(content="three little words", stream=True)) as r,
    ):
        events = sse_events(r)
    assert events[-1] == "[DONE]"
    run = one_run(gateway, r)
    assert run["stream"] is True and run["status"] == "ok"
    assert run["prompt_tokens"] == 3 and run["completion_tokens"] == 4 and run["tokens_estimated"] is False
    assert run["ttft_ms"] is not None and 0 < run["ttft_ms"] < run["latency_ms"]
    assert run["latency_ms"] >= 200  # six events 50 ms apart: the latency covers the whole stream


def _content_run(gateway: Gateway, department: str) -> dict[str, Any]:
    key = gateway.make_key(department)
    with gateway.client(key) as c:
        r = c.post(
            URL,
            json={
                "model": "chat-small",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "my salary is 5000"},
                ],
            },
        )
    assert r.status_code == 200
    return one_run(gateway, r)


def test_content_logging_full_stores_messages_and_output(gateway: Gateway) -> None:
    run = _content_run(gateway, "hr")
    assert run["input"]["messages"][1] == {"role": "user", "content": "my salary is 5000"}
    assert run["output"] == {"text": "Echo: my salary is 5000"}


def test_content_logging_metadata_stores_counts_only(gateway: Gateway) -> None:
    run = _content_run(gateway, "platform")
    assert run["input"] == {"messages": 2, "roles": ["system", "user"], "tools": 0}
    assert run["output"] == {"chars": len("Echo: my salary is 5000")}
    assert "salary" not in str(run)


def test_content_logging_off_stores_nothing(gateway: Gateway) -> None:
    run = _content_run(gateway, "finance")
    assert run["input"] is None and run["output"] is None
    assert "salary" not in str(run)
    assert run["prompt_tokens"] > 0  # the metadata of the call is still there


def test_content_is_stored_apart_from_the_run_record(gateway: Gateway) -> None:
    """Narrow rows: ``runs`` holds the metadata the scans read; the content sits in ``run_contents``."""
    full, summary, off = (_content_run(gateway, d) for d in ("hr", "platform", "finance"))
    engine = gateway.runtime.engine
    assert {"input", "output"}.isdisjoint(c["name"] for c in inspect(engine).get_columns("runs"))
    with engine.connect() as conn:
        rows = {r["id"]: dict(r) for r in conn.execute(select(runs_table)).mappings()}
        contents = {r["run_id"]: dict(r) for r in conn.execute(select(run_contents)).mappings()}
    assert "salary" not in str(rows[full["id"]]) and "input" not in rows[full["id"]]
    assert rows[full["id"]]["prompt_tokens"] == full["prompt_tokens"] > 0
    assert contents[full["id"]]["input"] == full["input"] and "my salary is 5000" in str(full["input"])
    assert contents[full["id"]]["output"] == {"text": "Echo: my salary is 5000"}
    assert contents[summary["id"]]["input"] == {"messages": 2, "roles": ["system", "user"], "tools": 0}
    assert off["id"] in rows and off["id"] not in contents, "no content logged: no content row"


def test_content_logging_of_streams_and_failures(gateway: Gateway, upstream: UpstreamServer) -> None:
    key = gateway.make_key("hr")
    with gateway.client(key) as c:
        with c.stream("POST", URL, json=chat_body(content="streamed secret", stream=True)) as r:
            sse_events(r)
        streamed = one_run(gateway, r)
        upstream.fault(status=500, times=2)
        failed = one_run(gateway, c.post(URL, json=chat_body(content="failed secret")))
    assert streamed["output"] == {"text": "Echo: streamed secret"}
    assert failed["input"]["messages"][0]["content"] == "failed secret" and failed["status"] == "error"


# ------------------------------------------------------------------ the writer


def _engine(tmp_path: Path) -> Any:
    engine = make_engine(f"sqlite:///{tmp_path}/runs.db")
    ensure_current(engine, auto_migrate=True)
    return engine


def _record(run_id: str) -> dict[str, Any]:
    return {
        "id": run_id,
        "request_id": "r",
        "created_at": datetime.now(UTC),
        "endpoint": "chat",
        "principal": "t",
        "stream": False,
        "status": "ok",
        "http_status": 200,
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "tokens_estimated": False,
        "cost_usd": 0.0,
        "latency_ms": 1.0,
        "attempts": 1,
        "cache_hit": False,
    }


def _count(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(runs_table)).scalar_one())


def test_close_flushes_every_pending_record(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    writer = RunWriter(engine, flush_interval_s=30, batch_size=7)
    for i in range(300):
        writer.submit(_record(f"{i:032x}"))
    writer.close()
    assert _count(engine) == 300
    assert writer.written == 300 and writer.failed == 0
    engine.dispose()


def test_one_bad_record_does_not_lose_its_batch(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    writer = RunWriter(engine, flush_interval_s=30, batch_size=500)
    writer.submit(_record("0" * 32))
    assert writer.wait_idle(5)
    for i in range(1, 50):  # one record the table refuses (no status) in the middle of a batch
        writer.submit(_record(f"{i:032x}") if i != 25 else {**_record(f"{i:032x}"), "status": None})
    writer.close()
    assert _count(engine) == 49
    assert writer.failed == 1
    engine.dispose()


def test_a_run_id_already_written_is_skipped_not_failed(tmp_path: Path) -> None:
    """A record is written once, whoever writes it (a survivor recording a dead replica's call
    the dead replica had written; a batch retried after an ambiguous commit)."""
    engine = _engine(tmp_path)
    writer = RunWriter(engine, flush_interval_s=30, batch_size=500)
    committed: list[str] = []
    writer.on_committed = committed.extend
    writer.submit(_record("0" * 32))
    assert writer.wait_idle(5)
    for i in range(1, 50):  # one duplicate id in the middle of a batch
        writer.submit(_record(f"{i:032x}" if i != 25 else "0" * 32))
    writer.close()
    assert _count(engine) == 49
    assert writer.failed == 0
    assert sorted(committed) == sorted(["0" * 32] * 2 + [f"{i:032x}" for i in range(1, 50) if i != 25])
    engine.dispose()


def test_server_shutdown_flushes_the_runs_of_answered_requests(
    upstream: UpstreamServer, tmp_path: Path
) -> None:
    with gateway_with(upstream.url, tmp_path) as gw:
        key = gw.make_key("hr")
        with gw.client(key) as c:
            ids = [c.post(URL, json=chat_body()).headers["x-aerodrome-run-id"] for _ in range(25)]
        # no gw.runs() / flush here: the server stops with whatever is pending
    engine = make_engine(f"sqlite:///{tmp_path}/gw.db")
    with engine.connect() as conn:
        stored = {r for (r,) in conn.execute(select(runs_table.c.id))}
    engine.dispose()
    assert set(ids) <= stored


@pytest.mark.skipif(not postgres_available(), reason="PostgreSQL is not running at 127.0.0.1:5432")
def test_runs_with_oversized_client_values_are_stored_on_postgresql(
    upstream: UpstreamServer, tmp_path: Path
) -> None:
    with postgres_database() as url:
        cfg = base_config(upstream.url, db_url=url, database={"url": url, "auto_migrate": True})
        with run_gateway(cfg, tmp_path) as gw:
            key = gw.make_key("hr")
            with gw.client(key) as c:
                long_id = "req-" + "x" * 200
                ok = c.post(URL, json=chat_body(), headers={"x-request-id": long_id})
                missing = c.post(URL, json=chat_body("m" * 300), headers={"x-request-id": "short-id"})
                assert ok.status_code == 200
                assert_error(missing, 404, "model_not_found")
            runs = {r["id"]: r for r in gw.runs()}
            assert ok.headers["x-aerodrome-run-id"] in runs
            assert missing.headers["x-aerodrome-run-id"] in runs
            assert runs[ok.headers["x-aerodrome-run-id"]]["request_id"] == ok.headers["x-request-id"]
            assert len(ok.headers["x-request-id"]) <= 64
            assert gw.runtime.writer.failed == 0
