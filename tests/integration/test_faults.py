"""Scaled mode under faults: a replica killed mid-stream, Redis restarted, PostgreSQL restarted.

Redis and PostgreSQL here are private servers on their own ports (never the machine's shared
ones), so the tests can stop and start them.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.gateway.helpers import assert_error, chat_body
from tests.harness import base_config, postgres_available, postgres_database
from tests.integration.replicas import scaled_cluster
from tests.integration.services import (
    SHARED_REDIS,
    delete_prefix,
    private_postgres,
    private_postgres_available,
    private_redis,
    shared_redis_available,
    unique_prefix,
)
from tests.upstream.fixtures import UpstreamServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),  # starting gateway processes takes seconds each on a busy machine
    pytest.mark.skipif(not shared_redis_available(), reason="Redis is not running at 127.0.0.1:6379"),
]
URL = "/v1/chat/completions"
SMALL = chat_body(content="hi", max_tokens=5)


def _with_budgets(cfg: dict[str, Any]) -> dict[str, Any]:
    for dept in cfg["departments"]:
        if dept["id"] == "hr":
            dept["budget"] = {"usd": 1.0, "period": "month"}
        if dept["id"] == "finance":
            dept["limits"] = {"rpm": 1000}  # a rate limit, no budget
    return cfg


@pytest.fixture
def prefix() -> Iterator[str]:
    name = unique_prefix()
    yield name
    delete_prefix(SHARED_REDIS, name)


def _until(predicate: Any, timeout: float = 15.0, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


@pytest.mark.skipif(not postgres_available(), reason="PostgreSQL is not running at 127.0.0.1:5432")
def test_a_replica_killed_mid_stream(upstream: UpstreamServer, tmp_path: Path, prefix: str) -> None:
    cfg = base_config(upstream.url, db_url="")
    # A short heartbeat so the survivor finds the dead replica in seconds (defaults: 15 s and 5 s); a
    # long reservation TTL so a released reservation can only be the survivor's doing.
    cfg["redis"] = {
        "url": SHARED_REDIS,
        "key_prefix": prefix,
        "reservation_ttl_s": 600,
        "heartbeat_ttl_s": 1,
        "orphan_sweep_s": 0.5,
    }
    with postgres_database() as db:
        cfg["database"]["url"] = db
        with scaled_cluster(cfg, tmp_path) as cluster:
            key = cluster.make_key("hr", budget={"usd": 1.0, "period": "day"})
            upstream.fault(slow_stream_s=0.3)
            body = chat_body(content="one two three four five six seven eight nine ten", stream=True)
            got: list[str] = []
            with (
                cluster.client(1, key["key"]) as c,
                pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)),
                c.stream("POST", URL, json=body) as r,
            ):
                assert r.status_code == 200
                run_id = r.headers["x-aerodrome-run-id"]
                for line in r.iter_lines():
                    got.append(line)
                    if len([g for g in got if g.startswith("data:")]) == 2:
                        cluster.replicas[1].kill()
            # The client got an error, not a truncated answer that looks complete.
            assert "data: [DONE]" not in got
            # The survivor serves the same key meanwhile.
            upstream.fault(slow_stream_s=0)
            with cluster.client(0, key["key"]) as c:
                assert c.post(URL, json=SMALL).status_code == 200
            # The survivor finds the dead replica (heartbeat_ttl_s, then half as long again) and
            # records its call in flight as interrupted, once.
            found = _until(
                lambda: [r for r in cluster.runs() if r["id"] == run_id and r["status"] == "interrupted"],
                timeout=20,
                step=0.25,
            )
            assert found, "the survivor did not record the dead replica's call"
            (run,) = found
            assert (run["error_code"], run["http_status"], run["stream"]) == ("replica_lost", 502, True)
            (served,) = [r for r in cluster.runs() if r["key_id"] == key["id"] and r["status"] == "ok"]
            assert (run["principal"], run["key_id"], run["department_id"]) == (
                served["principal"],
                key["id"],
                "hr",
            )
            assert run["alias"] == body["model"] == served["alias"]
            # ...and releases its budget reservation, long before its TTL (600 s).
            with cluster.client(0, cluster.admin_key) as admin:
                released = _until(
                    lambda: [
                        b
                        for b in admin.get("/api/budgets").json()["data"]
                        if b["id"] == key["id"] and b["reserved"] == 0
                    ]
                )
            assert released
            # The replica comes back with the same command and serves; the interrupted call stays
            # recorded exactly once (nobody records it again).
            cluster.replicas[1].start()
            with cluster.client(1, key["key"]) as c:
                assert c.post(URL, json=SMALL).status_code == 200
            time.sleep(1.5)
            assert [r["id"] for r in cluster.runs()].count(run_id) == 1
            # Every call that finished normally has left the in-flight journals.
            assert _until(lambda: _journaled(prefix) == 0, timeout=5), _journaled(prefix)


def _journaled(prefix: str) -> int:
    """Entries in every replica's in-flight journal under ``prefix``."""
    with redis.Redis.from_url(SHARED_REDIS) as r:
        return sum(int(r.hlen(k)) for k in r.scan_iter(match="{" + prefix + "}:inflight:*"))


