"""A real Aerodrome server (uvicorn, real HTTP) in a background thread, for integration tests."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvicorn
import yaml

from aerodrome.app import create_app
from aerodrome.config import load_config
from aerodrome.identity import store
from aerodrome.runtime import Runtime
from aerodrome.settings import Settings
from aerodrome.storage import migrate
from aerodrome.storage.engine import make_engine

PG_ADMIN_URL = "postgresql://root@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_config(upstream_url: str | None = None, *, db_url: str, **overrides: Any) -> dict[str, Any]:
    """A platform config with departments, an OpenAI-compatible mock provider and the local engine."""
    cfg: dict[str, Any] = {
        "database": {"url": db_url},
        "server": {"key_cache_ttl_s": 1, "run_flush_interval_s": 0.05},
        "routing": {
            "max_retries": 1,
            "backoff_initial_s": 0.01,
            "backoff_max_s": 0.05,
            "breaker": {"failures": 50, "cooldown_s": 5},
        },
        "departments": [
            {"id": "platform", "name": "Platform", "content_logging": "metadata"},
            {"id": "hr", "name": "HR", "content_logging": "full", "eligible_users": 10},
            {"id": "finance", "name": "Finance", "content_logging": "off"},
        ],
        "users": [{"email": "admin@example.com", "department": "platform", "roles": ["platform_admin"]}],
        "providers": [{"name": "local", "kind": "local"}],
        "deployments": [
            {
                "name": "local-extractive",
                "provider": "local",
                "model": "extractive-v1",
                "hosting": "on-prem",
                "max_data_class": "restricted",
            },
        ],
        "aliases": [{"name": "chat-local", "deployments": ["local-extractive"]}],
    }
    if upstream_url:
        cfg["providers"].append({"name": "mock", "kind": "openai", "base_url": upstream_url})
        cfg["deployments"] += [
            {
                "name": "mock-a",
                "provider": "mock",
                "model": "gpt-mock",
                "timeout_s": 2,
                "prices": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
            },
            {
                "name": "mock-b",
                "provider": "mock",
                "model": "gpt-mock-b",
                "timeout_s": 2,
                "prices": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
            },
            {"name": "mock-embed", "provider": "mock", "model": "embed-mock", "kind": "embeddings"},
        ]
        cfg["aliases"] += [
            {"name": "chat-small", "deployments": ["mock-a"]},
            {"name": "chat-ha", "deployments": ["mock-a", "mock-b"]},
            {"name": "embed-small", "deployments": ["mock-embed"]},
        ]
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


class Gateway:
    """Handle on a running server: its URL, an admin key, the runtime inside it."""

    def __init__(
        self, app: Any, server: uvicorn.Server, thread: threading.Thread, url: str, config_path: Path
    ):
        self.app = app
        self.server = server
        self.thread = thread
        self.url = url
        self.config_path = config_path
        self.admin_key = ""

    @property
    def runtime(self) -> Runtime:
        rt: Runtime = self.app.state.runtime
        return rt

    def client(self, key: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        # generous: a first call may load a local model on a loaded CI machine (no test times speed)
        return httpx.Client(base_url=self.url, headers=headers, timeout=kw.pop("timeout", 30), **kw)

    def make_key(self, department: str = "hr", role: str = "user", **kw: Any) -> str:
        with self.client(self.admin_key) as c:
            r = c.post("/api/keys", json={"department": department, "role": role, **kw})
            assert r.status_code == 201, r.text
            return str(r.json()["key"])

    def flush(self) -> None:
        assert self.runtime.writer.wait_idle(5), "run records were not written in time"

    def runs(self, **params: Any) -> list[dict[str, Any]]:
        self.flush()
        with self.client(self.admin_key) as c:
            r = c.get("/api/runs", params={"limit": 1000, **params})
            assert r.status_code == 200, r.text
            return list(r.json()["data"])


@contextmanager
def run_gateway(config: dict[str, Any], tmp_path: Path) -> Iterator[Gateway]:
    path = tmp_path / f"aerodrome-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    cfg = load_config(path)
    engine = make_engine(cfg.resolved_database_url())
    try:
        migrate.upgrade(engine)  # tests migrate first, also on PostgreSQL
        store.apply_config(engine, cfg)
        admin_key, _ = store.create_key(
            engine,
            store.KeyRequest(
                department_id="platform", role="platform_admin", name="admin", user_email="admin@example.com"
            ),
            actor="test",
        )
    finally:
        engine.dispose()
    app = create_app(Settings(config=path), cfg)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", access_log=False)
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start")
        time.sleep(0.01)
    gw = Gateway(app, server, thread, f"http://127.0.0.1:{port}", path)
    gw.admin_key = admin_key
    try:
        yield gw
    finally:
        server.should_exit = True
        thread.join(20)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the local server; dropped afterwards."""
    name = f"aero_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://root@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False
