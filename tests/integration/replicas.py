"""Scaled mode for tests: N real gateway processes (``aerodrome serve``) sharing a database and Redis.

Each replica is its own OS process started with the documented command, so a test can kill
one (SIGKILL) mid-request and start it again. The schema is created first with
``aerodrome db upgrade``, as operators do.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from aerodrome.config import load_config
from aerodrome.identity import store
from aerodrome.storage.engine import make_engine
from tests.harness import free_port

CLI = [sys.executable, "-c", "from aerodrome.cli import main; main()"]
START_TIMEOUT_S = 60.0


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``aerodrome ARGS`` in a child process (the shell command an operator types)."""
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False)


class Replica:
    def __init__(self, index: int, config_path: Path, log_dir: Path) -> None:
        self.index = index
        self.config_path = config_path
        self.port = free_port()
        self.log_path = log_dir / f"replica-{index}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*CLI, "serve", "--config", str(self.config_path), "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(os.environ, AERODROME_LOG_LEVEL="warning"),
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"replica {self.index} exited:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"replica {self.index} did not become ready:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: the process dies at once, as on a crash or an OOM kill."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM: uvicorn's graceful shutdown (in-flight requests finish, run records flush)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class Cluster:
    def __init__(self, config_path: Path, replicas: list[Replica], admin_key: str) -> None:
        self.config_path = config_path
        self.replicas = replicas
        self.admin_key = admin_key

    def client(self, index: int, key: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(
            base_url=self.replicas[index].url, headers=headers, timeout=kw.pop("timeout", 20), **kw
        )

    def make_key(self, department: str = "hr", role: str = "user", **kw: Any) -> dict[str, Any]:
        with self.client(0, self.admin_key) as c:
            r = c.post("/api/keys", json={"department": department, "role": role, **kw})
            assert r.status_code == 201, r.text
            return dict(r.json())

    def runs(
        self, expected: int | None = None, index: int = 0, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """The run records (waits until ``expected`` of them are written, if given)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.client(index, self.admin_key) as c:
                r = c.get("/api/runs", params={"limit": 1000})
            assert r.status_code == 200, r.text
            data = list(r.json()["data"])
            if expected is None or len(data) >= expected or time.monotonic() > deadline:
                return data
            time.sleep(0.1)


@contextlib.contextmanager
def scaled_cluster(config: dict[str, Any], tmp_path: Path, replicas: int = 2) -> Iterator[Cluster]:
    """Write the config, ``aerodrome db upgrade``, an admin key, then start the replicas one by one."""
    path = tmp_path / "aerodrome.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    upgraded = cli("db", "upgrade", "--config", str(path))
    assert upgraded.returncode == 0, upgraded.stderr + upgraded.stdout
    cfg = load_config(path)
    engine = make_engine(cfg.resolved_database_url())
    try:
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
    started: list[Replica] = []
    try:
        for i in range(replicas):
            replica = Replica(i, path, tmp_path)
            started.append(replica)
            replica.start()
        yield Cluster(path, started, admin_key)
    finally:
        for replica in started:
            replica.stop()