@pytest.mark.skipif(not postgres_available(), reason="PostgreSQL is not running at 127.0.0.1:5432")
def test_redis_restarted_budgets_refuse_then_recover_without_a_restart(
    upstream: UpstreamServer, tmp_path: Path
) -> None:
    with private_redis() as redis_server, postgres_database() as db:
        cfg = _with_budgets(base_config(upstream.url, db_url=db))
        cfg["redis"] = {"url": redis_server.url, "key_prefix": "faults", "retry_s": 0.5}
        with scaled_cluster(cfg, tmp_path) as cluster:
            hr, finance = cluster.make_key("hr"), cluster.make_key("finance")
            for i in range(2):
                with cluster.client(i, hr["key"]) as c:
                    assert c.post(URL, json=SMALL).status_code == 200
            redis_server.stop()
            for i in range(2):
                with cluster.client(i, hr["key"]) as c:  # budgets fail closed
                    err = assert_error(c.post(URL, json=SMALL), 503, "budget_store_unavailable")
                assert "Redis" in err["message"]
                with cluster.client(i, finance["key"]) as c:  # rate limits: local (the default)
                    assert c.post(URL, json=SMALL).status_code == 200
            with cluster.client(0) as c:  # still ready (serving by the policy), and says why
                ready = c.get("/readyz")
            assert ready.status_code == 200 and ready.json()["redis"] == "unreachable"
            redis_server.start()  # empty: a restart without persistence loses every key

            def served() -> bool:
                with cluster.client(0, hr["key"]) as c0, cluster.client(1, hr["key"]) as c1:
                    return (
                        c0.post(URL, json=SMALL).status_code == 200
                        and c1.post(URL, json=SMALL).status_code == 200
                    )

            assert _until(served), "the replicas did not use Redis again"
            # The lost budget account was seeded again from the run records: nothing forgotten.
            hr_runs = [r for r in cluster.runs() if r["department_id"] == "hr" and r["status"] == "ok"]
            with cluster.client(1, cluster.admin_key) as admin:
                (account,) = [
                    b
                    for b in admin.get("/api/budgets", params={"scope": "department"}).json()["data"]
                    if b["id"] == "hr"
                ]
            assert account["spent"] == pytest.approx(sum(r["cost_usd"] for r in hr_runs), abs=1e-9)
            # Revocations are announced again after the reconnection.
            with cluster.client(0, cluster.admin_key) as admin:
                assert admin.delete(f"/api/keys/{finance['id']}").status_code == 200
            with cluster.client(1, finance["key"]) as c:
                assert _until(lambda: c.get("/v1/models").status_code == 401, timeout=5)


@pytest.mark.skipif(not private_postgres_available(), reason="no PostgreSQL binaries for a private cluster")
def test_postgresql_restarted_the_gateway_recovers_and_keeps_the_runs(
    upstream: UpstreamServer, prefix: str
) -> None:
    root = Path(tempfile.mkdtemp(prefix="aerodrome-pg-"))  # outside pytest's folders: postgres must enter it
    root.chmod(0o755)
    try:
        with private_postgres(root / "pg") as pg:
            cfg = _with_budgets(base_config(upstream.url, db_url=pg.url))
            cfg["redis"] = {"url": SHARED_REDIS, "key_prefix": prefix}
            with scaled_cluster(cfg, root) as cluster:
                key = cluster.make_key("hr")
                sent = 0
                for i in range(4):
                    with cluster.client(i % 2, key["key"]) as c:
                        assert c.post(URL, json=SMALL).status_code == 200
                    sent += 1
                pg.stop()
                # While PostgreSQL is down, keys checked recently and budgets (in Redis) still work:
                # calls are served and their run records wait in memory.
                for i in range(4):
                    with cluster.client(i % 2, key["key"]) as c:
                        assert c.post(URL, json=SMALL).status_code == 200
                    sent += 1
                pg.start()
                for i in range(4):
                    with cluster.client(i % 2, key["key"]) as c:
                        assert c.post(URL, json=SMALL).status_code == 200
                    sent += 1

                def all_written() -> list[dict[str, Any]] | None:
                    found = [r for r in cluster.runs() if r["key_id"] == key["id"]]
                    return found if len(found) >= sent else None

                runs = _until(all_written, timeout=30)
                assert runs is not None and len(runs) == sent  # no run lost, none twice
    finally:
        shutil.rmtree(root, ignore_errors=True)
